import { settlesWithin } from "../util/async.ts";

/** Receives what a {@linkcode FifoReader} reads. */
export interface FifoSink {
  /** Bytes read; the chunk is owned by the sink. */
  data(chunk: Uint8Array): void;
  /** The writer closed the pipe: the end of one open/write/close cycle. */
  end(): void;
}

/** How long `stop()` waits for a pipe to drain before it forces the other side loose. */
export const FIFO_DRAIN_MS = 2_000;

/**
 * Reads a FIFO over and over: the task may open, write and close it any number of times.
 *
 * Opening a FIFO for reading blocks a thread until a writer arrives, so `stop()` releases a
 * pending open by briefly becoming a writer itself, and never leaves a thread blocked.
 */
export class FifoReader {
  readonly #path: string;
  readonly #sink: FifoSink;
  #stopped = false;
  #discard = false;
  #pendingOpen: Promise<Deno.FsFile> | undefined;
  #loop: Promise<void> | undefined;
  #error: unknown;

  constructor(path: string, sink: FifoSink) {
    this.#path = path;
    this.#sink = sink;
  }

  /** Starts reading in the background. */
  start(): void {
    this.#loop ??= this.#run().catch((error) => {
      this.#error = error;
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const opening = Deno.open(this.#path, { read: true });
      this.#pendingOpen = opening;
      let file: Deno.FsFile;
      try {
        file = await opening;
      } finally {
        this.#pendingOpen = undefined;
      }
      const reader = file.readable.getReader();
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        if (this.#discard) {
          await reader.cancel();
          return;
        }
        this.#sink.data(value);
      }
      this.#sink.end();
    }
  }

  /**
   * Stops once the pipe has been drained; call it when no writer is left (the task's process
   * group has exited).
   *
   * @throws the error that ended reading early, if any
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (!this.#loop) return;
    await releasePendingOpen(this.#path, this.#pendingOpen);
    if (!await settlesWithin(this.#loop, FIFO_DRAIN_MS)) {
      // A process outside the task's group still holds the pipe open: wake the blocked read.
      this.#discard = true;
      using keeper = await Deno.open(this.#path, { read: true, write: true });
      await keeper.write(new Uint8Array([0x0a]));
      await releasePendingOpen(this.#path, this.#pendingOpen);
      await this.#loop;
    }
    if (this.#error !== undefined) throw this.#error;
  }
}

/**
 * Writes bytes into a FIFO once, as the task's input: open, write all, close.
 *
 * A task that exits without reading its input is not an error; `stop()` releases the writer.
 */
export class FifoWriter {
  readonly #path: string;
  #stopped = false;
  #pendingOpen: Promise<Deno.FsFile> | undefined;
  #job: Promise<void> | undefined;
  #error: unknown;

  constructor(path: string) {
    this.#path = path;
  }

  /** Starts writing `data` in the background. */
  start(data: Uint8Array): void {
    this.#job ??= this.#write(data).catch((error) => {
      this.#error = error;
    });
  }

  async #write(data: Uint8Array): Promise<void> {
    const opening = Deno.open(this.#path, { write: true });
    this.#pendingOpen = opening;
    let file: Deno.FsFile;
    try {
      file = await opening;
    } finally {
      this.#pendingOpen = undefined;
    }
    try {
      let offset = 0;
      while (offset < data.length && !this.#stopped) {
        offset += await file.write(data.subarray(offset));
      }
    } finally {
      file.close();
    }
  }

  /**
   * Stops writing; call it when the task's process group has exited.
   *
   * @returns the error that ended writing early (a broken pipe when the task did not read)
   */
  async stop(): Promise<unknown> {
    this.#stopped = true;
    if (!this.#job) return undefined;
    await releasePendingOpen(this.#path, this.#pendingOpen);
    if (!await settlesWithin(this.#job, FIFO_DRAIN_MS)) {
      // A process outside the task's group holds the pipe without reading: drain it ourselves.
      using drain = await Deno.open(this.#path, { read: true });
      const buffer = new Uint8Array(64 * 1024);
      let finished = false;
      const job = this.#job.then(() => finished = true);
      while (!finished && await drain.read(buffer) !== null) { /* discard */ }
      await job;
    }
    return this.#error;
  }
}

async function releasePendingOpen(
  path: string,
  pending: Promise<Deno.FsFile> | undefined,
): Promise<void> {
  if (!pending) return;
  // A read-write open of a FIFO never blocks, and it satisfies the other side's pending open.
  using _keeper = await Deno.open(path, { read: true, write: true });
  await pending.catch(() => {});
}
