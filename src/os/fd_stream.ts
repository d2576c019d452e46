import { type FdPoller, fdPoller } from "./fd_poller.ts";
import { EAGAIN, EINTR, errno, type Libc, POLLIN, requireLibc } from "./libc.ts";
import { readScratch } from "./read_scratch.ts";

const READ_BYTES = 64 * 1024;

/**
 * The read end of a pipe (non-blocking) as a byte stream, read through the shared
 * {@linkcode FdPoller}: no thread waits on it. The descriptor is closed at end of file, on
 * cancel, or by `close()`.
 */
export class FdStream {
  /** The bytes, until end of file (every writer closed) or `close()`. */
  readonly readable: ReadableStream<Uint8Array>;
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  #fd: number;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #pulling = false;

  /** @param fd a non-blocking descriptor the stream now owns */
  constructor(fd: number, lib: Libc = requireLibc()) {
    this.#fd = fd;
    this.#lib = lib;
    this.#poller = fdPoller();
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    this.#pulling = true;
    try {
      const buffer = readScratch(READ_BYTES);
      while (this.#fd >= 0) {
        const n = Number(this.#lib.read(this.#fd, buffer, BigInt(buffer.length)));
        if (n > 0) return controller.enqueue(buffer.slice(0, n));
        if (n === 0) return this.#end();
        const code = errno(this.#lib);
        if (code === EINTR) continue;
        if (code !== EAGAIN) {
          this.#release();
          return controller.error(new Error(`Cannot read a task's pipe: errno ${code}`));
        }
        await this.#poller.wait(this.#fd, POLLIN);
      }
      // Closed while waiting.
      this.#end();
    } finally {
      this.#pulling = false;
    }
  }

  #end(): void {
    this.#release();
    try {
      this.#controller?.close();
    } catch {
      // already closed or errored
    }
  }

  #release(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#poller.release(fd);
    this.#lib.close(fd);
  }

  /**
   * Stops reading (what a detached grandchild still writes is not waited for) and closes the
   * descriptor; the stream ends.
   */
  close(): void {
    if (this.#fd < 0) return;
    if (this.#pulling) {
      // The pull wakes up, sees the descriptor gone and ends the stream itself.
      const fd = this.#fd;
      this.#fd = -1;
      this.#poller.release(fd);
      this.#lib.close(fd);
      return;
    }
    this.#end();
  }
}
