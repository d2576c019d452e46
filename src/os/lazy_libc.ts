/**
 * Opens glibc with `symbols` on the first call of the function returned, and keeps it open for
 * the process's life; that function gives null when FFI is not permitted or there is no glibc.
 *
 * @example
 * ```ts
 * const libc = lazyLibc({ getpid: { parameters: [], result: "i32" } });
 * const pid = libc()?.getpid();
 * ```
 */
export function lazyLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] | null {
  let loaded: Deno.DynamicLibrary<S>["symbols"] | null | undefined;
  return () => {
    if (loaded === undefined) {
      try {
        loaded = Deno.dlopen("libc.so.6", symbols).symbols;
      } catch {
        loaded = null;
      }
    }
    return loaded;
  };
}
