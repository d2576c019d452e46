/**
 * Reads of `/proc` through libc. Deno grants `/proc` only to programs with every permission,
 * and the runner has not got them; the kernel lets a process read its own entries and those
 * of its user's (or, as root, any) processes.
 *
 * @module
 */
import { cPath, type Libc, libc, O_CLOEXEC, O_RDONLY, type ProcLibc } from "./libc.ts";
import { concatBytes } from "../util/bytes.ts";
import { readScratch } from "./read_scratch.ts";

const READ_BYTES = 16 * 1024;
// The main thread's children, one pid in at most 8 bytes each: room for 512 in one read.
const CHILDREN_READ_BYTES = 4 * 1024;
// "4194304 ": the longest pid (PID_MAX_LIMIT) and its space.
const MAX_PID_ENTRY_BYTES = 8;
// struct dirent on 64-bit glibc: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
const DIRENT_NAME_OFFSET = 19;

/** A file's bytes, or undefined when it cannot be read (the process is gone). */
export function readProcFile(lib: ProcLibc, path: string): Uint8Array | undefined {
  const fd = lib.open(cPath(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    // The engine's one read buffer: a scan of /proc at start-up reads a file per process.
    const readBuffer = readScratch(READ_BYTES);
    const parts: Uint8Array[] = [];
    while (true) {
      const n = Number(lib.read(fd, readBuffer, BigInt(readBuffer.length)));
      if (n < 0) return undefined;
      if (n === 0) break;
      parts.push(readBuffer.slice(0, n));
    }
    return parts.length === 1 ? parts[0] : concatBytes(parts);
  } finally {
    lib.close(fd);
  }
}

/**
 * A symbolic link's target under `/proc` (e.g. `/proc/<pid>/ns/pid`), or undefined when it
 * cannot be read. Through libc: Deno lets only a program with every permission read `/proc`.
 */
export function readProcLink(lib: ProcLibc, path: string): string | undefined {
  const buffer = new Uint8Array(256);
  const n = Number(lib.readlink(cPath(path), buffer, BigInt(buffer.length)));
  return n > 0 && n < buffer.length ? new TextDecoder().decode(buffer.subarray(0, n)) : undefined;
}

/** The names in a directory (without `.` and `..`), or [] when it cannot be read. */
export function listDir(lib: ProcLibc, path: string): string[] {
  const dir = lib.opendir(cPath(path));
  if (!dir) return [];
  const names: string[] = [];
  try {
    for (let entry = lib.readdir(dir); entry; entry = lib.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry).getCString(DIRENT_NAME_OFFSET);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    lib.closedir(dir);
  }
  return names;
}

/** What `/proc/<pid>/stat` says of a process. */
export interface ProcStat {
  /** R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

/** A process's state, parent, group and session, or undefined when it is gone. */
export function readStat(lib: ProcLibc, pid: number): ProcStat | undefined {
  const bytes = readProcFile(lib, `/proc/${pid}/stat`);
  if (!bytes) return undefined;
  const text = new TextDecoder().decode(bytes);
  // The command name, in parentheses, may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: fields[0] ?? "",
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    session: Number(fields[3]),
  };
}

/**
 * The children of this process's main thread: every orphan re-parented to this process (a
 * child subreaper) lands there, since the kernel hands orphans to the first live thread of
 * the reaper. Children forked by other threads (task leaders, spawned on a worker thread)
 * are not listed; they are tracked by their pids. One read instead of one per thread, and one
 * call: the file stays open, and a `pread` at offset 0 makes the kernel list them afresh (an
 * open, a read and a close at each task's end were three quarters of this look-up).
 */
export function mainThreadChildren(lib: Libc): number[] {
  childrenFd ??= lib.open(
    cPath(`/proc/self/task/${Deno.pid}/children`),
    O_RDONLY | O_CLOEXEC,
    0,
  );
  const bytes = childrenFd >= 0
    ? preadAll(lib, childrenFd)
    : readProcFile(lib, `/proc/self/task/${Deno.pid}/children`);
  if (!bytes || bytes.length === 0) return [];
  return new TextDecoder().decode(bytes).split(" ").filter((word) => word.length > 0).map(
    Number,
  );
}

let childrenFd: number | undefined;
let childrenBuffer: Uint8Array | undefined;

/** The whole of a `/proc` file kept open, read from its start. */
function preadAll(lib: Libc, fd: number): Uint8Array | undefined {
  childrenBuffer ??= new Uint8Array(CHILDREN_READ_BYTES);
  const parts: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const n = Number(lib.pread(fd, childrenBuffer, BigInt(childrenBuffer.length), BigInt(size)));
    if (n < 0) return undefined;
    if (n === 0) break;
    parts.push(childrenBuffer.slice(0, n));
    size += n;
    // A seq_file fills the buffer with whole entries: room left for one more means the end.
    if (n <= childrenBuffer.length - MAX_PID_ENTRY_BYTES) break;
  }
  if (parts.length === 1) return parts[0];
  return concatBytes(parts, size);
}

/** The value of one variable in a process's initial environment, if readable and present. */
export function environValue(lib: ProcLibc, pid: number, name: string): string | undefined {
  const bytes = readProcFile(lib, `/proc/${pid}/environ`);
  if (!bytes) return undefined;
  // Searched in place, not split into entries: the reaper looks into every process's.
  const text = decoder.decode(bytes);
  const prefix = `${name}=`;
  let start: number;
  if (text.startsWith(prefix)) {
    start = prefix.length;
  } else {
    const entry = text.indexOf(`\0${prefix}`);
    if (entry < 0) return undefined;
    start = entry + 1 + prefix.length;
  }
  const end = text.indexOf("\0", start);
  return text.slice(start, end < 0 ? undefined : end);
}

const decoder = new TextDecoder();

/**
 * The number of this process's open file descriptors (the one used to count them not
 * included), or undefined where libc cannot be called (no FFI permission, no glibc) or
 * `/proc/self/fd` cannot be listed.
 */
export function countOpenFds(): number | undefined {
  const lib = libc();
  if (!lib) return undefined;
  const names = listDir(lib, "/proc/self/fd");
  return names.length > 0 ? names.length - 1 : undefined; // less the directory being read
}
