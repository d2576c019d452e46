/**
 * Gives a large payload's memory back to the system once its buffers are garbage.
 *
 * @module
 */

import { libc } from "../task/libc.ts";
import { garbageCollector } from "../util/gc.ts";

/**
 * A full garbage collection, then `malloc_trim`: the collection frees the buffers (V8 would
 * not soon: they live outside its heap), and the trim returns to the system what glibc keeps of
 * them (its heaps hold freed memory for reuse, one heap per thread that allocated, and a 64 MiB
 * echo left the runner ~150 MB larger). Call it after a turn of the event loop, so that no
 * frame still holds what was just let go. Without FFI the trim is skipped; where `gc()` cannot
 * be exposed, nothing is done.
 */
export async function releaseMemory(): Promise<void> {
  const collect = await garbageCollector();
  if (!collect) return;
  collect();
  await libc()?.malloc_trim(0n);
}
