import { cPath, libc } from "./libc.ts";
import { join } from "node:path";

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
   * Makes a fresh directory (mode 0700) under `workDir` holding the three FIFOs.
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
    const dir = await Deno.makeTempDir({ dir: workDir, prefix: `task-${taskId}-` });
    const pipes = new TaskPipes(dir);
    try {
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
  }
}
