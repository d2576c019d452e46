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
import { libc } from "../src/os/libc.ts";
import { readProcFile } from "../src/os/proc_files.ts";
import { type FloorArgs, type FloorFigures, floorMain, measureTasks } from "./bench_loop.ts";

async function floor(args: FloorArgs): Promise<FloorFigures> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (!key.startsWith("TERARIUM_MQ_")) env[key] = value;
  }
  // The settings a runner gets by default (serve's engineSettings): tasks are wrapped in
  // `setpriv --pdeathsig` as the runner wraps them, or the floor would skip one exec per task.
  const engine: TaskEngineSettings = {
    workDir: args.workDir,
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
  const runOnce = async () => {
    const result = await runTask(
      { id: crypto.randomUUID(), script: args.script, input, timeoutMs: 300_000 },
      engine,
    );
    if (result.outcome !== "success") throw new Error(`Floor task ended in ${result.outcome}`);
  };
  return await measureTasks(
    Array.from({ length: args.concurrency }),
    runOnce,
    args.tasks,
    () => Promise.resolve(ownCpuMs()),
  );
}

/** This process's own CPU time (user + system, all threads; not its children's), in ms. */
function ownCpuMs(): number | undefined {
  const lib = libc();
  const bytes = lib ? readProcFile(lib, "/proc/self/stat") : undefined;
  if (!bytes) return undefined;
  const text = new TextDecoder().decode(bytes);
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
}

if (import.meta.main) await floorMain("bench_floor", floor);
