/**
 * Gives a large payload's memory back to the system once its buffers are garbage.
 *
 * @module
 */

import { libc } from "./libc.ts";
import { garbageCollector } from "./gc.ts";

/**
 * A full garbage collection, then, with `trim`, `malloc_trim`: the collection frees the
 * buffers (V8 would not soon: they live outside its heap); a buffer of 32 MiB or more goes back
 * to the system at once, being mapped by itself, but glibc keeps smaller ones in its heaps (one
 * per thread that allocated) for reuse, which the trim returns (the broker client's frames of a
 * 64 MiB echo left the runner ~150 MB larger). Call it after a turn of the event loop, so that
 * no frame still holds what was just let go. Without FFI the trim is skipped; where `gc()`
 * cannot be exposed, nothing is done.
 *
 * @param options `trim`: also trim glibc's heaps (a few ms, more on a busy machine)
 */
export async function releaseMemory(options: { trim?: boolean } = {}): Promise<void> {
  const collect = garbageCollector();
  if (!collect) return;
  collect();
  if (options.trim) await libc()?.malloc_trim(0n);
}
