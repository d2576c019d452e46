/**
 * The benchmark's bare-process floor: the echo task started directly, with no runner and no
 * broker, its pipes replaced by regular files (input written before the start, output read
 * after the exit). What the machine needs to start and run the task itself: the task is
 * started the cheapest way there is here, `posix_spawn` with its exit seen through a pidfd
 * (`Deno.Command` learns of an exit from SIGCHLD, a little late, and would flatter every
 * ratio to this floor).
 *
 * Usage (from `bench.ts`):
 *
 *     deno run <perms> scripts/bench_bare.ts <script> <workDir> <tasks> <concurrency>
 *
 * Prints one JSON line: `{ "seconds": <wall time of all tasks>, "samples": [<ms per task>] }`.
 *
 * @module
 */

import { spawnDirect } from "../src/task/direct_spawn.ts";
import { requireLibc } from "../src/task/libc.ts";

const WARM_UP = 16;
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

async function main(args: string[]): Promise<void> {
  const [script, workDir, tasksArg, concurrencyArg] = args;
  if (!script || !workDir || !tasksArg || !concurrencyArg) {
    throw new TypeError("Usage: bench_bare.ts <script> <workDir> <tasks> <concurrency>");
  }
  const concurrency = Number(concurrencyArg);
  await Deno.mkdir(workDir, { recursive: true });
  const dirs = await Promise.all(
    Array.from(
      { length: concurrency },
      (_, i) => Deno.makeTempDir({ dir: workDir, prefix: `w${i}-` }),
    ),
  );
  let samples: number[] = [];
  let next = 0;
  let tasks = WARM_UP;
  const worker = async (dir: string) => {
    while (next < tasks) {
      next++;
      const start = performance.now();
      await runOnce(script, dir);
      samples.push(performance.now() - start);
    }
  };
  await Promise.all(dirs.map(worker));
  samples = [];
  next = 0;
  tasks = Number(tasksArg);
  const start = performance.now();
  await Promise.all(dirs.map(worker));
  const seconds = (performance.now() - start) / 1_000;
  console.log(JSON.stringify({ seconds, samples }));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    console.error(`bench_bare: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
