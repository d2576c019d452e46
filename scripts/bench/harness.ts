/**
 * How the figures drive the runner under benchmark and the floors: waiting for the runner to
 * consume, publishing batches with a stall guard, warming up, and running a floor process.
 *
 * @module
 */
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { type BenchResponse, makeRequest, type ServerSide } from "./broker.ts";
import { delay, ECHO, ECHO_INPUT, expectSuccess } from "./figure.ts";
import type { FloorFigures } from "./floor_loop.ts";
import type { RunnerProcess } from "./runner_process.ts";

/** Waits until the runner consumes the request queue; returns milliseconds since spawn. */
export async function waitConsuming(
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

/**
 * Runs echo tasks in a process of its own, `concurrency` at once: through `runTask`
 * (`engine_floor.ts`, the engine floor) or started directly (`bare_floor.ts`, the bare-process
 * floor); fails if it has not finished within `timeoutMs` (a stuck engine).
 */
export async function runFloor(
  kind: "engine" | "bare",
  workDir: string,
  tasks: number,
  concurrency: number,
  timeoutMs: number,
): Promise<FloorFigures> {
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

/** Echo tasks through the runner before a figure measures, all at once. */
export async function warmUp(server: ServerSide, count: number): Promise<void> {
  const terminals = await sendAll(
    server,
    Array.from({ length: count }, () => makeRequest(ECHO, ECHO_INPUT, server.names.routingKey)),
    "warm-up",
  );
  for (const terminal of terminals) expectSuccess(terminal.status, "warm-up");
}

/** A batch through the broker fails when no terminal response came for this long. */
export const STALL_MS = 30_000;

/**
 * Publishes every request at once and waits for all terminal responses; fails, saying how
 * far it got, when none arrives for {@linkcode STALL_MS}.
 */
export async function sendAll(
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
