/**
 * The one buffer every pipe read of the engine reads into. A read is a synchronous call and
 * its bytes are copied out at once, before anything else runs: one shared buffer serves every
 * reader, where a buffer per reader (up to 1 MiB, zero-filled) cost an allocation per task.
 *
 * @module
 */

const SCRATCH_BYTES = 1024 * 1024;

/**
 * How much a pipe's reader reads before it lets other work run (broker heartbeats, other
 * tasks), however fast its writer fills the pipe.
 */
export const BYTES_BEFORE_YIELD = 4 * 1024 * 1024;
let scratch: Uint8Array | undefined;

/**
 * The shared read buffer, `bytes` long (at most 1 MiB). Copy what a read put in it before
 * the next `await`: the next reader overwrites it.
 */
export function readScratch(bytes: number): Uint8Array {
  scratch ??= new Uint8Array(SCRATCH_BYTES);
  return bytes >= SCRATCH_BYTES ? scratch : scratch.subarray(0, bytes);
}
