/**
 * The few libc calls the task engine makes through FFI: making FIFOs, and reading and writing
 * them without blocking (Deno runs file reads on a pool of 32 threads, and a read on a FIFO
 * holds its thread until data comes: sixteen tasks with two pipes each would take them all);
 * starting a task with `posix_spawn` and watching its exit through a pidfd (no helper
 * process, no thread); and the process attributes and `/proc` reads of the subreaper.
 *
 * @module
 */

import { lazyLibc } from "./lazy_libc.ts";

/** Open flags and errno values of Linux (the same on x86_64 and aarch64). */
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const ENOEXEC = 8;
export const EAGAIN = 11;
export const ECHILD = 10;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const F_SETFL = 4;
export const WNOHANG = 1;
export const IN_OPEN = 0x20;
const F_SETPIPE_SZ = 1031;
// The same number on x86_64 and aarch64 (the syscall table shared since Linux 5.1).
const SYS_PIDFD_OPEN = 434;

/**
 * What a runner asks of libc before it consumes: `prctl` on itself, and the reads and kills of
 * the stale-task reaper's `/proc` scan. Bound apart, as {@linkcode procLibc}: Deno compiles a
 * call stub for every symbol it binds (some 0.15 ms each), and start-up need not wait for the
 * engine's, which its first task binds.
 */
const PROC_SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const SYMBOLS = {
  ...PROC_SYMBOLS,
  // Making a FIFO is one quick call, made in place (a pool thread's hop costs more).
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  // The child's exec takes a while (vfork): on a pool thread, the event loop goes on meanwhile.
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  getsid: { parameters: ["i32"], result: "i32" },
  inotify_init1: { parameters: ["i32"], result: "i32" },
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  inotify_rm_watch: { parameters: ["i32", "i32"], result: "i32" },
  // poll() with a timeout of 0, made in place (a hop to a worker thread is all it would cost).
  pollNow: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // Waits on a pool thread: the one thread the engine's descriptors are watched by.
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  // epoll_wait() with a timeout of 0, made in place: events already there, without a hop.
  epollWaitNow: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // The runner's, not the engine's (src/os/release_memory.ts): on a pool thread, as it
  // walks every arena of the allocator.
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's functions. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The functions of {@linkcode procLibc}; {@linkcode Libc} has them all too. */
export type ProcLibc = Deno.DynamicLibrary<typeof PROC_SYMBOLS>["symbols"];

/** libc through FFI, or null when FFI is not permitted or there is no glibc. */
export const libc: () => Libc | null = lazyLibc(SYMBOLS);

/**
 * The calls a runner makes before it consumes (see `PROC_SYMBOLS`), bound on their own, or
 * null when FFI is not permitted or there is no glibc.
 */
export const procLibc: () => ProcLibc | null = lazyLibc(PROC_SYMBOLS);

/** libc, or an error that says why the engine cannot work without it. */
export function requireLibc(): Libc {
  const lib = libc();
  if (!lib) {
    throw new Error(
      "Cannot use libc through FFI (needs --allow-ffi and glibc): FIFOs cannot be read without blocking",
    );
  }
  return lib;
}

/** The calling thread's errno; read it right after the failed call. */
export function errno(lib: ProcLibc): number {
  const pointer = lib.__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

const encoder = new TextEncoder();

/** A NUL-terminated path for a libc call. */
export function cPath(path: string): Uint8Array {
  return encoder.encode(`${path}\0`);
}

/**
 * A pidfd for a child process (Linux 5.3+): readable once the process has exited.
 *
 * @returns the descriptor, or -1 (see `errno`)
 */
export function pidfdOpen(lib: Libc, pid: number): number {
  return Number(lib.syscall(BigInt(SYS_PIDFD_OPEN), BigInt(pid), 0n));
}

/** Grows a pipe's buffer (the kernel caps it at /proc/sys/fs/pipe-max-size); best effort. */
export function growPipe(lib: Libc, fd: number, bytes: number): void {
  lib.fcntl(fd, F_SETPIPE_SZ, bytes);
}
