import { InvalidArgumentError } from "@commander-js/extra-typings";

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/**
 * Parses a timeout as people write it: `90s`, `5m`, `1.5m`, `2h`, `500ms`, or a bare number
 * of minutes (what `timeoutMinutes` holds in a request).
 *
 * @param text the value given on the command line
 * @returns milliseconds, always positive
 * @throws {InvalidArgumentError} when the text is not such a duration (commander reports it)
 *
 * @example
 * ```ts
 * parseDuration("1.5m"); // 90_000
 * parseDuration("2"); // 120_000
 * ```
 */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|min|h)?\s*$/i.exec(text);
  const ms = match ? Number(match[1]) * UNIT_MS[(match[2] ?? "m").toLowerCase()]! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new InvalidArgumentError(
      `Invalid duration "${text}": expected a positive number with s, m or h (e.g. 90s, 5m, 2h), or a number of minutes`,
    );
  }
  return Math.round(ms);
}
