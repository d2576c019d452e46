/**
 * What the benchmark's floors (`bare_floor.ts`, `engine_floor.ts`) share: their command line,
 * the measuring loop, and the one JSON line they print.
 *
 * @module
 */

/** Unmeasured tasks first: the JIT and the file system caches are then warm. */
const WARM_UP = 16;

/** A floor's arguments: `<script> <workDir> <tasks> <concurrency>`. */
export interface FloorArgs {
  script: string;
  workDir: string;
  tasks: number;
  concurrency: number;
}

/** What a floor prints: the wall time of all tasks, and each task's time. */
export interface FloorFigures {
  seconds: number;
  samples: number[];
  /** CPU milliseconds of the measured tasks, when the floor can tell (see `measureTasks`). */
  cpuMs?: number;
  /** The floor process's own CPU milliseconds over the measured tasks, when read apart. */
  ownCpuMs?: number;
}

/**
 * Runs `runOnce` on as many workers as `slots`, each taking the next task until none is
 * left: {@linkcode WARM_UP} tasks unmeasured, then `tasks` measured.
 *
 * @param slots one per worker (e.g. its own directory), handed to each of its tasks
 * @param runOnce runs one task; its rejection fails the figure
 * @param cpuMs reads a CPU clock (in milliseconds) before and after the measured tasks; the
 *   difference is returned as `cpuMs`
 * @param ownCpuMs another clock, read the same way, returned as `ownCpuMs`
 */
export async function measureTasks<S>(
  slots: readonly S[],
  runOnce: (slot: S) => Promise<void>,
  tasks: number,
  cpuMs?: () => Promise<number | undefined>,
  ownCpuMs?: () => Promise<number | undefined>,
): Promise<FloorFigures> {
  let samples: number[] = [];
  let next = 0;
  let total = WARM_UP;
  const worker = async (slot: S) => {
    while (next < total) {
      next++;
      const start = performance.now();
      await runOnce(slot);
      samples.push(performance.now() - start);
    }
  };
  await Promise.all(slots.map(worker));
  samples = [];
  next = 0;
  total = tasks;
  const cpuBefore = await cpuMs?.();
  const ownBefore = await ownCpuMs?.();
  const start = performance.now();
  await Promise.all(slots.map(worker));
  const seconds = (performance.now() - start) / 1_000;
  const ownAfter = await ownCpuMs?.();
  const cpuAfter = await cpuMs?.();
  return {
    seconds,
    samples,
    ...(cpuBefore !== undefined && cpuAfter !== undefined ? { cpuMs: cpuAfter - cpuBefore } : {}),
    ...(ownBefore !== undefined && ownAfter !== undefined
      ? { ownCpuMs: ownAfter - ownBefore }
      : {}),
  };
}

/**
 * A floor's entry point: reads its arguments, makes its work directory, runs `floor` and
 * prints its figures as one JSON line; a failure is printed as `<name>: <message>` and sets
 * exit code 1.
 *
 * @param name the script's name, e.g. `bare_floor`
 * @param floor measures, given the arguments
 */
export async function floorMain(
  name: string,
  floor: (args: FloorArgs) => Promise<FloorFigures>,
): Promise<void> {
  try {
    const [script, workDir, tasks, concurrency] = Deno.args;
    if (!script || !workDir || !tasks || !concurrency) {
      throw new TypeError(`Usage: ${name}.ts <script> <workDir> <tasks> <concurrency>`);
    }
    await Deno.mkdir(workDir, { recursive: true });
    const args = { script, workDir, tasks: Number(tasks), concurrency: Number(concurrency) };
    console.log(JSON.stringify(await floor(args)));
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
