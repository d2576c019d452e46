/**
 * `prctl(2)` through FFI, for what the runner asks of the kernel about itself.
 *
 * @module
 */

const PR_SET_DUMPABLE = 4;

const SYMBOLS = {
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Prctl = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: Prctl | undefined;

function library(): Prctl {
  // Kept open for the process's life: a handful of calls, no reason to reload.
  loaded ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return loaded;
}

function call(option: number, arg: number): number {
  const lib = library();
  const result = lib.prctl(option, BigInt(arg), 0n, 0n, 0n);
  if (result < 0) {
    const pointer = lib.__errno_location();
    const errno = pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
    throw new Error(`prctl(${option}) failed with errno ${errno}`);
  }
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
