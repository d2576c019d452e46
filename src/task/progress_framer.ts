import { concatBytes } from "../util/bytes.ts";
import {
  BACKSLASH,
  isJsonWhitespace,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
} from "../util/json_bytes.ts";
import { JsonDocScanner, SCAN } from "../util/json_walk.ts";

/** Default bound on one progress message; a longer one is dropped, never cut. */
export const MAX_PROGRESS_MESSAGE_BYTES = 1024 * 1024;

/** Options of a {@linkcode ProgressFramer}. */
export interface ProgressFramerOptions {
  /** Largest message passed on (default {@linkcode MAX_PROGRESS_MESSAGE_BYTES}). */
  maxBytes?: number;
  /** Called with the size of each message dropped for being larger than `maxBytes`. */
  onDropped?: (bytes: number) => void;
}

/** Bytes of one message being gathered, or only counted once they are too many. */
class Pending {
  parts: Uint8Array[] = [];
  size = 0;
  over = false;

  add(bytes: Uint8Array, maxBytes: number): void {
    if (bytes.length === 0) return;
    this.size += bytes.length;
    if (this.over) return;
    if (this.size > maxBytes) {
      this.over = true;
      this.parts = [];
      return;
    }
    // Copy: the chunk belongs to the reader, and a message may span reads.
    this.parts.push(bytes.slice());
  }

  addAll(other: Pending, maxBytes: number): void {
    if (other.over) {
      this.size += other.size;
      this.over = true;
      this.parts = [];
    } else {
      for (const part of other.parts) this.add(part, maxBytes);
    }
  }

  bytes(): Uint8Array {
    return this.parts.length === 1 ? this.parts[0]! : concatBytes(this.parts, this.size);
  }
}

/**
 * Splits the bytes written to the progress pipe into messages. Each open-write-close of the
 * pipe (marked by `close()`) bounds a message, whatever its bytes, as in the Java runner: text
 * that is not JSON, or a brace that opens no document (`loading {model`), ends there and never
 * swallows what the next write brings. Within one write, every JSON document (`{...}{...}`,
 * or one per line) is a message of its own, passed on once complete, and so is the text
 * between documents; that also splits again writes that reached the pipe together because
 * the task wrote faster than the runner read. A message larger than `maxBytes` is dropped
 * whole, never cut into pieces.
 *
 * Feed it with `push()`, call `close()` when a writer has closed the pipe and `end()` when the
 * pipe is done.
 */
export class ProgressFramer {
  readonly #emit: (message: Uint8Array) => void;
  readonly #maxBytes: number;
  readonly #onDropped: (bytes: number) => void;
  readonly #scanner = new JsonDocScanner();
  /** Text since the last message. */
  #text = new Pending();
  /** The document being read, from its `{` or `[`; undefined between documents. */
  #doc: Pending | undefined;

  constructor(emit: (message: Uint8Array) => void, options: ProgressFramerOptions = {}) {
    this.#emit = emit;
    this.#maxBytes = options.maxBytes ?? MAX_PROGRESS_MESSAGE_BYTES;
    this.#onDropped = options.onDropped ?? (() => {});
  }

  /** Feeds the next chunk read from the pipe. */
  push(chunk: Uint8Array): void {
    let from = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.#doc) {
        const { result, at } = this.#scanner.feed(chunk, i);
        if (result === SCAN.more) break; // the rest of the chunk belongs to the document
        if (result === SCAN.complete) {
          this.#doc.add(chunk.subarray(from, at + 1), this.#maxBytes);
          from = i = at + 1;
          this.#completeDoc();
          continue;
        }
        // Not JSON after all: what looked like a document is text, and so is the byte at
        // `at`, unless it opens a document itself.
        this.#doc.add(chunk.subarray(from, at), this.#maxBytes);
        from = i = at;
        this.#text.addAll(this.#doc, this.#maxBytes);
        this.#doc = undefined;
      }
      const byte = chunk[i]!;
      if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        this.#text.add(chunk.subarray(from, i), this.#maxBytes);
        from = i;
        this.#doc = new Pending();
        this.#scanner.reset();
        this.#scanner.step(byte);
      }
      i++;
    }
    (this.#doc ?? this.#text).add(chunk.subarray(from), this.#maxBytes);
  }

  /** A writer has closed the pipe: whatever it left pending is a message of its own. */
  close(): void {
    if (this.#doc) this.#text.addAll(this.#doc, this.#maxBytes);
    this.#doc = undefined;
    this.#flush(this.#text);
    this.#text = new Pending();
  }

  /** The pipe is done: whatever is pending is a message of its own. */
  end(): void {
    this.close();
  }

  #completeDoc(): void {
    this.#flush(this.#text);
    this.#text = new Pending();
    this.#flush(this.#doc!);
    this.#doc = undefined;
  }

  #flush(pending: Pending): void {
    if (pending.over) return this.#onDropped(pending.size);
    if (pending.size === 0) return;
    const message = trim(pending.bytes());
    if (message.length > 0) this.#emit(message);
  }
}

/** Whether a progress message is the `done` sentinel: a JSON object with a `done` key. */
export function isDoneMessage(message: Uint8Array): boolean {
  if (message[0] !== OPEN_BRACE) return false;
  // Parsed only when it may have the key: every progress message of every task passes here.
  if (!mayHaveDoneKey(message)) return false;
  try {
    const value = JSON.parse(new TextDecoder().decode(message));
    return typeof value === "object" && value !== null && !Array.isArray(value) &&
      Object.hasOwn(value, "done");
  } catch {
    return false;
  }
}

const DONE_KEY: readonly number[] = [QUOTE, 0x64, 0x6f, 0x6e, 0x65, QUOTE]; // "done"

/**
 * Whether an object's bytes may hold a `done` key: without a backslash, a key is spelt as it
 * reads, so `"done"` is among the bytes; with one, it may be escaped (`"do\u006ee"`).
 */
function mayHaveDoneKey(message: Uint8Array): boolean {
  if (message.includes(BACKSLASH)) return true;
  for (let at = message.indexOf(QUOTE); at >= 0; at = message.indexOf(QUOTE, at + 1)) {
    if (bytesAt(message, at, DONE_KEY)) return true;
  }
  return false;
}

function bytesAt(haystack: Uint8Array, at: number, needle: readonly number[]): boolean {
  for (let i = 0; i < needle.length; i++) {
    if (haystack[at + i] !== needle[i]) return false;
  }
  return true;
}

function trim(bytes: Uint8Array): Uint8Array {
  let start = 0;
  let end = bytes.length;
  while (start < end && isJsonWhitespace(bytes[start]!)) start++;
  while (end > start && isJsonWhitespace(bytes[end - 1]!)) end--;
  return start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end);
}
