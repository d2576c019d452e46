/**
 * The benchmark's floor: echo tasks through the task engine (`runTask`) directly, with no
 * broker, in a process of its own like the runner's (so that a stuck engine can be stopped
 * and reported, and the benchmark's own broker client does not share its event loop).
 *
 * Usage (from `main.ts`):
 *
 *     deno run <perms> scripts/bench/engine_floor.ts <script> <workDir> <tasks> <concurrency>
 *
 * Prints one JSON line: `{ "seconds": <wall time of all tasks>, "samples": [<ms per task>] }`.
 *
 * @module
 */
import { ENGINE_SETTINGS, engineSettings, resolveSettings } from "../../src/config/settings.ts";
import { runTask } from "../../src/task/mod.ts";
import { libc } from "../../src/os/libc.ts";
import { readProcFile } from "../../src/os/proc_files.ts";
import { cpuMsOfStat } from "./proc.ts";
import { type FloorArgs, type FloorFigures, floorMain, measureTasks } from "./floor_loop.ts";

async function floor(args: FloorArgs): Promise<FloorFigures> {
  // The settings a runner gets by default (serve's engineSettings, with the benchmark runner's
  // --kill-grace 2): tasks are wrapped in `setpriv --pdeathsig` as the runner wraps them, or the
  // floor would skip one exec per task.
  const env = Deno.env.toObject();
  const config = resolveSettings(ENGINE_SETTINGS, {
    options: { workDir: args.workDir, killGrace: "2" },
    env,
  });
  const engine = engineSettings(config, env);
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
  return cpuMsOfStat(new TextDecoder().decode(bytes));
}

if (import.meta.main) await floorMain("engine_floor", floor);
