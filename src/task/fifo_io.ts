import { settlesWithin } from "../util/async.ts";

/** Receives what a {@linkcode FifoReader} reads. */
export interface FifoSink {
  /** Bytes read, in order; the chunk is owned by the sink. */
  data(chunk: Uint8Array): void;
  /** Everything written before `stop()` has been read. */
  end(): void;
}

/** How long `stop()` waits for a pipe to drain before it forces the other side loose. */
export const FIFO_DRAIN_MS = 2_000;

/**
 * Reads a FIFO for as long as the task runs, however often the task opens, writes and
 * closes it.
 *
 * The reader holds the FIFO open read-write: its open never blocks, the task's opens never
 * block, and no write is lost between one writer's close and the next one's open (with a
 * read-only reader, the kernel drops what a writer leaves in the pipe if the reader closes
 * after its end of file). The price is that the pipe never reports end of file, so `stop()`
 * writes a random marker after the last byte and reading ends when the marker comes out.
 */
export class FifoReader {
  readonly #path: string;
  readonly #sink: FifoSink;
  #marker: Uint8Array | undefined;
  #opened: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #error: unknown;

  constructor(path: string, sink: FifoSink) {
    this.#path = path;
    this.#sink = sink;
  }

  /**
   * Opens the FIFO and reads it in the background.
   *
   * @returns once the FIFO is open, so that a writer's open cannot block
   */
  start(): Promise<void> {
    if (!this.#opened) {
      const opening = Deno.open(this.#path, { read: true, write: true });
      this.#opened = opening.then(() => {}, () => {});
      this.#loop = opening.then((file) => this.#run(file)).catch((error) => {
        this.#error = error;
      });
    }
    return this.#opened;
  }

  async #run(file: Deno.FsFile): Promise<void> {
    const reader = file.readable.getReader();
    let held: Uint8Array = new Uint8Array(0);
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        const marker = this.#marker;
        if (!marker) {
          this.#sink.data(value);
          continue;
        }
        // Stopping: look for the marker, which may straddle two reads.
        const data = held.length > 0 ? concatBytes(held, value) : value;
        const at = indexOfBytes(data, marker);
        if (at >= 0) {
          if (at > 0) this.#sink.data(data.subarray(0, at));
          this.#sink.end();
          return;
        }
        const keep = Math.min(marker.length - 1, data.length);
        if (data.length > keep) this.#sink.data(data.subarray(0, data.length - keep));
        held = data.slice(data.length - keep);
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  /**
   * Reads what the pipe still holds, then stops; call it when the task's process group has
   * exited, so that nothing but the marker is written any more.
   *
   * @throws the error that ended reading early, if any
   */
  async stop(): Promise<void> {
    if (!this.#loop) return;
    await this.#opened;
    if (this.#error === undefined && !this.#marker) {
      this.#marker = new TextEncoder().encode(`\n\0taskrunner-end-${crypto.randomUUID()}\0\n`);
      // A write-only open does not block: this reader holds the read side.
      using writer = await Deno.open(this.#path, { write: true });
      await writer.write(this.#marker);
    }
    await this.#loop;
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

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (
    let i = haystack.indexOf(first!);
    i >= 0 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first!, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
