/**
 * The few libc calls the task engine makes through FFI: making FIFOs, and reading and writing
 * them without blocking. Deno runs file reads on a pool of 32 threads, and a read on a FIFO
 * holds its thread until data comes: sixteen tasks with two pipes each would take them all.
 *
 * @module
 */

/** Open flags and errno values of Linux (the same on x86_64 and aarch64). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const ENXIO = 6;
export const EAGAIN = 11;
export const EPIPE = 32;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
const F_SETPIPE_SZ = 1031;

const SYMBOLS = {
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // The one call that waits: run on a thread of its own, once for all pipes.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's functions. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: Libc | null | undefined;

/** libc through FFI, or null when FFI is not permitted or there is no glibc. */
export function libc(): Libc | null {
  if (loaded === undefined) {
    try {
      loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

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
export function errno(lib: Libc): number {
  const pointer = lib.__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

const encoder = new TextEncoder();

/** A NUL-terminated path for a libc call. */
export function cPath(path: string): Uint8Array {
  return encoder.encode(`${path}\0`);
}

/** Grows a pipe's buffer (the kernel caps it at /proc/sys/fs/pipe-max-size); best effort. */
export function growPipe(lib: Libc, fd: number, bytes: number): void {
  lib.fcntl(fd, F_SETPIPE_SZ, bytes);
}
