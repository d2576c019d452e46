/** Default bound on the stdout or stderr text kept per task. */
export const DEFAULT_LOG_TAIL_BYTES = 1024 * 1024;

/**
 * Keeps the last lines of a stream, up to a byte bound, so that every response can carry the
 * task's output so far without the runner's memory growing with it.
 */
export class OutputTail {
  readonly #maxBytes: number;
  #lines: string[] = [];
  #head = 0;
  #bytes = 0;
  #text: string | undefined = "";

  /** @param maxBytes how much text to keep (counted in UTF-16 units, close enough to bytes) */
  constructor(maxBytes: number = DEFAULT_LOG_TAIL_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Appends one line (without its newline). */
  append(line: string): void {
    const entry = line.length + 1 > this.#maxBytes ? line.slice(-(this.#maxBytes - 1)) : line;
    this.#lines.push(entry);
    this.#bytes += entry.length + 1;
    while (this.#bytes > this.#maxBytes && this.#head < this.#lines.length) {
      this.#bytes -= this.#lines[this.#head++]!.length + 1;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#lines.length) {
      this.#lines = this.#lines.slice(this.#head);
      this.#head = 0;
    }
    this.#text = undefined;
  }

  /** The kept lines, each ending with a newline, as the Java runner sent them. */
  get text(): string {
    this.#text ??= this.#lines.slice(this.#head).map((line) => `${line}\n`).join("");
    return this.#text;
  }
}
