/**
 * The taskrunner benchmark (`deno task bench`): starts its own runner (`main.ts serve`) on
 * private queue names against the local RabbitMQ, plays the hmi-server, and prints one line
 * per figure with the machine's core count and, beside it, the floors and the peer measured in
 * the same run with the ratios; then a summary table with the targets of issue 10.
 *
 * Figures:
 *
 * 1. throughput: 1,000 echo requests, concurrency 16, first publish to last terminal
 *    response; floors: the same tasks through `runTask` in a process of its own (the engine
 *    floor), and the bare task started directly with regular files as pipes (the bare-process
 *    floor), 16 at once; peer: a Celery worker running the same task (when installed). And the
 *    ceiling no runner of this protocol can pass here: `cores / (bare CPU per task + RabbitMQ
 *    protocol CPU per task)`, where the bare CPU is the bare tasks' own (the floor process's
 *    reaped children) and the protocol CPU is RabbitMQ's while an in-process loop does a task's
 *    broker operations and runs no process (`protocol_floor.ts`, 300 tasks, 16 at once);
 *    printed in tasks/s, as % of the bare process, and the runner's throughput as % of it.
 * 2. latency: 100 sequential echo requests, publish to terminal response; the same floors and
 *    peer, sequential.
 * 3. large payload: 64 MiB echoed back, end to end (median of 3 runs), and the runner's peak
 *    RSS (first run; the highest of the runs shown too); floor: one raw message of the
 *    request's size and one of the response's size through the same RabbitMQ by amqplib,
 *    before each run (median of as many as the runs). And
 *    amqplib's own memory for the request: the RSS growth of a fresh process that only
 *    receives one raw message of the request's size (`receive_memory.ts`), in payloads.
 * 4. progress: one task writing 20,000 progress messages; each must arrive once, in order.
 * 5. start-up: spawn to consuming (a consumer on the request queue), and idle RSS.
 * 6. scale: 1,000 long tasks (`fixtures/sleep_progress.sh`, progress every second) at once on
 *    a runner of its own (`--concurrency 1000`): RSS, CPU and descriptors per running task at
 *    rest, progress latency p50/p99 (task's write to the server's receipt), and SIGTERM to
 *    exit (`--drain 0`), every request checked back in the queue. About a minute.
 *
 * The summary holds the targets of issue 21, each with its measured ratio and yes/no: what
 * the runner itself controls (its share of the protocol ceiling, its CPU per task against
 * RabbitMQ's in the same run), latency against Celery, the payload against a floor measured
 * several times (its spread printed; too noisy past 50 %), the scale figure, and the targets
 * of issue 10 that must not get worse.
 *
 * Usage:
 *
 *     deno task bench [--quick] [--json] [--strace <file>] [--peer auto|celery|none]
 *                     [--only startup,throughput,latency,payload,progress,scale]
 *
 * `--peer celery` requires the Celery peer (Debian's `python3-celery`) and fails when it is
 * missing; `auto` (the default) runs it when installed; `none` skips it.
 *
 * `--quick` runs fewer iterations (a smoke run); `--json` prints one JSON object instead of
 * the lines and the table (each target with its `note`, if any); `--only` runs some figures (start-up is always measured);
 * `--strace <file>` attaches `strace -f` to the runner for the figures run (not the scale
 * figure's runner), and writes the runner's own system calls per task to the file, apart from
 * those of the task processes it started. `BENCH_CPU_PROF=<dir>` runs the runners with
 * `--cpu-prof` and writes their profiles to that directory when they stop; `BENCH_V8_FLAGS`
 * runs them with `--v8-flags=<its value>`. `BENCH_AMQP_URL` overrides the broker (default
 * `amqp://guest:guest@127.0.0.1:5672`).
 *
 * The runner is stopped and the queues and exchanges deleted at the end, even on error.
 *
 * @module
 */
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { benchNames, type BenchResponse, brokerFloor, makeRequest, ServerSide } from "./broker.ts";
import { type CeleryResult, findCelery, runCelery } from "./celery_peer.ts";
import { protocolFloor } from "./protocol_floor.ts";
import { receiveMemory } from "./receive_memory.ts";
import { formatStrace, Strace } from "./strace.ts";
import { brokerPid, cpuMs, openFds, readMemory, resetPeakRss } from "./proc.ts";
import { RunnerProcess, type RunnerSpawnOptions } from "./runner_process.ts";

const AMQP_URL = Deno.env.get("BENCH_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
const ECHO = new URL("../../tests/fixtures/echo.sh", import.meta.url).pathname;
const PROGRESS_FLOOD = new URL("../../tests/fixtures/progress_flood.sh", import.meta.url).pathname;
const SLEEP_PROGRESS = new URL("../../tests/fixtures/sleep_progress.sh", import.meta.url).pathname;
const CORES = navigator.hardwareConcurrency;
const CONCURRENCY = 16;
const MIB = 1024 * 1024;
const MB = 1_000_000;
const FIGURES = ["startup", "throughput", "latency", "payload", "progress", "scale"] as const;
type FigureName = typeof FIGURES[number];

/** How much of each figure to run. */
interface Plan {
  startups: number;
  warmup: number;
  throughputTasks: number;
  latencyTasks: number;
  payloadBytes: number;
  progressMessages: number;
  /** Runs of the large payload: the time is their median, the peak RSS their highest. */
  payloadRuns: number;
  /** Tasks of the protocol loop that measures RabbitMQ's CPU per task. */
  protocolTasks: number;
  /** Broker floors measured before each payload run (their median is the floor). */
  payloadFloorsPerRun: number;
  /** Long tasks running at once in the scale figure (the runner's `--concurrency`). */
  scaleTasks: number;
  /** How long the scale figure measures its tasks at rest, in milliseconds. */
  scaleRestMs: number;
}

const FULL: Plan = {
  startups: 5,
  warmup: 50,
  throughputTasks: 1_000,
  latencyTasks: 100,
  payloadBytes: 64 * MIB,
  progressMessages: 20_000,
  payloadRuns: 3,
  protocolTasks: 300,
  payloadFloorsPerRun: 3,
  scaleTasks: 1_000,
  scaleRestMs: 10_000,
};

const QUICK: Plan = {
  startups: 1,
  warmup: 16,
  throughputTasks: 200,
  latencyTasks: 30,
  payloadBytes: 64 * MIB,
  progressMessages: 5_000,
  payloadRuns: 1,
  protocolTasks: 100,
  payloadFloorsPerRun: 3,
  scaleTasks: 200,
  scaleRestMs: 5_000,
};

/** One measured figure, as printed and as in `--json`. */
interface Figure {
  name: FigureName | "strace";
  line: string;
  values: Record<string, number | string | boolean>;
}

/** One target of the summary table. */
interface Target {
  figure: FigureName | "strace";
  what: string;
  target: string;
  measured: string;
  met: boolean;
  /** What bounds the target on this machine, e.g. a floor that puts it out of reach. */
  note?: string;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (flags.help) {
    console.log(
      "Usage: deno task bench [--quick] [--json] [--only <figures>] [--strace <file>] [--peer auto|celery|none]",
    );
    return 0;
  }
  const plan = flags.quick ? QUICK : FULL;
  const python = flags.peer === "none" ? undefined : await findCelery();
  if (flags.peer === "celery" && !python) {
    throw new Error(
      "Cannot run the Celery peer: no python3 with Celery found (apt-get install python3-celery)",
    );
  }
  const only = new Set<FigureName>(
    flags.only
      ? flags.only.split(",").map((name) => {
        if (!(FIGURES as readonly string[]).includes(name)) {
          throw new TypeError(`Unknown figure "${name}": expected one of ${FIGURES.join(", ")}`);
        }
        return name as FigureName;
      })
      : FIGURES,
  );
  only.add("startup");
  const say = (line: string) => {
    if (!flags.json) console.log(line);
  };
  // What runs now, on stderr, so that a slow figure is not mistaken for a hung one.
  const note = (what: string) => console.error(`bench: ${what}`);

  // Everything on one file system: the runner's FIFOs, the floors' files and the Celery task's
  // files alike.
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-bench-" });
  const cpuProfDir = Deno.env.get("BENCH_CPU_PROF");
  const spawnOptions: RunnerSpawnOptions = {
    amqpUrl: AMQP_URL,
    concurrency: CONCURRENCY,
    workDir: `${workDir}/runner`,
    denoFlags: [
      ...(cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : []),
      ...(Deno.env.get("BENCH_V8_FLAGS") ? [`--v8-flags=${Deno.env.get("BENCH_V8_FLAGS")}`] : []),
    ],
  };
  const figures: Figure[] = [];
  const report = (figure: Figure) => {
    figures.push(figure);
    say(figure.line);
  };
  say(
    `taskrunner benchmark: ${CORES} cores, concurrency ${CONCURRENCY}${
      flags.quick ? " (quick)" : ""
    }, deno ${Deno.version.deno}`,
  );

  const names = benchNames();
  let runner: RunnerProcess | undefined;
  let tracer: Strace | undefined;
  let tracedFrom = 0;
  const interrupted = new AbortController();
  const onInterrupt = () => interrupted.abort(new Error("Interrupted"));
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    await using server = await ServerSide.open(AMQP_URL, names);
    try {
      // 5. Start-up: several cold starts; the last runner serves the other figures.
      const startups: number[] = [];
      for (let i = 0; i < plan.startups; i++) {
        if (runner) await runner.stop();
        runner = RunnerProcess.spawn(names, spawnOptions);
        startups.push(await waitConsuming(server, runner, interrupted.signal));
      }
      await delay(1_000);
      const idle = await readMemory(runner!.pid);
      report({
        name: "startup",
        line: `startup: ready in ${ms(median(startups))} (median of ${startups.length}, min ${
          ms(Math.min(...startups))
        }, max ${ms(Math.max(...startups))}); idle RSS ${mb(idle.rss)} | cores ${CORES}`,
        values: {
          readyMs: round(median(startups)),
          readyMinMs: round(Math.min(...startups)),
          readyMaxMs: round(Math.max(...startups)),
          idleRssBytes: idle.rss,
        },
      });

      const tracePath = flags.strace;
      if (tracePath) {
        tracer = await Strace.attach(runner!.pid, `${workDir}/strace.raw`);
        tracedFrom = server.sent;
      }

      const floorDir = `${workDir}/floor`;
      let celery: CeleryResult | undefined;
      if (python && (only.has("throughput") || only.has("latency"))) {
        note("Celery peer: the same task through a Celery worker");
        celery = await runCelery(python, {
          amqpUrl: AMQP_URL,
          script: ECHO,
          latencyTasks: plan.latencyTasks,
          throughputTasks: plan.throughputTasks,
          concurrency: CONCURRENCY,
          tmpDir: workDir,
        });
      }
      const failures: string[] = [];
      // One figure; when it fails, the failure is reported and a fresh runner serves the rest.
      const measure = async (name: FigureName, what: string, run: () => Promise<Figure>) => {
        if (!only.has(name)) return;
        note(what);
        try {
          report(await run());
        } catch (error) {
          interrupted.signal.throwIfAborted();
          const message = error instanceof Error ? error.message : String(error);
          failures.push(name);
          report({ name, line: `${name}: FAILED: ${message}`, values: { failed: message } });
          note("restarting the runner on an empty request queue");
          await runner!.stop(5_000);
          await server.purgeRequests();
          runner = RunnerProcess.spawn(names, spawnOptions);
          await waitConsuming(server, runner, interrupted.signal);
        }
      };
      await measure(
        "throughput",
        `warm-up, then throughput: ${plan.throughputTasks} tasks`,
        async () => {
          await warmUp(server, plan.warmup);
          return await throughput(server, runner!, floorDir, plan, celery);
        },
      );
      await measure(
        "latency",
        `latency: ${plan.latencyTasks} sequential tasks each way`,
        () => latency(server, floorDir, plan.latencyTasks, celery),
      );
      await measure(
        "payload",
        `payload: ${plan.payloadBytes / MIB} MiB echo`,
        () =>
          payload(
            server,
            runner!,
            plan.payloadBytes,
            plan.payloadRuns,
            idle.rss,
            plan.payloadFloorsPerRun,
          ),
      );
      await measure(
        "progress",
        `progress: ${plan.progressMessages} messages`,
        () => progress(server, plan.progressMessages),
      );
      // A runner of its own, on names of its own: the figures' runner is not disturbed.
      await measure(
        "scale",
        `scale: ${plan.scaleTasks} long tasks at once, on a runner of its own`,
        () => scale(plan, { ...spawnOptions, workDir: `${workDir}/scale` }, interrupted.signal),
      );

      if (tracer) {
        const traced = server.sent - tracedFrom;
        const summary = formatStrace(await tracer.stop(), traced);
        tracer = undefined;
        await Deno.writeTextFile(tracePath!, summary.text);
        report({
          name: "strace",
          line: `strace: the runner's own threads made ${
            summary.runnerPerTask.toFixed(1)
          } system calls per task (${traced} tasks; its task processes ${
            summary.tasksPerTask.toFixed(1)
          } more); per call and path in ${tracePath}`,
          values: {
            tasks: traced,
            runnerCallsPerTask: round(summary.runnerPerTask, 1),
            taskProcessCallsPerTask: round(summary.tasksPerTask, 1),
          },
        });
      }
      const status = await runner!.stop();
      runner = undefined;
      if (!status.success) say(`runner exited with code ${status.code}`);
    } finally {
      // Before the queues are deleted, or the runner sees its queue vanish.
      await tracer?.kill();
      await runner?.stop();
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }

  const targets = evaluate(figures, plan);
  if (flags.json) {
    console.log(JSON.stringify({
      cores: CORES,
      concurrency: CONCURRENCY,
      quick: flags.quick,
      deno: Deno.version.deno,
      figures: Object.fromEntries(figures.map((figure) => [figure.name, figure.values])),
      targets,
      allMet: targets.every((target) => target.met),
    }));
  } else {
    printTable(targets);
  }
  return 0;
}

interface Flags {
  quick: boolean;
  json: boolean;
  help: boolean;
  only?: string;
  strace?: string;
  peer: "auto" | "celery" | "none";
}

/** The command line: `--quick`, `--json`, `--help`, `--only <list>`, `--strace <file>`, `--peer`. */
function parseFlags(args: string[]): Flags {
  const flags: Flags = { quick: false, json: false, help: false, peer: "auto" };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const value = () => {
      const found = inline ?? args[++i];
      if (found === undefined) throw new TypeError(`Missing value of "${name}"`);
      return found;
    };
    if (name === "--quick") flags.quick = true;
    else if (name === "--json") flags.json = true;
    else if (name === "--help" || name === "-h") flags.help = true;
    else if (name === "--only") flags.only = value();
    else if (name === "--strace") flags.strace = value();
    else if (name === "--peer") {
      const peer = value();
      if (peer !== "auto" && peer !== "celery" && peer !== "none") {
        throw new TypeError(`Unknown peer "${peer}": expected auto, celery or none`);
      }
      flags.peer = peer;
    } else throw new TypeError(`Unknown option "${args[i]}"`);
  }
  return flags;
}

/** Waits until the runner consumes the request queue; returns milliseconds since spawn. */
async function waitConsuming(
  server: ServerSide,
  runner: RunnerProcess,
  signal: AbortSignal,
): Promise<number> {
  let exited = false;
  runner.status.then(() => exited = true);
  const deadline = runner.spawnedAt + 30_000;
  while (performance.now() < deadline) {
    signal.throwIfAborted();
    if (exited) throw new Error("The runner exited before it consumed");
    if (await server.consumerCount() > 0) return performance.now() - runner.spawnedAt;
    await delay(2);
  }
  throw new Error("The runner did not consume within 30 s");
}

/** What the floor process measured. */
interface FloorResult {
  seconds: number;
  samples: number[];
  /** CPU milliseconds of the measured tasks themselves (the bare floor only). */
  cpuMs?: number;
}

/**
 * Runs echo tasks in a process of its own, `concurrency` at once: through `runTask`
 * (`engine_floor.ts`, the engine floor) or started directly (`bare_floor.ts`, the bare-process
 * floor); fails if it has not finished within `timeoutMs` (a stuck engine).
 */
async function runFloor(
  kind: "engine" | "bare",
  workDir: string,
  tasks: number,
  concurrency: number,
  timeoutMs: number,
): Promise<FloorResult> {
  const file = kind === "engine" ? "./engine_floor.ts" : "./bare_floor.ts";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_PERMISSIONS,
      new URL(file, import.meta.url).pathname,
      ECHO,
      workDir,
      String(tasks),
      String(concurrency),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const { success, stdout, signal } = await child.output();
    if (signal === "SIGKILL") {
      throw new Error(
        `Floor (${kind}, ${tasks} tasks, ${concurrency} at once) did not finish within ${
          timeoutMs / 1_000
        } s: the engine is stuck`,
      );
    }
    if (!success) throw new Error(`Floor (${kind}) failed`);
    return JSON.parse(new TextDecoder().decode(stdout));
  } finally {
    clearTimeout(timer);
  }
}

const ECHO_INPUT = new TextEncoder().encode("hello");

async function warmUp(server: ServerSide, count: number) {
  const terminals = await sendAll(
    server,
    Array.from({ length: count }, () => makeRequest(ECHO, ECHO_INPUT, server.names.routingKey)),
    "warm-up",
  );
  for (const terminal of terminals) expectSuccess(terminal.status, "warm-up");
}

// A batch through the broker fails when no terminal response came for this long.
const STALL_MS = 30_000;

/**
 * Publishes every request at once and waits for all terminal responses; fails, saying how
 * far it got, when none arrives for {@linkcode STALL_MS}.
 */
async function sendAll(
  server: ServerSide,
  requests: ReturnType<typeof makeRequest>[],
  what: string,
): Promise<BenchResponse[]> {
  let done = 0;
  let lastProgress = performance.now();
  let timer: ReturnType<typeof setInterval> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (performance.now() - lastProgress < STALL_MS) return;
      reject(
        new Error(
          `${what}: no terminal response for ${
            STALL_MS / 1_000
          } s; ${done} of ${requests.length} done (runner stuck?)`,
        ),
      );
    }, 1_000);
  });
  try {
    return await Promise.race([
      Promise.all(requests.map(async (request) => {
        const terminal = await server.send(request, { timeoutMs: 3_600_000 });
        done++;
        lastProgress = performance.now();
        return terminal;
      })),
      stalled,
    ]);
  } finally {
    clearInterval(timer);
  }
}

/** The best throughput of any runner of this protocol here, with no cost of its own. */
interface Ceiling {
  /** Tasks per second: cores / (bare CPU + protocol CPU per task). */
  rate: number;
  /** CPU per bare task, in milliseconds. */
  bareCpuMs: number;
  /** RabbitMQ's CPU per task of the protocol loop, in milliseconds. */
  protocolCpuMs: number;
}

/**
 * The throughput ceiling from the bare floor's CPU per task and RabbitMQ's CPU per task in the
 * protocol loop; undefined when either cannot be measured (RabbitMQ not on this machine).
 */
async function protocolCeiling(
  bare: FloorResult,
  bareTasks: number,
  beam: number | undefined,
  protocolTasks: number,
): Promise<Ceiling | undefined> {
  if (beam === undefined || bare.cpuMs === undefined) return undefined;
  const { brokerCpuMsPerTask } = await protocolFloor(AMQP_URL, beam, {
    tasks: protocolTasks,
    concurrency: CONCURRENCY,
    script: ECHO,
  });
  const bareCpuMs = bare.cpuMs / bareTasks;
  return {
    rate: CORES / ((bareCpuMs + brokerCpuMsPerTask) / 1_000),
    bareCpuMs,
    protocolCpuMs: brokerCpuMsPerTask,
  };
}

function expectSuccess(status: string, what: string): void {
  if (status !== "SUCCESS") throw new Error(`A ${what} task ended in ${status}`);
}

/** 1. Throughput through the broker, its floors, the ceiling and the peer. */
async function throughput(
  server: ServerSide,
  runner: RunnerProcess,
  floorDir: string,
  plan: Plan,
  celery: CeleryResult | undefined,
): Promise<Figure> {
  const count = plan.throughputTasks;
  const floor = await runFloor("engine", floorDir, count, CONCURRENCY, 30_000 + count * 20);
  const floorRate = count / floor.seconds;
  const engineCpu = floor.cpuMs !== undefined ? floor.cpuMs / count : undefined;
  const bare = await runFloor("bare", `${floorDir}-bare`, count, CONCURRENCY, 30_000 + count * 20);
  const bareRate = count / bare.seconds;
  const beam = await brokerPid();
  const ceiling = await protocolCeiling(bare, count, beam, plan.protocolTasks);

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
        } ms + RabbitMQ protocol ${ceiling.protocolCpuMs.toFixed(2)} ms CPU per task)), runner at ${
          pct(rate / ceiling.rate)
        } of it`
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
          protocolTasks: plan.protocolTasks,
          ceilingTasksPerSecond: round(ceiling.rate),
          ceilingBareRatio: round(ceiling.rate / bareRate, 3),
          ceilingRatio: round(rate / ceiling.rate, 3),
        }
        : {}),
      ...(celeryRate
        ? { celeryTasksPerSecond: round(celeryRate), celeryRatio: round(rate / celeryRate, 3) }
        : {}),
    },
  };
}

// Sequential tasks before the latency is measured: as many as the Celery peer's warm-up.
const LATENCY_WARM_UP = 50;

/** 2. Sequential latency through the broker, its floors and the peer. */
async function latency(
  server: ServerSide,
  floorDir: string,
  count: number,
  celery: CeleryResult | undefined,
): Promise<Figure> {
  const floor = (await runFloor("engine", floorDir, count, 1, 60_000 + count * 1_000)).samples;
  const bare =
    (await runFloor("bare", `${floorDir}-bare`, count, 1, 60_000 + count * 1_000)).samples;
  const samples: number[] = [];
  // Warmed up as the Celery peer is (50 tasks), also when no other figure ran before this one.
  for (let i = -LATENCY_WARM_UP; i < count; i++) {
    const terminal = await server.send(
      makeRequest(ECHO, ECHO_INPUT, server.names.routingKey),
      { timeoutMs: STALL_MS },
    );
    expectSuccess(terminal.status, "latency");
    if (i >= 0) samples.push(terminal.arrivedAt - terminal.publishedAt);
  }
  const p50 = percentile(samples, 0.5);
  const p99 = percentile(samples, 0.99);
  const floorP50 = percentile(floor, 0.5);
  const floorP99 = percentile(floor, 0.99);
  const bareP50 = percentile(bare, 0.5);
  const celeryP50 = celery ? percentile(celery.latencySamples, 0.5) : undefined;
  const celeryP99 = celery ? percentile(celery.latencySamples, 0.99) : undefined;
  return {
    name: "latency",
    line: `latency: p50 ${ms(p50)}, p99 ${ms(p99)} (${count} sequential echo tasks)` +
      ` | engine floor p50 ${ms(floorP50)}, p99 ${ms(floorP99)} (runTask)` +
      ` | bare process p50 ${ms(bareP50)}, engine floor - bare ${ms(floorP50 - bareP50)}` +
      (celeryP50 && celeryP99
        ? ` | Celery p50 ${ms(celeryP50)}, p99 ${ms(celeryP99)}, ratio Celery/runner p50 ${
          (celeryP50 / p50).toFixed(2)
        }`
        : " | Celery not run") +
      ` | cores ${CORES}`,
    values: {
      tasks: count,
      p50Ms: round(p50, 2),
      p99Ms: round(p99, 2),
      floorP50Ms: round(floorP50, 2),
      floorP99Ms: round(floorP99, 2),
      bareP50Ms: round(bareP50, 2),
      ratioP50: round(p50 / floorP50, 3),
      ratioP99: round(p99 / floorP99, 3),
      ...(celeryP50 && celeryP99
        ? {
          celeryP50Ms: round(celeryP50, 2),
          celeryP99Ms: round(celeryP99, 2),
          celeryRatioP50: round(celeryP50 / p50, 3),
        }
        : {}),
    },
  };
}

/**
 * 3. A large input echoed back: end-to-end time and the runner's peak RSS. One 90 MB message
 * through the broker varies a lot from run to run (broker flow control, GC, a shared machine),
 * so it runs `runs` times: the time is the median; the peak RSS is the first run's (a runner
 * fresh from the other figures), and the highest of all runs is shown too (garbage kept by
 * the heap from one large request to the next).
 */
async function payload(
  server: ServerSide,
  runner: RunnerProcess,
  bytes: number,
  runs: number,
  idleRss: number,
  floorsPerRun: number,
): Promise<Figure> {
  const input = new Uint8Array(bytes);
  for (let offset = 0; offset < bytes; offset += 65_536) {
    crypto.getRandomValues(input.subarray(offset, Math.min(bytes, offset + 65_536)));
  }
  const expected = await digest(input);
  // The floor: raw bytes of the request's size and of the response's size through the broker.
  const requestBytes = makeRequest(ECHO, input, server.names.routingKey).body.length;
  // Measured before each run, not once: one transfer of 90 MB varies by 2x from run to run.
  const floorTimes: number[] = [];
  const times: number[] = [];
  let peak = 0;
  let highest = 0;
  let before = 0;
  let reset = true;
  let intact = true;
  for (let run = 0; run < runs; run++) {
    for (let k = 0; k < floorsPerRun; k++) {
      floorTimes.push(await brokerFloor(AMQP_URL, requestBytes, requestBytes));
    }
    const request = makeRequest(ECHO, input, server.names.routingKey);
    // What the earlier figures left in the runner's heap, for comparison with the idle RSS.
    if (run === 0) before = (await readMemory(runner.pid)).rss;
    reset &&= await resetPeakRss(runner.pid);
    const start = performance.now();
    const terminal = await server.send(request, { timeoutMs: 300_000 });
    times.push((terminal.arrivedAt - start) / 1_000);
    // Without the reset, VmHWM is the peak since start, which the payload dominates anyway.
    const hwm = (await readMemory(runner.pid)).hwm;
    if (run === 0) peak = hwm;
    highest = Math.max(highest, hwm);
    expectSuccess(terminal.status, "payload");
    const output = terminal.output ? Uint8Array.fromBase64(terminal.output) : new Uint8Array();
    intact &&= output.length === bytes && await digest(output) === expected;
  }
  // What amqplib alone keeps to receive the request, in a process of its own; after the runs,
  // so that the broker is not still busy with it when they start.
  const received = await receiveMemory(AMQP_URL, requestBytes);
  const amqplibGrowth = received.peak - received.rssBefore;
  const seconds = median(times);
  const floorSeconds = median(floorTimes);
  // How far apart the floor's measurements are: (slowest - fastest) / median.
  const floorSpread = (Math.max(...floorTimes) - Math.min(...floorTimes)) / floorSeconds;
  const bound = idleRss + amqplibGrowth + bytes / 2;
  const spread = runs > 1
    ? ` (median of ${runs}: ${times.map((time) => time.toFixed(2)).join(", ")} s)`
    : "";
  return {
    name: "payload",
    line: `payload: ${bytes / MIB} MiB echoed in ${seconds.toFixed(2)} s end to end${spread}` +
      ` (${(2 * bytes / MIB / seconds).toFixed(0)} MiB/s in+out) | broker floor ${
        floorSeconds.toFixed(2)
      } s (2 raw messages of ${(requestBytes / MIB).toFixed(1)} MiB${
        floorTimes.length > 1
          ? `, median of ${floorTimes.map((time) => time.toFixed(2)).join(", ")} s, spread ${
            pct(floorSpread)
          }`
          : ""
      }), ratio ${(seconds / floorSeconds).toFixed(2)}x | output ${
        intact ? "intact" : "CORRUPT"
      }; runner peak RSS${reset ? "" : " (since start)"} ${mb(peak)} = idle ${mb(idleRss)} + ${
        ((peak - idleRss) / bytes).toFixed(2)
      }x payload (bound idle + amqplib's receive + 0.5x = ${mb(bound)}; RSS before the payload ${
        mb(before)
      }${
        runs > 1 ? `; highest of the ${runs} runs ${mb(highest)}` : ""
      }) | amqplib alone, receiving the request: idle + ${
        (amqplibGrowth / bytes).toFixed(2)
      }x payload (${mb(amqplibGrowth)} for ${(requestBytes / MIB).toFixed(1)} MiB, ${
        (amqplibGrowth / requestBytes).toFixed(2)
      }x the message)` +
      ` | cores ${CORES}`,
    values: {
      payloadBytes: bytes,
      runs,
      seconds: round(seconds, 3),
      brokerFloorSeconds: round(floorSeconds, 3),
      brokerFloorRuns: floorTimes.length,
      brokerFloorMinSeconds: round(Math.min(...floorTimes), 3),
      brokerFloorMaxSeconds: round(Math.max(...floorTimes), 3),
      brokerFloorSpread: round(floorSpread, 3),
      floorRatio: round(seconds / floorSeconds, 3),
      secondsMin: round(Math.min(...times), 3),
      secondsMax: round(Math.max(...times), 3),
      intact,
      peakRssBytes: peak,
      idleRssBytes: idleRss,
      rssBeforeBytes: before,
      peakRssHighestBytes: highest,
      peakOverIdlePayloads: round((peak - idleRss) / bytes, 2),
      requestBytes,
      amqplibReceiveGrowthBytes: amqplibGrowth,
      amqplibReceiveOverPayloads: round(amqplibGrowth / bytes, 2),
    },
  };
}

/** 4. One task flooding the progress pipe: rate, and every message once and in order. */
async function progress(server: ServerSide, count: number): Promise<Figure> {
  const keep: BenchResponse[] = [];
  const request = makeRequest(
    PROGRESS_FLOOD,
    new TextEncoder().encode(String(count)),
    server.names.routingKey,
  );
  const start = performance.now();
  const terminal = await server.send(request, { keep, timeoutMs: 600_000 });
  const seconds = (terminal.arrivedAt - start) / 1_000;
  expectSuccess(terminal.status, "progress");
  const decoder = new TextDecoder();
  const messages = keep.filter((response) => response.status === "RUNNING" && response.output)
    .map((response) => decoder.decode(Uint8Array.fromBase64(response.output!)));
  let inOrder = 0;
  let merged = 0;
  let other = 0;
  const seen = new Set<number>();
  for (const [index, message] of messages.entries()) {
    if (message === `{"i":${index}}`) inOrder++;
    if ((message.match(/\{/g) ?? []).length > 1) merged++;
    const match = message.match(/^\{"i":(\d+)\}$/);
    if (match) seen.add(Number(match[1]));
    else other++;
  }
  const lost = count - seen.size;
  const duplicated = messages.length - other - merged - seen.size;
  const exact = inOrder === count && messages.length === count;
  const rate = messages.length / seconds;
  return {
    name: "progress",
    line: `progress: ${rate.toFixed(0)} messages/s forwarded (${messages.length} of ${count} in ${
      seconds.toFixed(2)
    } s, publish to terminal); ${
      exact
        ? "every message once, in order, none merged"
        : `NOT EXACT: ${lost} lost, ${merged} merged, ${duplicated} duplicated, ${
          count - inOrder
        } out of place`
    } | cores ${CORES}`,
    values: {
      messages: count,
      forwarded: messages.length,
      messagesPerSecond: round(rate),
      seconds: round(seconds, 3),
      exact,
      lost,
      merged,
      duplicated: Math.max(0, duplicated),
    },
  };
}

// Issue 21's baseline (446d9ca): the runner's CPU per task over RabbitMQ's, same run.
const BASELINE_CPU_SHARE = 0.66;
// A payload floor whose measurements are further apart than this (of their median) is noise.
const MAX_FLOOR_SPREAD = 0.5;

// Bound on the scale figure's ramp: every task started and reporting progress.
const SCALE_RAMP_MS = 60_000;

/**
 * 6. Scale: `plan.scaleTasks` long tasks (`sleep_progress.sh`: progress every second) at
 * once on a fresh runner with that concurrency: its RSS, CPU and descriptors per running task
 * at rest, the progress latency (written by the task to arrival at the server), and the time
 * from SIGTERM to its exit (`--drain 0`: the tasks are stopped at once and their requests put
 * back, which is checked).
 */
async function scale(
  plan: Plan,
  spawnOptions: RunnerSpawnOptions,
  signal: AbortSignal,
): Promise<Figure> {
  const count = plan.scaleTasks;
  await using server = await ServerSide.open(AMQP_URL, benchNames());
  const runner = RunnerProcess.spawn(server.names, {
    ...spawnOptions,
    concurrency: count,
    drainSeconds: 0,
  });
  try {
    await waitConsuming(server, runner, signal);
    await delay(1_000);
    const idle = await readMemory(runner.pid);
    const idleFds = await openFds(runner.pid);
    // Long enough to outlast the figure: the runner's SIGTERM ends them.
    const input = new TextEncoder().encode("3600");
    const kept = Array.from({ length: count }, () => [] as BenchResponse[]);
    const rampStart = performance.now();
    for (const keep of kept) {
      const request = makeRequest(SLEEP_PROGRESS, input, server.names.routingKey);
      // Never answered: the runner is stopped under them (their rejection at the end is moot).
      server.send(request, { keep, timeoutMs: 3_600_000 }).catch(() => {});
    }
    const reporting = () => kept.filter((keep) => keep.some((response) => response.output)).length;
    while (reporting() < count) {
      signal.throwIfAborted();
      if (performance.now() - rampStart > SCALE_RAMP_MS) {
        throw new Error(
          `Only ${reporting()} of ${count} tasks reported progress within ${
            SCALE_RAMP_MS / 1_000
          } s`,
        );
      }
      await delay(100);
    }
    const rampMs = performance.now() - rampStart;
    await delay(1_000);
    const restStart = performance.now();
    const cpuBefore = await cpuMs(runner.pid);
    await delay(plan.scaleRestMs);
    const cpuAfter = await cpuMs(runner.pid);
    const restEnd = performance.now();
    const rest = await readMemory(runner.pid);
    const restFds = await openFds(runner.pid);
    const latencies: number[] = [];
    const decoder = new TextDecoder();
    for (const keep of kept) {
      for (const response of keep) {
        if (!response.output || response.arrivedAt < restStart || response.arrivedAt > restEnd) {
          continue;
        }
        const { at } = JSON.parse(decoder.decode(Uint8Array.fromBase64(response.output)));
        if (typeof at === "number") {
          latencies.push(performance.timeOrigin + response.arrivedAt - at * 1_000);
        }
      }
    }
    const stopStart = performance.now();
    const status = await runner.stop(60_000);
    const drainMs = performance.now() - stopStart;
    const requeued = await server.queuedRequests();
    const restSeconds = (restEnd - restStart) / 1_000;
    const cpu = cpuBefore !== undefined && cpuAfter !== undefined
      ? (cpuAfter - cpuBefore) / (restEnd - restStart)
      : undefined;
    const cpuPer100 = cpu !== undefined ? cpu * 100 / (count / 100) : undefined;
    const rssPerTask = (rest.rss - idle.rss) / count;
    const fdsPerTask = idleFds !== undefined && restFds !== undefined
      ? (restFds - idleFds) / count
      : undefined;
    const p50 = latencies.length > 0 ? median(latencies) : NaN;
    const p99 = latencies.length > 0 ? percentile(latencies, 0.99) : NaN;
    const max = latencies.length > 0 ? Math.max(...latencies) : NaN;
    return {
      name: "scale",
      line:
        `scale: ${count} long tasks at once (progress every second), all reporting ${
          (rampMs / 1_000).toFixed(1)
        } s after their requests | at rest (${restSeconds.toFixed(1)} s): runner RSS ${
          mb(rest.rss)
        } = idle ${mb(idle.rss)} + ${(rssPerTask / 1024).toFixed(0)} KiB per task; CPU ${
          cpuPer100 !== undefined ? `${cpuPer100.toFixed(2)} % of a core per 100 tasks` : "?"
        }; ${
          fdsPerTask !== undefined
            ? `${restFds} FDs = idle ${idleFds} + ${fdsPerTask.toFixed(2)} per task`
            : "FDs ?"
        }` +
        ` | progress latency p50 ${ms(p50)}, p99 ${ms(p99)}, max ${
          ms(max)
        } (${latencies.length} messages, ${
          (latencies.length / restSeconds).toFixed(0)
        }/s) | SIGTERM to exit ${
          ms(drainMs)
        } (drain 0; exit code ${status.code}; ${requeued} of ${count} requests back in the queue)` +
        ` | cores ${CORES}`,
      values: {
        tasks: count,
        rampMs: Math.round(rampMs),
        restMs: Math.round(restEnd - restStart),
        idleRssBytes: idle.rss,
        restRssBytes: rest.rss,
        rssPerTaskBytes: Math.round(rssPerTask),
        ...(cpuPer100 !== undefined ? { cpuPercentPer100Tasks: round(cpuPer100, 2) } : {}),
        ...(fdsPerTask !== undefined
          ? { fdsPerTask: round(fdsPerTask, 2), idleFds: idleFds!, restFds: restFds! }
          : {}),
        progressMessages: latencies.length,
        progressP50Ms: round(p50, 2),
        progressP99Ms: round(p99, 2),
        progressMaxMs: round(max, 2),
        drainMs: Math.round(drainMs),
        requeued,
      },
    };
  } finally {
    await runner.stop(60_000);
  }
}

/**
 * The targets of issue 21, each with its ratio and whether it is met, checked against the
 * figures measured in this run. Issue 10's targets that a floor put out of any runner's reach
 * (throughput against the bare process, 3x Celery) are printed in the figures' lines only.
 */
function evaluate(figures: Figure[], plan: Plan): Target[] {
  const byName = new Map<string, Figure["values"]>(
    figures.map((figure) => [figure.name, figure.values]),
  );
  const targets: Target[] = [];
  const add = (
    figure: FigureName | "strace",
    what: string,
    target: string,
    measured: string,
    met: boolean,
    note?: string,
  ) => targets.push({ figure, what, target, measured, met, ...(note ? { note } : {}) });
  for (const figure of figures) {
    if (typeof figure.values.failed === "string") {
      add(figure.name, figure.name, "runs to the end", "FAILED (see above)", false);
      byName.delete(figure.name);
    }
  }
  const num = (values: Figure["values"], key: string) =>
    typeof values[key] === "number" ? values[key] as number : undefined;

  // 1. Throughput: the share of the protocol ceiling, and the runner's own CPU per task, as a
  // share of RabbitMQ's in the same run (issue 21's baseline: 3.13 ms against 4.73 ms, 0.66).
  const throughputValues = byName.get("throughput");
  if (throughputValues) {
    const ceilingRatio = num(throughputValues, "ceilingRatio");
    if (ceilingRatio !== undefined) {
      add(
        "throughput",
        "throughput / protocol ceiling",
        ">= 85 %",
        pct(ceilingRatio),
        ceilingRatio >= 0.85,
        `ceiling ${num(throughputValues, "ceilingTasksPerSecond")} tasks/s = ${
          pct(num(throughputValues, "ceilingBareRatio")!)
        } of the bare process`,
      );
    }
    const runnerCpu = num(throughputValues, "runnerCpuMsPerTask");
    const brokerCpu = num(throughputValues, "brokerCpuMsPerTask");
    if (runnerCpu !== undefined && brokerCpu !== undefined && brokerCpu > 0) {
      const share = runnerCpu / brokerCpu;
      add(
        "throughput",
        "runner CPU / RabbitMQ CPU per task",
        `<= ${BASELINE_CPU_SHARE / 2} (half of 446d9ca's ${BASELINE_CPU_SHARE})`,
        `${share.toFixed(2)} (${runnerCpu.toFixed(2)} ms vs ${brokerCpu.toFixed(2)} ms)`,
        share <= BASELINE_CPU_SHARE / 2,
      );
    }
  }

  // 2. Latency.
  const latencyValues = byName.get("latency");
  if (latencyValues) {
    const p50 = num(latencyValues, "p50Ms")!;
    const p99 = num(latencyValues, "p99Ms")!;
    const floorP50 = num(latencyValues, "floorP50Ms")!;
    const bareP50 = num(latencyValues, "bareP50Ms")!;
    const celeryRatio = num(latencyValues, "celeryRatioP50");
    if (celeryRatio !== undefined) {
      add(
        "latency",
        "latency p50: Celery / runner",
        ">= 1.0",
        `${celeryRatio.toFixed(2)} (${ms(p50)} vs ${ms(num(latencyValues, "celeryP50Ms")!)})`,
        celeryRatio >= 1,
      );
    }
    add("latency", "latency p99 / p50", "<= 2x", `${(p99 / p50).toFixed(2)}x`, p99 <= 2 * p50);
    add(
      "latency",
      "engine floor p50 - bare p50",
      "<= 3 ms",
      `${ms(floorP50 - bareP50)} (${ms(floorP50)} vs ${ms(bareP50)})`,
      floorP50 - bareP50 <= 3,
    );
  }

  // 3. Large payload: time against the broker floor (judged only on a steady floor), and peak
  // RSS against what amqplib alone takes to receive the request.
  const payloadValues = byName.get("payload");
  if (payloadValues) {
    const ratio = num(payloadValues, "floorRatio")!;
    const spread = num(payloadValues, "brokerFloorSpread")!;
    const peak = num(payloadValues, "peakRssBytes")!;
    const idle = num(payloadValues, "idleRssBytes")!;
    const amqplib = num(payloadValues, "amqplibReceiveGrowthBytes")!;
    const size = `${plan.payloadBytes / MIB} MiB`;
    add(
      "payload",
      `${size} echo / broker floor`,
      "<= 1.5x",
      `${ratio.toFixed(2)}x (${num(payloadValues, "seconds")!.toFixed(2)} s vs ${
        num(payloadValues, "brokerFloorSeconds")!.toFixed(2)
      } s)`,
      ratio <= 1.5,
      `floor: ${num(payloadValues, "brokerFloorRuns")} measurements, ${
        num(payloadValues, "brokerFloorMinSeconds")!.toFixed(2)
      }-${num(payloadValues, "brokerFloorMaxSeconds")!.toFixed(2)} s, spread ${pct(spread)}${
        spread > MAX_FLOOR_SPREAD ? ": too noisy to judge by" : ""
      }`,
    );
    const bound = idle + amqplib + plan.payloadBytes / 2;
    add(
      "payload",
      `peak RSS (${size})`,
      "<= idle + amqplib's receive + 0.5x",
      `${mb(peak)} = idle + ${(amqplib / plan.payloadBytes).toFixed(2)}x + ${
        ((peak - idle - amqplib) / plan.payloadBytes).toFixed(2)
      }x`,
      peak <= bound && payloadValues.intact === true,
      `bound ${mb(bound)}; amqplib alone, receiving the request: idle + ${
        (amqplib / plan.payloadBytes).toFixed(2)
      }x`,
    );
  }

  // 4. Scale.
  const scaleValues = byName.get("scale");
  if (scaleValues) {
    const tasks = num(scaleValues, "tasks")!;
    const perTask = num(scaleValues, "rssPerTaskBytes")!;
    add(
      "scale",
      `RSS per running task (${tasks})`,
      "<= 100 KiB",
      `${(perTask / 1024).toFixed(0)} KiB`,
      perTask <= 100 * 1024,
    );
    const cpu = num(scaleValues, "cpuPercentPer100Tasks");
    if (cpu !== undefined) {
      add(
        "scale",
        "CPU at rest per 100 tasks",
        "<= 2 % of a core",
        `${cpu.toFixed(2)} %`,
        cpu <= 2,
      );
    }
    const p99 = num(scaleValues, "progressP99Ms")!;
    add(
      "scale",
      `progress latency p99 (${tasks} tasks)`,
      "<= 50 ms",
      ms(p99),
      p99 <= 50,
      `p50 ${ms(num(scaleValues, "progressP50Ms")!)}`,
    );
    const requeued = num(scaleValues, "requeued")!;
    add(
      "scale",
      "SIGTERM to exit (drain 0)",
      "every request back",
      `${ms(num(scaleValues, "drainMs")!)}, ${requeued} of ${tasks} back`,
      requeued === tasks,
    );
  }

  // 5. Nothing else worse.
  const progressValues = byName.get("progress");
  if (progressValues) {
    const rate = num(progressValues, "messagesPerSecond")!;
    add("progress", "progress rate", ">= 5,000 msg/s", `${rate.toFixed(0)} msg/s`, rate >= 5_000);
    add(
      "progress",
      "progress exact",
      "none lost or merged",
      progressValues.exact
        ? "exact"
        : `${progressValues.lost} lost, ${progressValues.merged} merged`,
      progressValues.exact === true,
    );
  }
  const startup = byName.get("startup");
  if (startup) {
    const ready = num(startup, "readyMs")!;
    const idle = num(startup, "idleRssBytes")!;
    add("startup", "ready to consume", "<= 300 ms", ms(ready), ready <= 300);
    add("startup", "idle RSS", "<= 80 MB", mb(idle), idle <= 80 * MB);
  }
  return targets;
}

function printTable(targets: Target[]): void {
  const rows = [
    ["figure", "target", "measured", "met", "note"],
    ...targets.map((target) => [
      target.what,
      target.target,
      target.measured,
      target.met ? "yes" : "no",
      target.note ?? "",
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  console.log("");
  console.log(`Summary (${CORES} cores):`);
  console.log(line(rows[0]!));
  console.log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`);
  for (const row of rows.slice(1)) console.log(line(row));
  const missed = targets.filter((target) => !target.met).length;
  console.log(
    missed === 0 ? "All targets met." : `${missed} of ${targets.length} targets not met.`,
  );
}

async function digest(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function median(samples: number[]): number {
  return percentile(samples, 0.5);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function round(value: number, digits = 1): number {
  return Number(value.toFixed(digits));
}

function ms(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 0)} ms`;
}

function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

function pct(ratio: number): string {
  return `${(ratio * 100).toFixed(0)} %`;
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
