/**
 * Starts a task with libc's `posix_spawn` through FFI, in a new session, and nothing else: no
 * helper process (`setsid`, `setpriv`) execs before the task, and its exit is seen through a
 * pidfd by the poll thread that already watches the FIFOs, at once (Deno's own child handling
 * learns of an exit from SIGCHLD several milliseconds late).
 *
 * @module
 */
import { fdPoller } from "../os/fd_poller.ts";
import { FdReader } from "../os/fd_reader.ts";
import {
  cPath,
  ECHILD,
  EINTR,
  errno,
  F_SETFL,
  type Libc,
  libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  pidfdOpen,
  POLLIN,
  WNOHANG,
} from "../os/libc.ts";
import { signalName } from "../os/signals.ts";

// glibc's flags; POSIX_SPAWN_SETSID needs glibc 2.26.
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
// posix_spawnattr_t is 336 bytes and posix_spawn_file_actions_t 80 on 64-bit glibc.
const ATTR_BYTES = 512;
const SIGSET_BYTES = 128;

/** A child started by {@linkcode spawnDirect}. */
export interface DirectChild {
  pid: number;
  /** Resolves once the child has exited and been reaped. */
  status: Promise<Deno.CommandStatus>;
  stdout: FdReader;
  stderr: FdReader;
}

let supported: boolean | undefined;
const inFlight = new Set<unknown>();

/** Whether tasks can be started this way here: libc through FFI, and pidfds (Linux 5.3). */
export function directSpawnSupported(): boolean {
  if (supported === undefined) {
    const lib = libc();
    const probe = lib ? pidfdOpen(lib, Deno.pid) : -1;
    if (lib && probe >= 0) lib.close(probe);
    supported = probe >= 0;
  }
  return supported;
}

/**
 * Spawns `program` (an absolute path) with `args`, exactly the environment `env`, stdin
 * `/dev/null`, stdout and stderr piped, in a session and process group of its own, with the
 * default signal dispositions and an empty signal mask (Deno ignores SIGPIPE).
 *
 * @returns the child, or the error number `posix_spawn` reported (ENOENT, EACCES, ...)
 */
export async function spawnDirect(
  lib: Libc,
  command: { program: string; args: readonly string[]; env: Record<string, string> },
): Promise<DirectChild | number> {
  const out = makePipe(lib);
  const err = makePipe(lib);
  const attr = new Uint8Array(ATTR_BYTES);
  const actions = new Uint8Array(ATTR_BYTES);
  const pid = new Int32Array(1);
  let code: number;
  try {
    lib.posix_spawnattr_init(attr);
    lib.posix_spawn_file_actions_init(actions);
    lib.posix_spawnattr_setflags(
      attr,
      POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF,
    );
    lib.posix_spawnattr_setsigmask(attr, new Uint8Array(SIGSET_BYTES));
    const defaults = new Uint8Array(SIGSET_BYTES);
    new DataView(defaults.buffer).setUint32(0, 0x7fffffff, true); // signals 1 to 31
    lib.posix_spawnattr_setsigdefault(attr, defaults);
    lib.posix_spawn_file_actions_addopen(actions, 0, cPath("/dev/null"), O_RDONLY, 0);
    lib.posix_spawn_file_actions_adddup2(actions, out.write, 1);
    lib.posix_spawn_file_actions_adddup2(actions, err.write, 2);
    const argv = cStrings([command.program, ...command.args]);
    const envp = cStrings(Object.entries(command.env).map(([key, value]) => `${key}=${value}`));
    const program = cPath(command.program);
    // The call runs on another thread: every buffer it reads stays referenced until it returns.
    const held = [program, argv, envp];
    inFlight.add(held);
    try {
      code = await lib.posix_spawn(pid, program, actions, attr, argv.table, envp.table);
    } finally {
      inFlight.delete(held);
    }
  } finally {
    lib.posix_spawn_file_actions_destroy(actions);
    lib.posix_spawnattr_destroy(attr);
    lib.close(out.write);
    lib.close(err.write);
  }
  if (code !== 0) {
    lib.close(out.read);
    lib.close(err.read);
    return code;
  }
  const childPid = pid[0]!;
  return {
    pid: childPid,
    status: watchExit(lib, childPid),
    stdout: new FdReader(out.read, lib),
    stderr: new FdReader(err.read, lib),
  };
}

/** A pipe whose ends close on exec; the read end is non-blocking, the child's end is not. */
function makePipe(lib: Libc): { read: number; write: number } {
  const fds = new Int32Array(2);
  if (lib.pipe2(fds, O_CLOEXEC) !== 0) {
    throw new Error(`Cannot create a pipe for a task: errno ${errno(lib)}`);
  }
  lib.fcntl(fds[0]!, F_SETFL, O_NONBLOCK);
  return { read: fds[0]!, write: fds[1]! };
}

/**
 * A NULL-terminated table of pointers to NUL-terminated strings (argv, envp). The strings'
 * buffer is returned too: it must stay alive as long as the table is used.
 */
function cStrings(strings: readonly string[]): { table: BigUint64Array; data: Uint8Array } {
  const encoder = new TextEncoder();
  const encoded = strings.map((text) => encoder.encode(`${text}\0`));
  const data = new Uint8Array(encoded.reduce((sum, bytes) => sum + bytes.length, 0));
  const table = new BigUint64Array(strings.length + 1);
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(data));
  let offset = 0;
  encoded.forEach((bytes, i) => {
    data.set(bytes, offset);
    table[i] = BigInt(base) + BigInt(offset);
    offset += bytes.length;
  });
  return { table, data };
}

/** Waits for the child's pidfd to become readable, then reaps the child. */
async function watchExit(lib: Libc, pid: number): Promise<Deno.CommandStatus> {
  // The pid cannot be reused before it is reaped, here: the pidfd names this child.
  const pidfd = pidfdOpen(lib, pid);
  const raw = new Int32Array(1);
  try {
    while (true) {
      const reaped = lib.waitpid(pid, raw, WNOHANG);
      if (reaped === pid) return decodeStatus(raw[0]!);
      if (reaped < 0) {
        const code = errno(lib);
        if (code === EINTR) continue;
        // Reaped by someone else: its status is lost.
        if (code === ECHILD) return { success: false, code: 1, signal: null };
        throw new Error(`Cannot wait for task process ${pid}: errno ${code}`);
      }
      if (pidfd < 0) throw new Error(`Cannot watch task process ${pid}: errno ${errno(lib)}`);
      await fdPoller().wait(pidfd, POLLIN);
    }
  } finally {
    if (pidfd >= 0) {
      fdPoller().forget(pidfd);
      lib.close(pidfd);
    }
  }
}

/** A `waitpid` status as Deno reports a child's. */
function decodeStatus(raw: number): Deno.CommandStatus {
  const termination = raw & 0x7f;
  if (termination === 0) {
    const code = (raw >> 8) & 0xff;
    return { success: code === 0, code, signal: null };
  }
  return { success: false, code: 128 + termination, signal: signalName(termination) };
}
