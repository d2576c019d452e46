/**
 * Walking JSON text in its bytes, without decoding it: a streaming scanner that tells where a
 * document ends (and whether it is one), and the skips that find values in a whole text.
 * The progress framer and the request reader both walk JSON through here.
 *
 * @module
 */

import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  COLON,
  COMMA,
  isJsonWhitespace,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
} from "./json_bytes.ts";

/** What a byte fed to a {@linkcode JsonDocScanner} did to the document. */
export const SCAN = { more: 0, complete: 1, invalid: 2 } as const;
/** One of the {@linkcode SCAN} values. */
export type ScanResult = typeof SCAN[keyof typeof SCAN];

// What the scanner expects next.
const VALUE = 0; // any value
const VALUE_OR_CLOSE = 1; // right after `[`
const KEY_OR_CLOSE = 2; // right after `{`
const KEY = 3; // after `,` in an object
const COLON_NEXT = 4; // after a key
const AFTER_VALUE = 5; // `,` or the container's close
const STRING = 6;
const ESCAPE = 7;
const NUMBER = 8;
const LITERAL = 9;

const NUMBER_BYTES = new Set(Array.from("0123456789+-.eE", (c) => c.charCodeAt(0)));
const LITERALS = new Map([["t", "rue"], ["f", "alse"], ["n", "ull"]].map(([first, rest]) => [
  first!.charCodeAt(0),
  Array.from(rest!, (c) => c.charCodeAt(0)),
]));

/**
 * Checks, one byte at a time, whether bytes starting with `{` or `[` form a JSON document,
 * and says where it ends: a document is told from text that only holds a brace
 * (`loading {model`) at the first byte JSON cannot have there. Numbers are checked loosely.
 */
export class JsonDocScanner {
  #stack: number[] = [];
  #state = VALUE;
  #stringIsKey = false;
  #literal: number[] = [];

  /** Starts a new document; feed its first byte (`{` or `[`) next. */
  reset(): void {
    this.#stack = [];
    this.#state = VALUE;
    this.#literal = [];
  }

  /** Feeds the next byte. */
  step(byte: number): ScanResult {
    switch (this.#state) {
      case STRING:
        if (byte === QUOTE) {
          this.#state = this.#stringIsKey ? COLON_NEXT : AFTER_VALUE;
        } else if (byte === BACKSLASH) this.#state = ESCAPE;
        else if (byte < 0x20) return SCAN.invalid;
        return SCAN.more;
      case ESCAPE:
        this.#state = STRING;
        return SCAN.more;
      case NUMBER:
        if (NUMBER_BYTES.has(byte)) return SCAN.more;
        this.#state = AFTER_VALUE;
        return this.step(byte);
      case LITERAL:
        if (byte !== this.#literal.shift()) return SCAN.invalid;
        if (this.#literal.length === 0) this.#state = AFTER_VALUE;
        return SCAN.more;
    }
    if (isJsonWhitespace(byte)) return this.#stack.length === 0 ? SCAN.invalid : SCAN.more;
    switch (this.#state) {
      case KEY_OR_CLOSE:
        if (byte === CLOSE_BRACE) return this.#close(OPEN_BRACE);
        return this.#key(byte);
      case KEY:
        return this.#key(byte);
      case COLON_NEXT:
        if (byte !== COLON) return SCAN.invalid;
        this.#state = VALUE;
        return SCAN.more;
      case AFTER_VALUE:
        if (byte === COMMA) {
          this.#state = this.#stack.at(-1) === OPEN_BRACE ? KEY : VALUE;
          return SCAN.more;
        }
        if (byte === CLOSE_BRACE) return this.#close(OPEN_BRACE);
        if (byte === CLOSE_BRACKET) return this.#close(OPEN_BRACKET);
        return SCAN.invalid;
      case VALUE_OR_CLOSE:
        if (byte === CLOSE_BRACKET) return this.#close(OPEN_BRACKET);
        return this.#value(byte);
      default:
        return this.#value(byte);
    }
  }

  /**
   * Feeds `bytes` from index `from` on, up to the byte that completes the document or shows
   * that it is none; the body of a string is crossed in a tight loop rather than through
   * {@linkcode JsonDocScanner.step}, byte by byte.
   *
   * @returns the result, and the index of the byte that decided it (`bytes.length` when more
   * is needed)
   */
  feed(bytes: Uint8Array, from = 0): { result: ScanResult; at: number } {
    for (let i = from; i < bytes.length; i++) {
      if (this.#state === STRING) {
        let byte = bytes[i]!;
        while (byte !== QUOTE && byte !== BACKSLASH && byte >= 0x20) {
          if (++i === bytes.length) return { result: SCAN.more, at: i };
          byte = bytes[i]!;
        }
      }
      const result = this.step(bytes[i]!);
      if (result !== SCAN.more) return { result, at: i };
    }
    return { result: SCAN.more, at: bytes.length };
  }

  #key(byte: number): ScanResult {
    if (byte !== QUOTE) return SCAN.invalid;
    this.#state = STRING;
    this.#stringIsKey = true;
    return SCAN.more;
  }

  #value(byte: number): ScanResult {
    if (this.#stack.length === 0 && byte !== OPEN_BRACE && byte !== OPEN_BRACKET) {
      return SCAN.invalid; // a document is an object or an array
    }
    if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      this.#stack.push(byte);
      this.#state = byte === OPEN_BRACE ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
    } else if (byte === QUOTE) {
      this.#state = STRING;
      this.#stringIsKey = false;
    } else if (NUMBER_BYTES.has(byte)) {
      this.#state = NUMBER;
    } else if (LITERALS.has(byte)) {
      this.#literal = [...LITERALS.get(byte)!];
      this.#state = LITERAL;
    } else {
      return SCAN.invalid;
    }
    return SCAN.more;
  }

  #close(open: number): ScanResult {
    if (this.#stack.pop() !== open) return SCAN.invalid;
    this.#state = AFTER_VALUE;
    return this.#stack.length === 0 ? SCAN.complete : SCAN.more;
  }
}

/** The index of the first byte from `i` on that is not JSON whitespace. */
export function skipWhitespace(json: Uint8Array, i: number): number {
  while (i < json.length) {
    if (!isJsonWhitespace(json[i]!)) break;
    i++;
  }
  return i;
}

/**
 * The closing quote of a string whose content starts at `from`, or -1: memchr-fast through
 * long ones (a 90 MB base64 input), as the whole text is at hand.
 */
export function stringEnd(json: Uint8Array, from: number): number {
  for (let i = json.indexOf(QUOTE, from); i >= 0; i = json.indexOf(QUOTE, i + 1)) {
    let backslashes = 0;
    while (json[i - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}

/**
 * The index just after the JSON value that starts at `i`, or -1 when it is malformed. An object
 * or array is walked by a {@linkcode JsonDocScanner}: a loop, never recursion, so nesting of any
 * depth costs no stack. A number or literal is taken up to the next delimiter, unchecked.
 */
export function skipValue(json: Uint8Array, i: number): number {
  const first = json[i];
  if (first === QUOTE) {
    const end = stringEnd(json, i + 1);
    return end < 0 ? -1 : end + 1;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    const { result, at } = new JsonDocScanner().feed(json, i);
    return result === SCAN.complete ? at + 1 : -1;
  }
  while (i < json.length) {
    const byte = json[i]!;
    if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET) return i;
    if (isJsonWhitespace(byte)) return i;
    i++;
  }
  return -1;
}
