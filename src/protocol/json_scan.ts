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
} from "../util/json_bytes.ts";

/** Where a string value sits in a JSON text: the bytes between its quotes. */
export interface StringSpan {
  /** First byte after the opening quote. */
  start: number;
  /** The closing quote. */
  end: number;
}

/**
 * Finds the string value of a top-level key in a JSON object, in its bytes, without decoding
 * or parsing the rest. The big base64 `input` of a request is found this way and decoded on
 * its own, instead of turning 90 MB of body into a string and parsing it whole.
 *
 * @param json UTF-8 JSON bytes
 * @param key the key, which must not need escaping
 * @returns the value's span; undefined when the text is not an object with that key holding a
 * string, or is malformed (the caller then parses it the ordinary way, which reports why)
 */
export function findTopLevelString(json: Uint8Array, key: string): StringSpan | undefined {
  const wanted = new TextEncoder().encode(key);
  let i = skipWhitespace(json, 0);
  if (json[i] !== OPEN_BRACE) return undefined;
  i = skipWhitespace(json, i + 1);
  while (i < json.length && json[i] === QUOTE) {
    const keyEnd = stringEnd(json, i + 1);
    if (keyEnd < 0) return undefined;
    const isWanted = keyEnd - (i + 1) === wanted.length &&
      wanted.every((byte, k) => json[i + 1 + k] === byte);
    i = skipWhitespace(json, keyEnd + 1);
    if (json[i] !== COLON) return undefined;
    i = skipWhitespace(json, i + 1);
    if (isWanted) {
      if (json[i] !== QUOTE) return undefined;
      const end = stringEnd(json, i + 1);
      return end < 0 ? undefined : { start: i + 1, end };
    }
    i = skipValue(json, i);
    if (i < 0) return undefined;
    i = skipWhitespace(json, i);
    if (json[i] !== COMMA) return undefined;
    i = skipWhitespace(json, i + 1);
  }
  return undefined;
}

/** Where a JSON value sits in a JSON text: `start` is its first byte, `end` just after its last. */
export interface ValueSpan {
  start: number;
  end: number;
}

/**
 * Finds the raw bytes of a top-level key's value (any JSON value) in a JSON object, so that
 * it can be passed on byte for byte: a number such as `9007199254740993` or `1.0` survives
 * only if it is never parsed into a double. The scan is a loop, never recursion: nesting of
 * any depth costs no stack.
 *
 * @param json UTF-8 JSON bytes that `JSON.parse` has accepted
 * @param key the key, which must not need escaping
 * @returns the span of the value `JSON.parse` keeps (the last one, if the key repeats);
 * undefined when the key is absent, the text is malformed, or a key is written with escapes
 * (it might spell `key` in another way)
 */
export function findTopLevelValue(json: Uint8Array, key: string): ValueSpan | undefined {
  const wanted = new TextEncoder().encode(key);
  let found: ValueSpan | undefined;
  let i = skipWhitespace(json, 0);
  if (json[i] !== OPEN_BRACE) return undefined;
  i = skipWhitespace(json, i + 1);
  while (i < json.length && json[i] === QUOTE) {
    const keyEnd = stringEnd(json, i + 1);
    if (keyEnd < 0 || json.subarray(i + 1, keyEnd).includes(BACKSLASH)) return undefined;
    const isWanted = keyEnd - (i + 1) === wanted.length &&
      wanted.every((byte, k) => json[i + 1 + k] === byte);
    i = skipWhitespace(json, keyEnd + 1);
    if (json[i] !== COLON) return undefined;
    const start = skipWhitespace(json, i + 1);
    const end = skipValue(json, start);
    if (end < 0) return undefined;
    if (isWanted) found = { start, end };
    i = skipWhitespace(json, end);
    if (json[i] === CLOSE_BRACE) return found;
    if (json[i] !== COMMA) return undefined;
    i = skipWhitespace(json, i + 1);
  }
  return undefined;
}

function skipWhitespace(json: Uint8Array, i: number): number {
  while (i < json.length) {
    if (!isJsonWhitespace(json[i]!)) break;
    i++;
  }
  return i;
}

// The closing quote of a string whose content starts at `from`: memchr-fast through long ones.
function stringEnd(json: Uint8Array, from: number): number {
  for (let i = json.indexOf(QUOTE, from); i >= 0; i = json.indexOf(QUOTE, i + 1)) {
    let backslashes = 0;
    while (json[i - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}

// The index just after the value at `i`, or -1 when it is malformed.
function skipValue(json: Uint8Array, i: number): number {
  const first = json[i];
  if (first === QUOTE) {
    const end = stringEnd(json, i + 1);
    return end < 0 ? -1 : end + 1;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (; i < json.length; i++) {
      const byte = json[i];
      if (byte === QUOTE) {
        i = stringEnd(json, i + 1);
        if (i < 0) return -1;
      } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        depth++;
      } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (--depth === 0) return i + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  while (i < json.length) {
    const byte = json[i]!;
    if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET) return i;
    if (isJsonWhitespace(byte)) return i;
    i++;
  }
  return -1;
}
