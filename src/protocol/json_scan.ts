import { BACKSLASH, CLOSE_BRACE, COLON, COMMA, OPEN_BRACE, QUOTE } from "../util/json_bytes.ts";
import { skipValue, skipWhitespace, stringEnd } from "../util/json_walk.ts";

/**
 * Where bytes sit in a JSON text: `start` is the first, `end` the index just after the last. Of a
 * string value, the bytes between its quotes (`end` is then the closing quote).
 */
export interface Span {
  start: number;
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
export function findTopLevelString(json: Uint8Array, key: string): Span | undefined {
  const wanted = new TextEncoder().encode(key);
  let found: Span | undefined;
  walkMembers(json, (name, value) => {
    if (!isKey(json, name, wanted)) return true;
    if (json[value.start] === QUOTE) found = { start: value.start + 1, end: value.end - 1 };
    return false; // the first one decides, string or not
  });
  return found;
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
export function findTopLevelValue(json: Uint8Array, key: string): Span | undefined {
  const wanted = new TextEncoder().encode(key);
  let found: Span | undefined;
  let escaped = false;
  const whole = walkMembers(json, (name, value) => {
    escaped = json.subarray(name.start, name.end).includes(BACKSLASH);
    if (isKey(json, name, wanted)) found = value;
    return !escaped;
  });
  return whole && !escaped ? found : undefined;
}

// Whether the key between `name.start` and `name.end` is `wanted`, byte for byte.
function isKey(json: Uint8Array, name: Span, wanted: Uint8Array): boolean {
  return name.end - name.start === wanted.length &&
    wanted.every((byte, k) => json[name.start + k] === byte);
}

/**
 * Walks the members of the object a JSON text holds, in order, passing `visit` the span of each
 * key (between its quotes) and of its value, until `visit` returns false or the text turns out
 * malformed.
 *
 * @returns true when the object was read whole, to its closing brace
 */
function walkMembers(
  json: Uint8Array,
  visit: (name: Span, value: Span) => boolean,
): boolean {
  let i = skipWhitespace(json, 0);
  if (json[i] !== OPEN_BRACE) return false;
  i = skipWhitespace(json, i + 1);
  while (i < json.length && json[i] === QUOTE) {
    const keyEnd = stringEnd(json, i + 1);
    if (keyEnd < 0) return false;
    const name = { start: i + 1, end: keyEnd };
    i = skipWhitespace(json, keyEnd + 1);
    if (json[i] !== COLON) return false;
    const start = skipWhitespace(json, i + 1);
    const end = skipValue(json, start);
    if (end < 0 || !visit(name, { start, end })) return false;
    i = skipWhitespace(json, end);
    if (json[i] === CLOSE_BRACE) return true;
    if (json[i] !== COMMA) return false;
    i = skipWhitespace(json, i + 1);
  }
  return false;
}
