/**
 * Figure 1, throughput: echo requests, concurrency 16, first publish to last terminal response;
 * floors: the same tasks through `runTask` in a process of its own (the engine floor), and the
 * bare task started directly with regular files as pipes (the bare-process floor); peer: a
 * Celery worker running the same task (when installed); and the ceiling no runner of this
 * protocol can pass here: `cores / (bare CPU per task + RabbitMQ protocol CPU per task)`.
 *
 * @module
 */
import { makeRequest, type ServerSide } from "./broker.ts";
import type { CeleryResult } from "./celery_peer.ts";
import {
  AMQP_URL,
  CONCURRENCY,
  CORES,
  ECHO,
  ECHO_INPUT,
  expectSuccess,
  type Figure,
  pct,
  type Plan,
  round,
  type Target,
  target,
} from "./figure.ts";
import type { FloorFigures } from "./floor_loop.ts";
import { runFloor, sendAll } from "./harness.ts";
import { brokerPid, cpuMs } from "./proc.ts";
import { protocolFloor } from "./protocol_floor.ts";
import type { RunnerProcess } from "./runner_process.ts";

/** The throughput figure's values, as in `--json`. */
export interface ThroughputValues {
  tasks: number;
  tasksPerSecond: number;
  runnerCpuMsPerTask?: number;
  engineCpuMsPerTask?: number;
  brokerCpuMsPerTask?: number;
  floorTasksPerSecond: number;
  ratio: number;
  bareTasksPerSecond: number;
  bareRatio: number;
  /** The ceiling's, when RabbitMQ runs here and the bare tasks' CPU time was read. */
  bareCpuMsPerTask?: number;
  protocolBrokerCpuMsPerTask?: number;
  protocolFullSpeedBrokerCpuMsPerTask?: number;
  /** The runner's floor, per task: the bare floor's spawning plus amqplib's broker calls. */
  spawnerCpuMsPerTask?: number;
  protocolClientCpuMsPerTask?: number;
  protocolTasks?: number;
  ceilingTasksPerSecond?: number;
  ceilingBareRatio?: number;
  ceilingRatio?: number;
  /** The Celery peer's, when it ran. */
  celeryTasksPerSecond?: number;
  celeryRatio?: number;
}

// Issue 21's baseline (446d9ca): the runner's CPU per task over RabbitMQ's, same run.
const BASELINE_CPU_SHARE = 0.66;

/** 1. Throughput through the broker, its floors, the ceiling and the peer. */
export async function measureThroughput(
  server: ServerSide,
  runner: RunnerProcess,
  floorDir: string,
  plan: Plan,
  celery: CeleryResult | undefined,
): Promise<Figure<"throughput", ThroughputValues>> {
  const count = plan.throughputTasks;
  const floor = await runFloor("engine", floorDir, count, CONCURRENCY, 30_000 + count * 20);
  const floorRate = count / floor.seconds;
  const engineCpu = floor.cpuMs !== undefined ? floor.cpuMs / count : undefined;
  const bare = await runFloor("bare", `${floorDir}-bare`, count, CONCURRENCY, 30_000 + count * 20);
  const bareRate = count / bare.seconds;
  const beam = await brokerPid();
  const ceiling = await protocolCeiling(bare, count, beam, plan.protocolTasks);
  const runnerFloor = ceiling && bare.ownCpuMs !== undefined
    ? { spawner: bare.ownCpuMs / count, client: ceiling.clientCpuMs }
    : undefined;

  const requests = Array.from(
    { length: count },
    () => makeRequest(ECHO, ECHO_INPUT, server.names.routingKey),
  );
  // Where the CPU goes per task: the runner itself, and RabbitMQ when it runs here.
  const cpuBefore = [await cpuMs(runner.pid), beam ? await cpuMs(beam) : undefined];
  const start = performance.now();
  const terminals = await sendAll(server, requests, "throughput");
  const end = Math.max(...terminals.map((terminal) => terminal.arrivedAt));
  const cpuAfter = [await cpuMs(runner.pid), beam ? await cpuMs(beam) : undefined];
  const [runnerCpu, brokerCpu] = cpuBefore.map((before, i) =>
    before !== undefined && cpuAfter[i] !== undefined ? (cpuAfter[i]! - before) / count : undefined
  );
  for (const terminal of terminals) expectSuccess(terminal.status, "throughput");
  const rate = count / ((end - start) / 1_000);
  const celeryRate = celery ? celery.throughputTasks / celery.throughputSeconds : undefined;
  return {
    name: "throughput",
    line:
      `throughput: ${rate.toFixed(1)} tasks/s (${count} echo tasks, concurrency ${CONCURRENCY})` +
      ` | bare process ${bareRate.toFixed(1)} tasks/s, ratio ${pct(rate / bareRate)}` +
      ` | engine floor ${floorRate.toFixed(1)} tasks/s (runTask, no broker), ratio ${
        pct(rate / floorRate)
      }` +
      (ceiling
        ? ` | ceiling ${ceiling.rate.toFixed(1)} tasks/s = ${
          pct(ceiling.rate / bareRate)
        } of bare (${CORES} cores / (bare task ${
          ceiling.bareCpuMs.toFixed(2)
        } ms + RabbitMQ protocol ${ceiling.protocolCpuMs.toFixed(2)} ms CPU per task at its pace; ${
          ceiling.fullSpeedProtocolCpuMs.toFixed(2)
        } ms at full speed)), runner at ${pct(rate / ceiling.rate)} of it`
        : ` | ceiling not measured (${
          beam ? "no CPU time of the bare tasks" : "RabbitMQ not local"
        })`) +
      (celeryRate
        ? ` | Celery ${celeryRate.toFixed(1)} tasks/s, ratio ${(rate / celeryRate).toFixed(2)}x`
        : " | Celery not run") +
      ` | CPU per task: runner ${
        runnerCpu?.toFixed(2) ?? "?"
      } ms (of which the engine, measured alone: ${engineCpu?.toFixed(2) ?? "?"} ms), RabbitMQ ${
        brokerCpu?.toFixed(2) ?? "?"
      } ms` +
      (runnerFloor
        ? `; a runner's floor ${
          (runnerFloor.spawner + runnerFloor.client).toFixed(2)
        } ms (the bare floor's spawning ${
          runnerFloor.spawner.toFixed(2)
        } ms + amqplib's broker calls alone ${runnerFloor.client.toFixed(2)} ms)`
        : "") +
      ` | cores ${CORES}`,
    values: {
      tasks: count,
      tasksPerSecond: round(rate),
      ...(runnerCpu !== undefined ? { runnerCpuMsPerTask: round(runnerCpu, 2) } : {}),
      ...(engineCpu !== undefined ? { engineCpuMsPerTask: round(engineCpu, 2) } : {}),
      ...(brokerCpu !== undefined ? { brokerCpuMsPerTask: round(brokerCpu, 2) } : {}),
      floorTasksPerSecond: round(floorRate),
      ratio: round(rate / floorRate, 3),
      bareTasksPerSecond: round(bareRate),
      bareRatio: round(rate / bareRate, 3),
      ...(ceiling
        ? {
          bareCpuMsPerTask: round(ceiling.bareCpuMs, 2),
          protocolBrokerCpuMsPerTask: round(ceiling.protocolCpuMs, 2),
          protocolFullSpeedBrokerCpuMsPerTask: round(ceiling.fullSpeedProtocolCpuMs, 2),
          protocolClientCpuMsPerTask: round(ceiling.clientCpuMs, 2),
          protocolTasks: plan.protocolTasks,
          ceilingTasksPerSecond: round(ceiling.rate),
          ceilingBareRatio: round(ceiling.rate / bareRate, 3),
          ceilingRatio: round(rate / ceiling.rate, 3),
        }
        : {}),
      ...(runnerFloor ? { spawnerCpuMsPerTask: round(runnerFloor.spawner, 2) } : {}),
      ...(celeryRate
        ? { celeryTasksPerSecond: round(celeryRate), celeryRatio: round(rate / celeryRate, 3) }
        : {}),
    },
  };
}

/** The best throughput of any runner of this protocol here, with no cost of its own. */
interface Ceiling {
  /** Tasks per second: cores / (bare CPU + protocol CPU per task). */
  rate: number;
  /** CPU per bare task, in milliseconds. */
  bareCpuMs: number;
  /** RabbitMQ's CPU per task of the protocol loop at the ceiling's pace, in milliseconds. */
  protocolCpuMs: number;
  /** The same at full speed (the loop holding nothing), in milliseconds. */
  fullSpeedProtocolCpuMs: number;
  /** The protocol loop's runner side's own CPU per task (amqplib alone), in milliseconds. */
  clientCpuMs: number;
}

/**
 * The throughput ceiling from the bare floor's CPU per task and RabbitMQ's CPU per task in the
 * protocol loop; undefined when either cannot be measured (RabbitMQ not on this machine).
 * RabbitMQ's CPU per task depends on the pace (its schedulers spin a while after each burst of
 * work: at a runner's pace a task costs it half as much again as at full speed), so the loop
 * runs twice: at full speed, which gives a first ceiling, then at that ceiling's pace (each
 * request held as long as a task would hold its slot there), whose figures are the ceiling's.
 */
async function protocolCeiling(
  bare: FloorFigures,
  bareTasks: number,
  beam: number | undefined,
  protocolTasks: number,
): Promise<Ceiling | undefined> {
  if (beam === undefined || bare.cpuMs === undefined) return undefined;
  const bareCpuMs = bare.cpuMs / bareTasks;
  const loop = { tasks: protocolTasks, concurrency: CONCURRENCY, script: ECHO };
  const fullSpeed = await protocolFloor(AMQP_URL, beam, loop);
  const first = CORES / ((bareCpuMs + fullSpeed.brokerCpuMsPerTask) / 1_000);
  const paced = await protocolFloor(AMQP_URL, beam, {
    ...loop,
    holdMs: Math.round(CONCURRENCY / first * 1_000),
  });
  return {
    rate: CORES / ((bareCpuMs + paced.brokerCpuMsPerTask) / 1_000),
    bareCpuMs,
    protocolCpuMs: paced.brokerCpuMsPerTask,
    fullSpeedProtocolCpuMs: fullSpeed.brokerCpuMsPerTask,
    clientCpuMs: paced.clientCpuMsPerTask,
  };
}

/**
 * The throughput targets of issue 21: the share of the protocol ceiling, and the runner's own
 * CPU per task as a share of RabbitMQ's in the same run (issue 21's baseline: 3.13 ms against
 * 4.73 ms, 0.66).
 */
export function throughputTargets(values: ThroughputValues): Target[] {
  const targets: Target[] = [];
  const { ceilingRatio, ceilingTasksPerSecond, ceilingBareRatio } = values;
  if (
    ceilingRatio !== undefined && ceilingTasksPerSecond !== undefined &&
    ceilingBareRatio !== undefined
  ) {
    const atFloor = floorRunnerShare(values);
    targets.push(target("throughput", "throughput / protocol ceiling", {
      target: ">= 85 %",
      measured: pct(ceilingRatio),
      met: ceilingRatio >= 0.85,
      note: `ceiling ${ceilingTasksPerSecond} tasks/s = ${
        pct(ceilingBareRatio)
      } of the bare process${
        atFloor !== undefined
          ? `; a runner at its floor (CPU as below, nothing else) would be at ${pct(atFloor)}`
          : ""
      }`,
    }));
  }
  const runnerCpu = values.runnerCpuMsPerTask;
  const brokerCpu = values.brokerCpuMsPerTask;
  if (runnerCpu !== undefined && brokerCpu !== undefined && brokerCpu > 0) {
    const share = runnerCpu / brokerCpu;
    const { spawnerCpuMsPerTask: spawner, protocolClientCpuMsPerTask: client } = values;
    const floor = spawner !== undefined && client !== undefined ? spawner + client : undefined;
    targets.push(target("throughput", "runner CPU / RabbitMQ CPU per task", {
      target: `<= ${BASELINE_CPU_SHARE / 2} (half of 446d9ca's ${BASELINE_CPU_SHARE})`,
      measured: `${share.toFixed(2)} (${runnerCpu.toFixed(2)} ms vs ${brokerCpu.toFixed(2)} ms)`,
      met: share <= BASELINE_CPU_SHARE / 2,
      ...(floor !== undefined
        ? {
          note: `a runner's floor: ${(floor / brokerCpu).toFixed(2)} (${
            floor.toFixed(2)
          } ms: spawning as the bare floor ${spawner!.toFixed(2)} + amqplib alone ${
            client!.toFixed(2)
          })${floor / brokerCpu > BASELINE_CPU_SHARE / 2 ? ": the target is below it" : ""}`,
        }
        : {}),
    }));
  }
  return targets;
}

/**
 * The share of the ceiling a runner spending only its floor's CPU per task would reach: the
 * ceiling's sum (bare task + RabbitMQ's protocol CPU) over that sum plus the runner's floor.
 */
function floorRunnerShare(values: ThroughputValues): number | undefined {
  const { bareCpuMsPerTask: bare, protocolBrokerCpuMsPerTask: broker } = values;
  const { spawnerCpuMsPerTask: spawner, protocolClientCpuMsPerTask: client } = values;
  if ([bare, broker, spawner, client].some((value) => value === undefined)) return undefined;
  return (bare! + broker!) / (bare! + broker! + spawner! + client!);
}
