import { errorMessage, settlesWithin } from "../util/async.ts";
import { directSpawnSupported, spawnDirect } from "./direct_spawn.ts";
import { TaskStartError } from "./errors.ts";
import { forEachChunk } from "./lines.ts";
import { ENOEXEC, libc } from "../os/libc.ts";
import { cannotRunText, type ScriptCommand } from "./script_command.ts";
import { signalNumber } from "../os/signals.ts";
import {
  becomeSubreaper,
  spawnEnded,
  spawnStarted,
  sweepOrphans,
  TASK_ID_VARIABLE,
  trackLeader,
  untrackLeader,
} from "./subreaper.ts";

// What runs a file the kernel cannot execute (no `#!`), as execvp and Java's ProcessBuilder do.
const SHELL = "/bin/sh";

/** Why a task process was stopped before it exited on its own. */
export type StopReason = "cancelled" | "timeout" | "shutdown";

/** How a task is started: `posix_spawn` through FFI, or `Deno.Command` (see `spawn`). */
export type SpawnMethod = "posix_spawn" | "command";

/** Options of {@linkcode ProcessGroup.spawn}. */
export interface SpawnOptions {
  /** The child's whole environment (the task id variable is added). */
  env: Record<string, string>;
  /** The task's id, by which its daemons are recognised once it ends. */
  taskId: string;
  uid?: number;
  gid?: number;
  /** On the `Deno.Command` route: have the task killed when the runner dies (`setpriv`). */
  dieWithParent?: boolean;
  /** Force a route; by default `posix_spawn` where it works and nothing needs the other. */
  method?: SpawnMethod;
}

/**
 * A child's stdout or stderr, read to its end (or until the output is closed): each chunk
 * passed on as it is read.
 */
export type OutputReader = (onChunk: (chunk: Uint8Array) => void) => Promise<void>;

/** The running child, whichever way it was started. */
interface Child {
  pid: number;
  status: Promise<Deno.CommandStatus>;
  stdout: OutputReader;
  stderr: OutputReader;
  /** Stops reading stdout and stderr (a daemon may hold them open). */
  closeOutput(): void;
}

/**
 * A task's child process, leader of its own session and process group, so that a signal
 * reaches every process it started (grandchildren included); the runner is their subreaper,
 * so that those which leave the group are killed with the task too (see `subreaper.ts`).
 */
export class ProcessGroup implements AsyncDisposable {
  readonly #child: Child;
  readonly #taskId: string;
  readonly pid: number;
  /** Resolves with the leader's exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** The route the task was started by. */
  readonly method: SpawnMethod;
  #disposed: Promise<void> | undefined;
  #leftoversKilled: Promise<void> | undefined;

  private constructor(child: Child, taskId: string, method: SpawnMethod) {
    this.#child = child;
    this.#taskId = taskId;
    this.pid = child.pid;
    this.method = method;
    trackLeader(child.pid, taskId);
    this.status = child.status.finally(() => untrackLeader(child.pid));
  }

  /**
   * Spawns the command in a new session with stdout and stderr piped, stdin `/dev/null`.
   *
   * Through `posix_spawn` (FFI) when it can: the task itself and nothing else. A user and
   * group, or no pidfd support (Linux < 5.3) take `Deno.Command`, with
   * util-linux `setsid` (and `setpriv --pdeathsig` for `dieWithParent`) exec'd before the task.
   *
   * @param command program (an absolute path) and arguments
   * @param options environment, task id, user and group (root only;
   * supplementary groups are dropped)
   * @throws {TaskStartError} when the program cannot be executed
   */
  static async spawn(command: ScriptCommand, options: SpawnOptions): Promise<ProcessGroup> {
    becomeSubreaper();
    const env = { ...options.env, [TASK_ID_VARIABLE]: options.taskId };
    const lib = libc();
    const direct = options.method !== "command" && lib !== null && directSpawnSupported() &&
      options.uid === undefined && options.gid === undefined;
    if (!direct) {
      return new ProcessGroup(
        spawnCommand(command, { ...options, env }),
        options.taskId,
        "command",
      );
    }
    // The spawn runs on another thread: until its leader is tracked, the task's processes
    // must not look like orphans to another task's sweep.
    spawnStarted(options.taskId);
    try {
      let child = await spawnDirect(lib, { program: command.program, args: command.args, env });
      // A file without `#!` that the kernel cannot execute runs under /bin/sh, as Java's
      // ProcessBuilder (through execvp) runs it: a shell script that lacks its first line.
      if (child === ENOEXEC) {
        child = await spawnDirect(lib, {
          program: SHELL,
          args: [command.program, ...command.args],
          env,
        });
      }
      if (typeof child === "number") {
        throw new TaskStartError(
          `Cannot start task "${command.program}": ${describeErrno(child)}`,
          { javaText: cannotRunText(command.name ?? command.program, child) },
        );
      }
      return new ProcessGroup(
        {
          pid: child.pid,
          status: child.status,
          stdout: (onChunk) => child.stdout.readAll(onChunk),
          stderr: (onChunk) => child.stderr.readAll(onChunk),
          closeOutput: () => {
            child.stdout.close();
            child.stderr.close();
          },
        },
        options.taskId,
        "posix_spawn",
      );
    } finally {
      spawnEnded(options.taskId);
    }
  }

  /** The child's stdout. */
  get stdout(): OutputReader {
    return this.#child.stdout;
  }

  /** The child's stderr. */
  get stderr(): OutputReader {
    return this.#child.stderr;
  }

  /**
   * Sends a signal to every process of the group.
   *
   * @returns false when no process of the group is left
   */
  signal(signal: Deno.Signal): boolean {
    // Through libc where it can: a group already gone (ESRCH) is the common case at a task's
    // end, twice, and Deno.kill reports it by throwing, an error built with its stack.
    const lib = libc();
    const signo = signalNumber(signal);
    if (lib && signo !== undefined) return lib.kill(-this.pid, signo) === 0;
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

  /**
   * Kills whatever is left of the task once its leader has exited: the rest of its group and
   * its orphans (daemons that left the group), reaped, so that none of them holds a pipe of
   * the task open any more. Once only.
   */
  killLeftovers(): Promise<void> {
    this.#leftoversKilled ??= (async () => {
      this.signal("SIGKILL");
      await this.status;
      await sweepOrphans(this.#taskId);
    })();
    return this.#leftoversKilled;
  }

  /**
   * Kills whatever is left of the group, waits for the leader, kills and reaps the task's
   * orphans, and stops reading its output.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.#disposed ??= (async () => {
      await this.killLeftovers();
      this.#child.closeOutput();
    })();
    return this.#disposed;
  }
}

/** The `Deno.Command` route: util-linux `setsid` (and `setpriv`) exec the task in place. */
function spawnCommand(command: ScriptCommand, options: SpawnOptions): Child {
  // Deno's own `detached` spawns through fork, a step more; util-linux's setsid execs.
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
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: setsid === undefined,
    }).spawn();
    return {
      pid: child.pid,
      status: child.status,
      stdout: (onChunk) => forEachChunk(child.stdout, onChunk),
      stderr: (onChunk) => forEachChunk(child.stderr, onChunk),
      closeOutput: () => {},
    };
  } catch (error) {
    const code = error instanceof Deno.errors.NotFound
      ? 2
      : error instanceof Deno.errors.PermissionDenied
      ? 13
      : undefined;
    throw new TaskStartError(`Cannot start task "${command.program}": ${errorMessage(error)}`, {
      cause: error,
      ...(code ? { javaText: cannotRunText(command.name ?? command.program, code) } : {}),
    });
  }
}

const ERRNO_TEXT: Record<number, string> = {
  1: "operation not permitted",
  2: "no such file or directory",
  8: "not an executable (exec format error)",
  13: "permission denied",
  20: "a path component is not a directory",
  26: "the file is busy (being written)",
};

function describeErrno(code: number): string {
  return ERRNO_TEXT[code] ?? `errno ${code}`;
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
