/**
 * A JSON value kept as the exact bytes it arrived in, to be written back unchanged: parsing
 * it into JavaScript values would round `9007199254740993` to `...992` and turn `1.0` into
 * `1`. The bytes must be one valid JSON value in UTF-8 (they were cut out of a parsed text).
 */
export class RawJson {
  /** The value's UTF-8 JSON bytes. */
  readonly bytes: Uint8Array;

  /** @param bytes one valid JSON value, UTF-8 */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** The value parsed (numbers as doubles): for readers that do not write it back. */
  get value(): unknown {
    return JSON.parse(new TextDecoder().decode(this.bytes));
  }

  /** For `JSON.stringify`, which cannot write raw text: the parsed value. */
  toJSON(): unknown {
    return this.value;
  }
}
