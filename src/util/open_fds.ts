/**
 * Counts the process's open file descriptors by listing `/proc/self/fd` through libc. Deno
 * opens `/proc/self` only to `--allow-all`, and a child process (`ls`) cannot list it once the
 * runner is non-dumpable, unless it runs as root.
 *
 * @module
 */

import { lazyLibc } from "./lazy_libc.ts";
const SYMBOLS = {
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

// Offset of `d_name` in glibc's `struct dirent` on 64-bit Linux (ino, off, reclen, type).
const D_NAME_OFFSET = 19;
const DOT = 0x2e;

const libc = lazyLibc(SYMBOLS);

/**
 * The number of open file descriptors (the one used to count them not included), or
 * undefined where libc cannot be called (no FFI permission, no glibc, not Linux).
 */
export function countOpenFds(): number | undefined {
  const loaded = libc();
  if (!loaded) return undefined;
  const dir = loaded.opendir(new TextEncoder().encode("/proc/self/fd\0"));
  if (!dir) return undefined;
  let count = 0;
  try {
    for (let entry = loaded.readdir(dir); entry; entry = loaded.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry);
      const first = name.getUint8(D_NAME_OFFSET);
      const second = name.getUint8(D_NAME_OFFSET + 1);
      const third = name.getUint8(D_NAME_OFFSET + 2);
      const isDot = first === DOT && (second === 0 || (second === DOT && third === 0));
      if (!isDot) count++;
    }
  } finally {
    loaded.closedir(dir);
  }
  return count - 1; // the directory being read
}
