/**
 * Full garbage collections on demand, for the moments when a large payload's buffers have just
 * become garbage. V8 collects by the size of its own heap; a 64 MiB request's buffers live
 * outside it (ArrayBuffers), so they can stay resident, several copies deep, for seconds after
 * their last use unless a collection is asked for.
 *
 * @module
 */
import v8 from "node:v8";
import vm from "node:vm";

/** Runs a full, blocking garbage collection. */
export type CollectGarbage = () => void;

let collector: CollectGarbage | null | undefined;

/**
 * The engine's `gc()`: `globalThis.gc` when Deno runs with `--v8-flags=--expose-gc`, otherwise
 * exposed at run time, on first use (the V8 flag applies to contexts made after it is set, so
 * a fresh one hands it over). Imported statically, as the compiled binary wants every module.
 *
 * @returns undefined where the engine does not let it be exposed: collections are then left
 * to V8, as without this module
 */
export function garbageCollector(): CollectGarbage | undefined {
  if (collector === undefined) {
    try {
      collector = expose() ?? null;
    } catch {
      collector = null;
    }
  }
  return collector ?? undefined;
}

function expose(): CollectGarbage | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === "function") return exposed as CollectGarbage;
  v8.setFlagsFromString("--expose-gc");
  const gc: unknown = vm.runInNewContext("gc");
  return typeof gc === "function" ? gc as CollectGarbage : undefined;
}
