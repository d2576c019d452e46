import { cPath, libc } from "./libc.ts";
import { join } from "node:path";
import { removeTaskOwner, runnerTag, writeTaskOwner } from "./stale_tasks.ts";

const FIFO_MODE = 0o600;

/**
 * Creates a named pipe readable and writable by this user only.
 *
 * @param path where to create it; must not exist yet
 */
export async function makeFifo(path: string): Promise<void> {
  // libc's mkfifo through FFI: a process per FIFO would cost more than the rest of a small task.
  const lib = libc();
  if (lib) {
    const cpath = cPath(path);
    const made = await lib.mkfifo(cpath, FIFO_MODE);
    // Read after the call, which ran on another thread: the path was not collected meanwhile.
    if (made === 0 && cpath.length > 0) return;
    // Fall through to the command, whose message says why (errno alone would not)
  }
  const { success, stderr } = await new Deno.Command("mkfifo", {
    args: ["-m", "600", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `Cannot create named pipe "${path}": ${new TextDecoder().decode(stderr).trim()}`,
    );
  }
}

/** The three FIFOs of one task, in a private directory removed on dispose. */
export class TaskPipes implements AsyncDisposable {
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
   * Makes a fresh directory (mode 0700) under `workDir` holding the three FIFOs. The owner
   * record comes first, and the directory's name carries this runner's pid and start time:
   * whenever this runner dies, the next one can tell the directory is stale and remove it.
   *
   * @param workDir parent directory, created if missing
   * @param taskId used in the directory name so that an operator can tell whose it is
   * @param options `owner`: the user and group the task runs as, who get the directory and FIFOs
   */
  static async create(
    workDir: string,
    taskId: string,
    options: { owner?: { uid: number; gid: number } } = {},
  ): Promise<TaskPipes> {
    await Deno.mkdir(workDir, { recursive: true });
    const random = crypto.randomUUID().slice(0, 8);
    // The id only helps an operator tell whose directory it is: never a path of its own.
    const name = taskId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
    const dir = join(workDir, `task-${name}-${runnerTag()}-${random}`);
    await writeTaskOwner(dir);
    const pipes = new TaskPipes(dir);
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
      await Deno.chmod(dir, 0o700);
      await makeFifo(pipes.input);
      await makeFifo(pipes.output);
      await makeFifo(pipes.progress);
      const { owner } = options;
      if (owner) {
        for (const path of [dir, pipes.input, pipes.output, pipes.progress]) {
          await Deno.chown(path, owner.uid, owner.gid);
        }
      }
    } catch (error) {
      await pipes[Symbol.asyncDispose]();
      throw error;
    }
    return pipes;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    await removeTaskOwner(this.dir); // last: a record without its directory is still reaped
  }
}
