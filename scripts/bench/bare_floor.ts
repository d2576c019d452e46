/**
 * The benchmark's bare-process floor: the echo task started directly, with no runner and no
 * broker, its pipes replaced by regular files (input written before the start, output read
 * after the exit). What the machine needs to start and run the task itself: the task is
 * started the cheapest way there is here, `posix_spawn` with its exit seen through a pidfd
 * (`Deno.Command` learns of an exit from SIGCHLD, a little late, and would flatter every
 * ratio to this floor).
 *
 * Usage (from `main.ts`):
 *
 *     deno run <perms> scripts/bench/bare_floor.ts <script> <workDir> <tasks> <concurrency>
 *
 * Prints one JSON line: `{ "seconds": <wall time of all tasks>, "samples": [<ms per task>],
 * "cpuMs": <CPU of the measured tasks>, "ownCpuMs": <this process's own> }`. The tasks' CPU is
 * what the kernel counts for the children this process has reaped (cutime + cstime): the task
 * alone, not the starting of it. This process's own CPU is the starting of it, the cheapest way
 * there is: the spawner's floor, which no runner in Deno can go under per task.
 *
 * @module
 */

import { spawnDirect } from "../../src/task/direct_spawn.ts";
import { requireLibc } from "../../src/os/libc.ts";
import { childrenCpuMs, cpuMs } from "./proc.ts";
import { type FloorArgs, type FloorFigures, floorMain, measureTasks } from "./floor_loop.ts";

const LIBC = requireLibc();
const SH = "/bin/sh";
const INPUT = new TextEncoder().encode("hello");

async function runOnce(script: string, dir: string): Promise<void> {
  const paths = { input: `${dir}/input`, output: `${dir}/output`, progress: `${dir}/progress` };
  await Deno.writeFile(paths.input, INPUT);
  const child = await spawnDirect(LIBC, {
    program: SH,
    args: [
      script,
      "--id",
      "bare",
      "--input_pipe",
      paths.input,
      "--output_pipe",
      paths.output,
      "--progress_pipe",
      paths.progress,
    ],
    env: Deno.env.toObject(),
  });
  if (typeof child === "number") throw new Error(`Cannot start "${script}": errno ${child}`);
  child.stdout.close();
  child.stderr.close();
  const { success } = await child.status;
  if (!success) throw new Error(`Bare task "${script}" failed`);
  const output = await Deno.readFile(paths.output);
  if (output.length !== INPUT.length) throw new Error("Bare task wrote the wrong output");
}

async function bare(args: FloorArgs): Promise<FloorFigures> {
  const dirs = await Promise.all(
    Array.from(
      { length: args.concurrency },
      (_, i) => Deno.makeTempDir({ dir: args.workDir, prefix: `w${i}-` }),
    ),
  );
  // Read through `sh -c cat`, children too: the second reading counts the first, a millisecond
  // or two against hundreds of tasks.
  return await measureTasks(
    dirs,
    (dir) => runOnce(args.script, dir),
    args.tasks,
    () => childrenCpuMs(Deno.pid),
    () => cpuMs(Deno.pid),
  );
}

if (import.meta.main) await floorMain("bare_floor", bare);
