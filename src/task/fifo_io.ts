import { delay } from "../util/async.ts";
import { type FdPoller, fdPoller } from "./fd_poller.ts";
import {
  cPath,
  EAGAIN,
  EINTR,
  errno,
  growPipe,
  type Libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  POLLIN,
  POLLOUT,
  requireLibc,
} from "./libc.ts";
import { type OpenWatch, openWatcher } from "./open_watcher.ts";

/** Receives what a {@linkcode FifoReader} reads. */
export interface FifoSink {
  /** Bytes read, in order; the chunk is owned by the sink. */
  data(chunk: Uint8Array): void;
  /** Everything written before `stop()` has been read. */
  end(): void;
}

// Pipes hold 64 KiB by default; a larger one means fewer wake-ups for large outputs.
const PIPE_BYTES = 1024 * 1024;
// Read at most this much before letting other work run (broker heartbeats, other tasks).
const BYTES_BEFORE_YIELD = 4 * 1024 * 1024;

/**
 * Reads a FIFO for as long as the task runs, however often the task opens, writes and closes
 * it, without ever holding a thread.
 *
 * The FIFO is opened read-write and non-blocking: the task's opens never wait, no write is
 * lost between one writer's close and the next one's open (with a read-only reader, the kernel
 * drops what a writer leaves in the pipe if the reader closes after its end of file), and the
 * reader waits for data through the shared {@linkcode FdPoller}. Since it never sees end of
 * file, `stop()` (called once the task's process group is gone) reads until the pipe is empty.
 */
export class FifoReader {
  readonly #path: string;
  readonly #sink: FifoSink;
  readonly #bufferBytes: number;
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  #fd = -1;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #error: unknown;

  /**
   * @param path the FIFO
   * @param sink receives the bytes
   * @param options `bufferBytes`: read size (default 64 KiB)
   */
  constructor(path: string, sink: FifoSink, options: { bufferBytes?: number } = {}) {
    this.#path = path;
    this.#sink = sink;
    this.#bufferBytes = options.bufferBytes ?? 64 * 1024;
    this.#lib = requireLibc();
    this.#poller = fdPoller();
  }

  /** Opens the FIFO (never blocks) and reads it in the background. */
  start(): void {
    if (this.#loop) return;
    this.#fd = this.#lib.open(cPath(this.#path), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (this.#fd < 0) {
      throw new Error(`Cannot open FIFO "${this.#path}": errno ${errno(this.#lib)}`);
    }
    if (this.#bufferBytes > 64 * 1024) growPipe(this.#lib, this.#fd, PIPE_BYTES);
    this.#loop = this.#run().catch((error) => {
      this.#error = error;
    }).finally(() => {
      this.#lib.close(this.#fd);
      this.#fd = -1;
    });
  }

  async #run(): Promise<void> {
    const buffer = new Uint8Array(this.#bufferBytes);
    let sinceYield = 0;
    while (true) {
      const n = Number(this.#lib.read(this.#fd, buffer, BigInt(buffer.length)));
      if (n > 0) {
        this.#sink.data(buffer.slice(0, n));
        sinceYield += n;
        if (sinceYield >= BYTES_BEFORE_YIELD) {
          sinceYield = 0;
          await delay(0);
        }
        continue;
      }
      const code = n === 0 ? EAGAIN : errno(this.#lib);
      if (code === EINTR) continue;
      if (code !== EAGAIN) throw new Error(`Cannot read FIFO "${this.#path}": errno ${code}`);
      // Empty. Once stopping, no writer is left: empty means done.
      if (this.#stopping) break;
      sinceYield = 0;
      await this.#poller.wait(this.#fd, POLLIN);
    }
    this.#sink.end();
  }

  /**
   * Reads what the pipe still holds, then stops and closes it; call it when the task's process
   * group has exited.
   *
   * @throws the error that ended reading early, if any
   */
  async stop(): Promise<void> {
    if (!this.#loop) return;
    this.#stopping = true;
    this.#poller.release(this.#fd);
    await this.#loop;
    if (this.#error !== undefined) throw this.#error;
  }
}

/**
 * Writes bytes into a FIFO once, as the task's input, without ever holding a thread and
 * without polling for the task's open: the FIFO is opened read-write (which never waits for,
 * nor fails for want of, a reader), the bytes go in as the pipe takes them, and the write end
 * is closed, which the task reads as end of file, once the task has opened its end, as an
 * inotify `IN_OPEN` event says (closing before would drop what the pipe holds). A task that
 * exits without reading its input is not an error; `stop()` ends the wait.
 */
export class FifoWriter {
  readonly #path: string;
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  readonly #stopping = new AbortController();
  #fd = -1;
  #watch: OpenWatch | undefined;
  #job: Promise<void> | undefined;
  #error: unknown;

  constructor(path: string) {
    this.#path = path;
    this.#lib = requireLibc();
    this.#poller = fdPoller();
  }

  /** Starts writing `data` in the background. */
  start(data: Uint8Array): void {
    this.#job ??= this.#write(data).catch((error) => {
      this.#error = error;
    }).finally(() => {
      this.#watch?.close();
      if (this.#fd >= 0) this.#lib.close(this.#fd);
      this.#fd = -1;
    });
  }

  async #write(data: Uint8Array): Promise<void> {
    // The watch comes first, so that no open is missed, and our own open is counted at once,
    // so that the task's is the second. Call start() before the task is started: a task that
    // opened first would wait in its open for ours, and the two events could merge into one.
    const watcher = openWatcher();
    this.#watch = watcher.watch(this.#path);
    this.#fd = this.#lib.open(cPath(this.#path), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (this.#fd < 0) {
      throw new Error(`Cannot open FIFO "${this.#path}": errno ${errno(this.#lib)}`);
    }
    watcher.drain();
    if (data.length > 64 * 1024) growPipe(this.#lib, this.#fd, PIPE_BYTES);
    let offset = 0;
    while (offset < data.length) {
      const chunk = data.subarray(offset, offset + PIPE_BYTES);
      const n = Number(this.#lib.write(this.#fd, chunk, BigInt(chunk.length)));
      if (n > 0) {
        offset += n;
        continue;
      }
      const code = errno(this.#lib);
      if (code === EINTR) continue;
      if (code !== EAGAIN) throw new Error(`Cannot write FIFO "${this.#path}": errno ${code}`);
      if (this.#stopping.signal.aborted) return;
      await this.#poller.wait(this.#fd, POLLOUT);
    }
    await this.#watch.opened(2);
  }

  /**
   * Stops writing; call it when the task's process group has exited.
   *
   * @returns the error that ended writing early, if any
   */
  async stop(): Promise<unknown> {
    if (!this.#job) return undefined;
    this.#stopping.abort();
    this.#watch?.close();
    if (this.#fd >= 0) this.#poller.release(this.#fd);
    await this.#job;
    return this.#error;
  }
}
