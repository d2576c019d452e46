import { concatBytes } from "../util/bytes.ts";

import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  isJsonWhitespace,
  NEWLINE,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
} from "../util/json_bytes.ts";

/** Default bound on one progress message; a longer one is cut and forwarded as-is. */
export const MAX_PROGRESS_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Splits the bytes written to the progress pipe into messages: one per JSON document, even
 * when several writes arrive in one read (`{...}{...}` or one per line), and one per line
 * (or per read) of anything that is not a JSON object or array.
 *
 * Feed it with `push()`, and call `end()` when the pipe is done.
 */
export class ProgressFramer {
  readonly #emit: (message: Uint8Array) => void;
  readonly #maxBytes: number;
  #parts: Uint8Array[] = [];
  #size = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** Inside a document (`json`), inside non-JSON text (`raw`), or between messages. */
  #mode: "idle" | "json" | "raw" = "idle";

  constructor(emit: (message: Uint8Array) => void, options: { maxBytes?: number } = {}) {
    this.#emit = emit;
    this.#maxBytes = options.maxBytes ?? MAX_PROGRESS_MESSAGE_BYTES;
  }

  /** Feeds the next chunk read from the pipe. */
  push(chunk: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.#mode === "idle") {
        if (isJsonWhitespace(byte)) {
          start = i + 1;
          continue;
        }
        this.#mode = byte === OPEN_BRACE || byte === OPEN_BRACKET ? "json" : "raw";
        start = i;
      }
      if (this.#mode === "raw") {
        if (byte === NEWLINE) {
          this.#take(chunk.subarray(start, i));
          this.#flush();
          start = i + 1;
          continue;
        }
        if (byte !== OPEN_BRACE) continue;
        // A JSON object right after text (two writes in one read) is a message of its own.
        this.#take(chunk.subarray(start, i));
        this.#flush();
        this.#mode = "json";
        start = i;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === BACKSLASH) this.#escaped = true;
        else if (byte === QUOTE) this.#inString = false;
      } else if (byte === QUOTE) {
        this.#inString = true;
      } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        this.#depth++;
      } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (--this.#depth === 0) {
          this.#take(chunk.subarray(start, i + 1));
          this.#flush();
          start = i + 1;
        }
      }
    }
    if (this.#mode !== "idle" && start < chunk.length) this.#take(chunk.subarray(start));
    // Text that is not JSON has no structure to wait for: a read ends it, as a newline does.
    if (this.#mode === "raw" || this.#size > this.#maxBytes) this.#flush();
  }

  /** The pipe is done: whatever is pending is a message of its own. */
  end(): void {
    this.#flush();
  }

  #take(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    // Copy: the chunk belongs to the reader, and a message may span reads.
    this.#parts.push(bytes.slice());
    this.#size += bytes.length;
  }

  #flush(): void {
    this.#mode = "idle";
    this.#depth = 0;
    this.#inString = false;
    this.#escaped = false;
    if (this.#size === 0) return;
    const message = this.#parts.length === 1
      ? this.#parts[0]!
      : concatBytes(this.#parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    const text = trimEnd(message);
    if (text.length > 0) this.#emit(text);
  }
}

/** Whether a progress message is the `done` sentinel: a JSON object with a `done` key. */
export function isDoneMessage(message: Uint8Array): boolean {
  if (message[0] !== OPEN_BRACE) return false;
  try {
    const value = JSON.parse(new TextDecoder().decode(message));
    return typeof value === "object" && value !== null && !Array.isArray(value) &&
      Object.hasOwn(value, "done");
  } catch {
    return false;
  }
}

function trimEnd(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (end > 0 && isJsonWhitespace(bytes[end - 1]!)) end--;
  return end === bytes.length ? bytes : bytes.subarray(0, end);
}
