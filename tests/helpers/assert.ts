/**
 * The few assertions the tests need (jsr:@std/assert is not reachable here), with messages
 * that show both sides.
 *
 * @module
 */

/** An assertion that did not hold. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Fails unless `actual` and `expected` are deeply equal (JSON-comparable values). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  const a = stable(actual);
  const e = stable(expected);
  if (a !== e) {
    throw new AssertionError(
      `${message ? `${message}: ` : ""}values differ\n  actual:   ${a}\n  expected: ${e}`,
    );
  }
}

/** Fails unless `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(text)) {
    throw new AssertionError(
      `${message ? `${message}: ` : ""}${JSON.stringify(text)} does not match ${pattern}`,
    );
  }
}

/** Fails unless `text` does not contain `part`. */
export function assertNotIncludes(text: string, part: string, message?: string): void {
  if (text.includes(part)) {
    throw new AssertionError(`${message ? `${message}: ` : ""}found ${JSON.stringify(part)}`);
  }
}

/** Fails unless `fn` rejects with an error of `type`; returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new AssertionError(`Expected ${type.name}, got ${error}`);
  }
  throw new AssertionError(`Expected ${type.name}, but nothing was thrown`);
}

/** Fails unless `fn` throws an error of `type`; returns the error. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  type: new (...args: never[]) => E,
): E {
  try {
    fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new AssertionError(`Expected ${type.name}, got ${error}`);
  }
  throw new AssertionError(`Expected ${type.name}, but nothing was thrown`);
}

function stable(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (v instanceof Uint8Array) return `bytes(${Array.from(v).join(",")})`;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)));
    }
    return v;
  }) ?? String(value);
}
