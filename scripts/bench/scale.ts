/**
 * Figure 6, scale: many long tasks (`sleep_progress.sh`, progress every second) at once on a
 * runner of its own: RSS, CPU and descriptors per running task at rest, progress latency p50/p99
 * (the task's write to the server's receipt), and SIGTERM to exit (`--drain 0`), every request
 * checked back in the queue.
 *
 * @module
 */
import { benchNames, type BenchResponse, makeRequest, ServerSide } from "./broker.ts";
import {
  AMQP_URL,
  CORES,
  delay,
  type Figure,
  mb,
  median,
  ms,
  percentile,
  type Plan,
  round,
  type Target,
  target,
} from "./figure.ts";
import { waitConsuming } from "./harness.ts";
import { cpuMs, openFds, readMemory } from "./proc.ts";
import { RunnerProcess, type RunnerSpawnOptions } from "./runner_process.ts";

const SLEEP_PROGRESS = new URL("../../tests/fixtures/sleep_progress.sh", import.meta.url).pathname;

/** The scale figure's values, as in `--json`. */
export interface ScaleValues {
  tasks: number;
  rampMs: number;
  restMs: number;
  idleRssBytes: number;
  restRssBytes: number;
  rssPerTaskBytes: number;
  cpuPercentPer100Tasks?: number;
  /** The descriptors', when they could be counted. */
  fdsPerTask?: number;
  idleFds?: number;
  restFds?: number;
  progressMessages: number;
  progressP50Ms: number;
  progressP99Ms: number;
  progressMaxMs: number;
  drainMs: number;
  requeued: number;
}

// Bound on the scale figure's ramp: every task started and reporting progress.
const SCALE_RAMP_MS = 60_000;

/**
 * 6. Scale: `plan.scaleTasks` long tasks (`sleep_progress.sh`: progress every second) at
 * once on a fresh runner with that concurrency: its RSS, CPU and descriptors per running task
 * at rest, the progress latency (written by the task to arrival at the server), and the time
 * from SIGTERM to its exit (`--drain 0`: the tasks are stopped at once and their requests put
 * back, which is checked).
 */
export async function measureScale(
  plan: Plan,
  spawnOptions: RunnerSpawnOptions,
  signal: AbortSignal,
): Promise<Figure<"scale", ScaleValues>> {
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
    const kept = Array.from({ length: count }, (): BenchResponse[] => []);
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

/** The scale targets: RSS and CPU per running task, progress latency, SIGTERM to exit. */
export function scaleTargets(values: ScaleValues): Target[] {
  const { tasks, rssPerTaskBytes: perTask, cpuPercentPer100Tasks: cpu, requeued } = values;
  return [
    target("scale", `RSS per running task (${tasks})`, {
      target: "<= 100 KiB",
      measured: `${(perTask / 1024).toFixed(0)} KiB`,
      met: perTask <= 100 * 1024,
    }),
    ...(cpu !== undefined
      ? [target("scale", "CPU at rest per 100 tasks", {
        target: "<= 2 % of a core",
        measured: `${cpu.toFixed(2)} %`,
        met: cpu <= 2,
      })]
      : []),
    target("scale", `progress latency p99 (${tasks} tasks)`, {
      target: "<= 50 ms",
      measured: ms(values.progressP99Ms),
      met: values.progressP99Ms <= 50,
      note: `p50 ${ms(values.progressP50Ms)}`,
    }),
    target("scale", "SIGTERM to exit (drain 0)", {
      target: "every request back",
      measured: `${ms(values.drainMs)}, ${requeued} of ${tasks} back`,
      met: requeued === tasks,
    }),
  ];
}
