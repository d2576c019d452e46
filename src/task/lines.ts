/** Longest line passed on whole unless the caller says otherwise (`maxLineChars`). */
export const MAX_LINE_CHARS = 1024 * 1024;

/** Options of {@linkcode forEachLine}. */
export interface LineOptions {
  /**
   * Longest line kept whole: a longer run without a line end (binary data, an endless line)
   * is passed on in pieces this long, so that memory stays bounded. Default
   * {@linkcode MAX_LINE_CHARS}.
   */
  maxLineChars?: number;
}

const LINE_END = /\r\n|\r|\n/g;

/**
 * Splits bytes into text lines (without their line ends) as they come, decoding UTF-8
 * leniently, as Java's `BufferedReader.readLine()` did for the Java runner: `\n`, `\r` and
 * `\r\n` each end a line (a progress bar redrawn with `\r` gives a line per redraw), and the
 * last line counts even without a line end. Fed by `push()`, ended by `end()`.
 */
export class LineSplitter {
  readonly #onLine: (line: string) => void;
  readonly #maxChars: number;
  readonly #decoder = new TextDecoder();
  #pending = "";
  /** The last text ended with `\r`: a `\n` that starts the next one belongs to that line end. */
  #skipNewline = false;

  /**
   * @param onLine called for each line
   * @param options the bound on a line's length
   */
  constructor(onLine: (line: string) => void, options: LineOptions = {}) {
    this.#onLine = onLine;
    this.#maxChars = Math.max(1, options.maxLineChars ?? MAX_LINE_CHARS);
  }

  /** The next bytes read. */
  push(bytes: Uint8Array): void {
    this.#take(this.#decoder.decode(bytes, { stream: true }));
  }

  /** The bytes have ended: what is pending is the last line. */
  end(): void {
    this.#take(this.#decoder.decode());
    if (this.#pending.length > 0) this.#emit(this.#pending);
    this.#pending = "";
  }

  #take(text: string): void {
    let start = 0;
    if (this.#skipNewline && text.startsWith("\n")) start = 1;
    this.#skipNewline = false;
    LINE_END.lastIndex = start;
    for (let match = LINE_END.exec(text); match; match = LINE_END.exec(text)) {
      this.#emit(this.#pending + text.slice(start, match.index));
      this.#pending = "";
      start = match.index + match[0].length;
    }
    this.#skipNewline = text.endsWith("\r");
    this.#pending += text.slice(start);
    while (this.#pending.length > this.#maxChars) {
      this.#onLine(this.#pending.slice(0, this.#maxChars));
      this.#pending = this.#pending.slice(this.#maxChars);
    }
  }

  #emit(line: string): void {
    while (line.length > this.#maxChars) {
      this.#onLine(line.slice(0, this.#maxChars));
      line = line.slice(this.#maxChars);
    }
    this.#onLine(line);
  }
}

/** Passes each chunk of a byte stream on, until it ends. */
export async function forEachChunk(
  stream: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk(value);
    }
  } finally {
    reader.releaseLock();
  }
}
