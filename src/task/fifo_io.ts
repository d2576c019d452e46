import { yieldToEventLoop } from "../util/async.ts";
import { type FdPoller, fdPoller } from "../os/fd_poller.ts";
import {
  cPath,
  EAGAIN,
  EINTR,
  errno,
  growPipe,
  type Libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  POLLIN,
  POLLOUT,
  requireLibc,
} from "../os/libc.ts";
import { type OpenWatch, openWatcher } from "../os/open_watcher.ts";
import { BYTES_BEFORE_YIELD, readScratch } from "../os/read_scratch.ts";

/** Receives what a {@linkcode FifoReader} reads. */
export interface FifoSink {
  /** Bytes read, in order; the chunk is owned by the sink. */
  data(chunk: Uint8Array): void;
  /** A writer has opened the FIFO since the last `closed` (seen at its first write at the latest). */
  opened?(): void;
  /**
   * Every writer seen since the last call has closed its end, and all it wrote has been
   * passed to `data`: one open-write-close is complete (possibly without any byte).
   */
  closed?(): void;
  /** Everything written before `stop()` has been read. */
  end(): void;
}

// Pipes hold 64 KiB by default; a larger one means fewer wake-ups for large outputs.
const PIPE_BYTES = 1024 * 1024;
const POLLHUP = 0x10;
const POLL_ONE_BYTES = 8;

/**
 * Reads a FIFO for as long as the task runs, however often the task opens, writes and closes
 * it, without ever holding a thread, and tells each open-write-close from the next.
 *
 * The FIFO is opened read-only and non-blocking before the task starts, so the task's opens
 * never wait. Linux reports a hang-up (POLLHUP, then end of file) on a read-only descriptor
 * once every writer that connected after that descriptor was opened has closed: that marks
 * the end of one open-write-close, even one without a byte. The hang-up then stays until the
 * next writer comes, so the reader moves to a fresh descriptor, opened before the old one is
 * closed: the FIFO always has a reader, so no writer ever meets EPIPE and nothing written is
 * lost between one writer's close and the next one's open. `stop()` (called once the task's
 * process group is gone) reads until the pipe is empty.
 */
export class FifoReader {
  readonly #path: string;
  readonly #sink: FifoSink;
  readonly #bufferBytes: number;
  readonly #closeOnStop: boolean;
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  #fd = -1;
  /** The descriptor that takes over once the current one has seen no new writer. */
  #next = -1;
  /** A writer connected to the current descriptor since its last close was reported. */
  #writer = false;
  /** Bytes read since the current writer was seen. */
  #bytesSinceOpen = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #error: unknown;

  /**
   * @param path the FIFO
   * @param sink receives the bytes and the writers' opens and closes
   * @param options `bufferBytes`: read size (default 64 KiB); `closeOnStop`: a writer still
   * connected at `stop()` that wrote bytes counts as closed (its write complete)
   */
  constructor(
    path: string,
    sink: FifoSink,
    options: { bufferBytes?: number; closeOnStop?: boolean } = {},
  ) {
    this.#path = path;
    this.#sink = sink;
    this.#bufferBytes = options.bufferBytes ?? 64 * 1024;
    this.#closeOnStop = options.closeOnStop ?? false;
    this.#lib = requireLibc();
    this.#poller = fdPoller();
  }

  /** Opens the FIFO (never blocks) and reads it in the background. */
  start(): void {
    if (this.#loop) return;
    this.#fd = this.#openReader();
    if (this.#bufferBytes > 64 * 1024) growPipe(this.#lib, this.#fd, PIPE_BYTES);
    this.#loop = this.#run().catch((error) => {
      this.#error = error;
    }).finally(() => {
      for (const fd of [this.#fd, this.#next]) {
        if (fd < 0) continue;
        this.#poller.forget(fd);
        this.#lib.close(fd);
      }
      this.#fd = this.#next = -1;
    });
  }

  #openReader(): number {
    const fd = this.#lib.open(cPath(this.#path), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw new Error(`Cannot open FIFO "${this.#path}": errno ${errno(this.#lib)}`);
    return fd;
  }

  async #run(): Promise<void> {
    const buffer = readScratch(this.#bufferBytes);
    let sinceYield = 0;
    while (true) {
      const n = Number(this.#lib.read(this.#fd, buffer, BigInt(buffer.length)));
      if (n > 0) {
        this.#writerSeen();
        this.#bytesSinceOpen += n;
        this.#sink.data(buffer.slice(0, n));
        sinceYield += n;
        if (sinceYield >= BYTES_BEFORE_YIELD) {
          sinceYield = 0;
          await yieldToEventLoop();
        }
        continue;
      }
      sinceYield = 0;
      const code = n === 0 ? 0 : errno(this.#lib);
      if (code === EINTR) continue;
      if (code !== 0 && code !== EAGAIN) {
        throw new Error(`Cannot read FIFO "${this.#path}": errno ${code}`);
      }
      if (code === EAGAIN) {
        // A writer is connected and has nothing more for now. It hangs up on this descriptor.
        this.#writerSeen();
        this.#dropNext();
        if (this.#stopping) {
          // A writer outlived the task's processes (a daemon that cannot be told to be the
          // task's kept the pipe open): the task has ended, so what it wrote is complete.
          if (this.#closeOnStop && this.#bytesSinceOpen > 0) this.#writerClosed();
          break;
        }
        await this.#poller.wait(this.#fd, POLLIN);
        continue;
      }
      // End of file: no writer is connected and the pipe is empty.
      if (this.#writer) {
        this.#writerClosed();
        this.#dropNext();
        this.#next = this.#openReader();
        continue; // one more read on the old descriptor: did a writer come meanwhile?
      }
      if (this.#next >= 0) {
        // Nobody came since the fresh descriptor was opened: it takes over.
        this.#poller.forget(this.#fd);
        this.#lib.close(this.#fd);
        this.#fd = this.#next;
        this.#next = -1;
      }
      if (this.#stopping) {
        // Every writer is gone; one that opened and closed without writing left only a hang-up.
        if (this.#hungUp()) {
          this.#writerSeen();
          this.#writerClosed();
        }
        break;
      }
      // Before any writer, poll() waits; data or a hang-up means one has come.
      const revents = await this.#poller.wait(this.#fd, POLLIN);
      if (revents & (POLLIN | POLLHUP)) this.#writerSeen();
    }
    this.#sink.end();
  }

  #writerSeen(): void {
    if (this.#writer) return;
    this.#writer = true;
    this.#sink.opened?.();
  }

  #writerClosed(): void {
    this.#writer = false;
    this.#bytesSinceOpen = 0;
    this.#sink.closed?.();
  }

  #dropNext(): void {
    if (this.#next < 0) return;
    this.#lib.close(this.#next);
    this.#next = -1;
  }

  #hungUp(): boolean {
    const table = new Uint8Array(POLL_ONE_BYTES);
    const view = new DataView(table.buffer);
    view.setInt32(0, this.#fd, true);
    view.setInt16(4, POLLIN, true);
    if (this.#lib.pollNow(table, 1n, 0) <= 0) return false;
    return (view.getInt16(6, true) & POLLHUP) !== 0;
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
  // A flag, not an AbortController: abort() without a reason builds a DOMException, stack and
  // all, at every task's end.
  #stopping = false;
  #fd = -1;
  #watch: OpenWatch | undefined;
  #job: Promise<void> | undefined;
  #error: unknown;

  constructor(path: string) {
    this.#path = path;
    this.#lib = requireLibc();
    this.#poller = fdPoller();
  }

  /**
   * Starts writing `data` in the background.
   *
   * @param onWritten called once every byte has been written and the pipe closed
   */
  start(data: Uint8Array, onWritten?: () => void): void {
    this.#job ??= this.#write(data).then((complete) => {
      if (complete) onWritten?.();
    }).catch((error) => {
      this.#error = error;
    }).finally(() => {
      this.#watch?.close();
      if (this.#fd >= 0) {
        this.#poller.forget(this.#fd);
        this.#lib.close(this.#fd);
      }
      this.#fd = -1;
    });
  }

  // Resolves true once all was written and the task has opened its end, false when `stop()`
  // ended it first.
  async #write(data: Uint8Array): Promise<boolean> {
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
      if (this.#stopping) return false;
      await this.#poller.wait(this.#fd, POLLOUT);
    }
    await this.#watch.opened(2);
    if (this.#stopping) return false;
    this.#poller.forget(this.#fd);
    this.#lib.close(this.#fd);
    this.#fd = -1;
    return true;
  }

  /**
   * Stops writing; call it when the task's process group has exited.
   *
   * @returns the error that ended writing early, if any
   */
  async stop(): Promise<unknown> {
    if (!this.#job) return undefined;
    this.#stopping = true;
    this.#watch?.close();
    if (this.#fd >= 0) this.#poller.release(this.#fd);
    await this.#job;
    return this.#error;
  }
}
