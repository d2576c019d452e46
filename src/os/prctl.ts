/**
 * `prctl(2)` through FFI, for what the runner asks of the kernel about itself at start-up. It
 * goes through the binding of the calls made before consuming (`procLibc` of
 * `src/os/libc.ts`), not the engine's whole one (the subreaper's `prctl`), which the first task
 * binds.
 *
 * @module
 */

import { errno, procLibc } from "./libc.ts";

const PR_SET_DUMPABLE = 4;

function call(option: number, arg: number): number {
  const lib = procLibc();
  if (!lib) throw new Error("Cannot call libc through FFI (needs --allow-ffi and glibc)");
  const result = lib.prctl(option, BigInt(arg), 0n, 0n, 0n);
  if (result < 0) throw new Error(`prctl(${option}) failed with errno ${errno(lib)}`);
  return result;
}

/**
 * Makes this process non-dumpable (`PR_SET_DUMPABLE` 0): processes of the same user (tasks
 * run without `--uid`) can no longer read its `/proc/<pid>/environ` or memory, nor ptrace it,
 * and it leaves no core dump. Its children are dumpable again once they exec.
 *
 * @throws {Error} when FFI is not permitted, libc is missing, or the call fails
 */
export function makeNonDumpable(): void {
  call(PR_SET_DUMPABLE, 0);
}
