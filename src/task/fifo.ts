import { cPath, libc } from "../os/libc.ts";
import { join } from "node:path";
import { removeTaskOwner, runnerTag } from "./stale_tasks.ts";

const FIFO_MODE = 0o600;

/**
 * Creates a named pipe readable and writable by this user only.
 *
 * @param path where to create it; must not exist yet
 */
export function makeFifo(path: string): void {
  // libc's mkfifo through FFI, called in place: a process per FIFO, or even a hop to a worker
  // thread, would cost more than the call itself.
  const lib = libc();
  if (lib && lib.mkfifo(cPath(path), FIFO_MODE) === 0) return;
  // The command's message says why (errno alone would not).
  const { success, stderr } = new Deno.Command("mkfifo", {
    args: ["-m", "600", path],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!success) {
    throw new Error(
      `Cannot create named pipe "${path}": ${new TextDecoder().decode(stderr).trim()}`,
    );
  }
}

/** The three FIFOs of one task, in a private directory removed on dispose. */
export class TaskPipes implements Disposable {
  readonly dir: string;
  readonly input: string;
  readonly output: string;
  readonly progress: string;

  private constructor(dir: string) {
    this.dir = dir;
    this.input = join(dir, "input");
    this.output = join(dir, "output");
    this.progress = join(dir, "progress");
  }

  /**
   * Makes a fresh directory (mode 0700) under `workDir` holding the three FIFOs. The
   * directory's name carries this runner's pid and start time: whenever this runner dies, the
   * next one can tell the directory is stale and remove it. Each step is a single quick system
   * call, made in place (a hop to a worker thread would cost more than the call).
   *
   * @param workDir parent directory, created if missing
   * @param taskId used in the directory name so that an operator can tell whose it is
   * @param options `owner`: the user and group the task runs as, who get the directory and FIFOs
   */
  static create(
    workDir: string,
    taskId: string,
    options: { owner?: { uid: number; gid: number } } = {},
  ): TaskPipes {
    const random = crypto.randomUUID().slice(0, 8);
    // The id only helps an operator tell whose directory it is: never a path of its own.
    const name = taskId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
    const dir = join(workDir, `task-${name}-${runnerTag()}-${random}`);
    const pipes = new TaskPipes(dir);
    try {
      makeTaskDir(workDir, dir);
      Deno.chmodSync(dir, 0o700); // whatever the umask
      makeFifo(pipes.input);
      makeFifo(pipes.output);
      makeFifo(pipes.progress);
      const { owner } = options;
      if (owner) {
        for (const path of [dir, pipes.input, pipes.output, pipes.progress]) {
          Deno.chownSync(path, owner.uid, owner.gid);
        }
      }
    } catch (error) {
      pipes[Symbol.dispose]();
      throw error;
    }
    return pipes;
  }

  /**
   * Removes the directory, in the background: its FIFOs and the directory cost a few unlinks,
   * which a task's result should not wait for (the runner publishes it meanwhile).
   * `taskDirsRemoved()` waits for it.
   */
  [Symbol.dispose](): void {
    // First, and in place (one quick unlink): a directory left without its record by a runner
    // that died meanwhile is still told stale by its name, and its finished task has no group
    // left to kill.
    removeTaskOwner(this.dir);
    const removal = Deno.remove(this.dir, { recursive: true })
      .catch(() => {/* already gone */})
      .finally(() => pendingRemovals.delete(removal));
    pendingRemovals.add(removal);
  }
}

// `serve` and `run` make the work dir at start: made again here only if it went missing since
// (or for a caller of the engine that did not make it), not tried before every task.
function makeTaskDir(workDir: string, dir: string): void {
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    Deno.mkdirSync(workDir, { recursive: true });
    Deno.mkdirSync(dir, { mode: 0o700 });
  }
}

const pendingRemovals = new Set<Promise<void>>();

/** Resolves once the directories of every task that has ended are gone. */
export async function taskDirsRemoved(): Promise<void> {
  while (pendingRemovals.size > 0) await Promise.all(pendingRemovals);
}
