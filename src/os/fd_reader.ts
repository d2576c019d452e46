import { type FdPoller, fdPoller } from "./fd_poller.ts";
import { EAGAIN, EINTR, errno, type Libc, POLLIN, requireLibc } from "./libc.ts";
import { BYTES_BEFORE_YIELD, readScratch } from "./read_scratch.ts";
import { yieldToEventLoop } from "../util/async.ts";

const READ_BYTES = 64 * 1024;

/**
 * The read end of a pipe (non-blocking), read through the shared {@linkcode FdPoller} and
 * handed on chunk by chunk: no thread waits on it, and no stream stands between the pipe and
 * its reader (a ReadableStream, its controller, reader, queues and pending promises cost some
 * 2 KiB of heap for each of a running task's two pipes). The descriptor is closed at end of
 * file, on a read error, or by `close()`.
 */
export class FdReader {
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  #fd: number;
  #reading = false;

  /** @param fd a non-blocking descriptor the reader now owns */
  constructor(fd: number, lib: Libc = requireLibc()) {
    this.#fd = fd;
    this.#lib = lib;
    this.#poller = fdPoller();
  }

  /**
   * Reads until end of file or `close()`, passing each chunk read to `onChunk` (the chunk is
   * its own). Call it once.
   *
   * @throws when a read fails
   */
  async readAll(onChunk: (chunk: Uint8Array) => void): Promise<void> {
    if (this.#reading) throw new Error("The pipe is already being read");
    this.#reading = true;
    const buffer = readScratch(READ_BYTES);
    let sinceYield = 0;
    try {
      while (this.#fd >= 0) {
        const n = Number(this.#lib.read(this.#fd, buffer, BigInt(buffer.length)));
        if (n > 0) {
          onChunk(buffer.slice(0, n));
          sinceYield += n;
          if (sinceYield >= BYTES_BEFORE_YIELD) {
            sinceYield = 0;
            await yieldToEventLoop();
          }
          continue;
        }
        if (n === 0) return;
        const code = errno(this.#lib);
        if (code === EINTR) continue;
        if (code !== EAGAIN) throw new Error(`Cannot read a task's pipe: errno ${code}`);
        sinceYield = 0;
        await this.#poller.wait(this.#fd, POLLIN);
      }
      // Closed while waiting.
    } finally {
      this.close();
    }
  }

  /**
   * Stops reading (what a detached grandchild still writes is not waited for) and closes the
   * descriptor; `readAll` resolves.
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    // A pending wait wakes up, sees the descriptor gone and ends the read.
    this.#poller.forget(fd);
    this.#lib.close(fd);
  }
}
