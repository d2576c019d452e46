import { settlesWithin } from "../util/async.ts";
import { TaskStartError } from "./errors.ts";
import type { ScriptCommand } from "./script_command.ts";

/** Why a task process was stopped before it exited on its own. */
export type StopReason = "cancelled" | "timeout" | "shutdown";

/**
 * A task's child process, leader of its own session and process group, so that a signal
 * reaches every process it started (grandchildren included).
 */
export class ProcessGroup implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly pid: number;
  /** Resolves with the leader's exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    this.status = child.status.finally(() => {
      this.#exited = true;
    });
  }

  /**
   * Spawns the command in a new session with stdout and stderr piped, stdin closed.
   *
   * @param command program and arguments
   * @param options the child's whole environment, its working directory, and the user and
   * group it runs as (root only; supplementary groups are dropped)
   * @throws {TaskStartError} when the program cannot be executed
   */
  static spawn(
    command: ScriptCommand,
    options: {
      env: Record<string, string>;
      cwd?: string;
      uid?: number;
      gid?: number;
      dieWithParent?: boolean;
    },
  ): ProcessGroup {
    // The new session comes from util-linux's setsid, which execs the task in place: Deno's
    // own `detached` spawns through fork and learns of the exit several milliseconds late.
    // A task in its own session outlives a runner killed with SIGKILL unless the kernel is
    // told to kill it: setpriv sets the parent-death signal, then execs the task.
    const setsid = findTool("setsid");
    const setpriv = options.dieWithParent ? findTool("setpriv") : undefined;
    const [program, ...args] = [
      ...(setsid ? [setsid] : []),
      ...(setpriv ? [setpriv, "--pdeathsig", "SIGKILL", "--"] : []),
      command.program,
      ...command.args,
    ] as [string, ...string[]];
    try {
      const child = new Deno.Command(program, {
        args,
        env: options.env,
        clearEnv: true,
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(options.uid !== undefined ? { uid: options.uid } : {}),
        ...(options.gid !== undefined ? { gid: options.gid } : {}),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: setsid === undefined,
      }).spawn();
      return new ProcessGroup(child);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new TaskStartError(`Cannot start task "${command.program}": ${reason}`, {
        cause: error,
      });
    }
  }

  /** The child's stdout. */
  get stdout(): ReadableStream<Uint8Array> {
    return this.#child.stdout;
  }

  /** The child's stderr. */
  get stderr(): ReadableStream<Uint8Array> {
    return this.#child.stderr;
  }

  /** Whether the leader has exited (and been reaped). */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * Sends a signal to every process of the group.
   *
   * @returns false when no process of the group is left
   */
  signal(signal: Deno.Signal): boolean {
    try {
      Deno.kill(-this.pid, signal);
      return true;
    } catch {
      return false; // ESRCH: the group is gone
    }
  }

  /**
   * Asks the group to stop (SIGTERM), then kills it (SIGKILL) after `graceMs`.
   *
   * @returns the leader's exit status
   */
  async terminate(graceMs: number): Promise<Deno.CommandStatus> {
    this.signal("SIGTERM");
    if (!await settlesWithin(this.status, graceMs)) this.signal("SIGKILL");
    const status = await this.status;
    // Whatever of the group survived the leader goes too.
    this.signal("SIGKILL");
    return status;
  }

  /** Kills whatever is left of the group and waits for the leader. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.signal("SIGKILL");
    await this.status;
  }
}

const toolPaths = new Map<string, string | undefined>();

/** Where a util-linux tool is, if anywhere. */
function findTool(name: string): string | undefined {
  if (!toolPaths.has(name)) {
    toolPaths.set(
      name,
      ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map((dir) => `${dir}/${name}`).find((path) => {
        try {
          return Deno.statSync(path).isFile;
        } catch {
          return false;
        }
      }),
    );
  }
  return toolPaths.get(name);
}
