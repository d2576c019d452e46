/**
 * The benchmark's floor: echo tasks through the task engine (`runTask`) directly, with no
 * broker, in a process of its own like the runner's (so that a stuck engine can be stopped
 * and reported, and the benchmark's own broker client does not share its event loop).
 *
 * Usage (from `bench.ts`):
 *
 *     deno run <perms> scripts/bench_floor.ts <script> <workDir> <tasks> <concurrency>
 *
 * Prints one JSON line: `{ "seconds": <wall time of all tasks>, "samples": [<ms per task>] }`.
 *
 * @module
 */
import { runTask, type TaskEngineSettings } from "../src/task/mod.ts";

const WARM_UP = 16;

async function main(args: string[]): Promise<void> {
  const [script, workDir, tasksArg, concurrencyArg] = args;
  if (!script || !workDir || !tasksArg || !concurrencyArg) {
    throw new TypeError("Usage: bench_floor.ts <script> <workDir> <tasks> <concurrency>");
  }
  const measured = Number(tasksArg);
  const concurrency = Number(concurrencyArg);
  await Deno.mkdir(workDir, { recursive: true });
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (!key.startsWith("TERARIUM_MQ_")) env[key] = value;
  }
  // The settings a runner gets by default (serve's engineSettings): tasks are wrapped in
  // `setpriv --pdeathsig` as the runner wraps them, or the floor would skip one exec per task.
  const engine: TaskEngineSettings = {
    workDir,
    python: "python3",
    pipeArgStyle: "underscore",
    killGraceMs: 2_000,
    logTailBytes: 1024 * 1024,
    maxOutputBytes: 96 * 1024 * 1024,
    allowedScripts: [],
    env,
    dieWithRunner: true,
  };
  const input = new TextEncoder().encode("hello");
  let samples: number[] = [];
  let next = 0;
  let tasks = WARM_UP;
  const worker = async () => {
    while (next < tasks) {
      next++;
      const start = performance.now();
      const result = await runTask(
        { id: crypto.randomUUID(), script, input, timeoutMs: 300_000 },
        engine,
      );
      if (result.outcome !== "success") throw new Error(`Floor task ended in ${result.outcome}`);
      samples.push(performance.now() - start);
    }
  };
  // Unmeasured, as the runner's warm-up: the JIT and the file system caches are warm.
  await Promise.all(Array.from({ length: Math.min(tasks, concurrency) }, worker));
  samples = [];
  next = 0;
  tasks = measured;
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(tasks, concurrency) }, worker));
  const seconds = (performance.now() - start) / 1_000;
  console.log(JSON.stringify({ seconds, samples }));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    console.error(`bench_floor: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
