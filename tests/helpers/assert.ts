/**
 * The few assertions the tests need, on `node:assert/strict` (jsr:@std/assert is not reachable
 * here): strict deep equality tells `undefined` from a missing key, `-0` from `0`, a `Map` from
 * an object. A message given by the test is put before the library's own, which shows both sides.
 *
 * @module
 */
import * as strict from "node:assert/strict";

// Runs `check`; when it fails, prefixes the test's message to the one that shows the values.
function withMessage(message: string | undefined, check: () => void): void {
  try {
    check();
  } catch (error) {
    if (message !== undefined && error instanceof strict.AssertionError) {
      error.message = `${message}: ${error.message}`;
    }
    throw error;
  }
}

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  strict.ok(condition, message);
}

/** Fails unless `actual` and `expected` are deeply and strictly equal. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  withMessage(message, () => strict.deepStrictEqual(actual, expected));
}

/** Fails unless `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  withMessage(message, () => strict.match(text, pattern));
}

/** Fails unless `text` does not contain `part`. */
export function assertNotIncludes(text: string, part: string, message?: string): void {
  if (text.includes(part)) {
    strict.fail(`${message ? `${message}: ` : ""}found ${JSON.stringify(part)}`);
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
    strict.fail(`Expected ${type.name}, got ${error}`);
  }
  strict.fail(`Expected ${type.name}, but nothing was thrown`);
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
    strict.fail(`Expected ${type.name}, got ${error}`);
  }
  strict.fail(`Expected ${type.name}, but nothing was thrown`);
}
