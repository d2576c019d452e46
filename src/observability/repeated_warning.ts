import type { LogFields, Logger, LogLevel } from "./log.ts";

/** How often a condition that keeps happening is logged again, with its count: a minute. */
export const REPEAT_INTERVAL_MS = 60_000;

/** Options of {@linkcode RepeatedWarning}. */
export interface RepeatedWarningOptions {
  /** Level of the lines while it happens (the recovery line is `info`); `warn` by default. */
  level?: Exclude<LogLevel, "debug" | "info">;
  /** Least time between two lines of it; {@linkcode REPEAT_INTERVAL_MS} by default. */
  intervalMs?: number;
  /** The clock, in milliseconds (tests). */
  now?: () => number;
}

/**
 * One warning that may repeat many times a second (a refused publish, a channel that cannot be
 * set up, a refused request): logged the first time, then at most once per interval with how
 * many times it happened since, then once when the condition is over. The log says what goes
 * on without being flooded, and the count says how much.
 *
 * @example
 * ```ts
 * const refused = new RepeatedWarning(log, "Cannot publish responses: access refused");
 * refused.report({ exchange });   // first: logged
 * refused.report({ exchange });   // within the minute: counted only
 * refused.recovered("Responses are published again");  // one line, with the total count
 * ```
 */
export class RepeatedWarning {
  readonly #log: Logger;
  readonly #message: string;
  readonly #level: "warn" | "error";
  readonly #intervalMs: number;
  readonly #now: () => number;
  #loggedAt = -Infinity;
  /** Occurrences since the last line. */
  #unlogged = 0;
  /** Occurrences since the condition began; 0 when it is not going on. */
  #total = 0;

  /**
   * @param log where the lines go
   * @param message the warning, the same every time (what differs goes in the fields)
   */
  constructor(log: Logger, message: string, options: RepeatedWarningOptions = {}) {
    this.#log = log;
    this.#message = message;
    this.#level = options.level ?? "warn";
    this.#intervalMs = options.intervalMs ?? REPEAT_INTERVAL_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether the condition is going on: reported, and not recovered since. */
  get active(): boolean {
    return this.#total > 0;
  }

  /** Occurrences since the condition began. */
  get count(): number {
    return this.#total;
  }

  /**
   * Notes one occurrence: logged if it is the first, or if the last line is an interval old
   * (then with `repeated`, the occurrences since that line, itself included).
   *
   * @returns whether this occurrence was logged
   */
  report(fields: LogFields = {}): boolean {
    this.#total++;
    this.#unlogged++;
    const now = this.#now();
    if (this.#total > 1 && now - this.#loggedAt < this.#intervalMs) return false;
    const repeated = this.#unlogged;
    this.#unlogged = 0;
    this.#loggedAt = now;
    this.#log.log(this.#level, this.#message, {
      ...fields,
      ...(this.#total > 1 ? { repeated, total: this.#total } : {}),
    });
    return true;
  }

  /**
   * The condition is over: if it was going on, one `info` line says so, with how many times it
   * happened in all; the next {@linkcode report} is logged at once.
   *
   * @returns whether it was going on
   */
  recovered(message: string, fields: LogFields = {}): boolean {
    if (this.#total === 0) return false;
    this.#log.info(message, { ...fields, occurrences: this.#total });
    this.#total = 0;
    this.#unlogged = 0;
    this.#loggedAt = -Infinity;
    return true;
  }
}

/**
 * A {@linkcode RepeatedWarning} per key (a routing key, a script, ...), made on first use, so
 * that one noisy key does not hide another's first line.
 */
export class RepeatedWarnings {
  readonly #log: Logger;
  readonly #message: string;
  readonly #options: RepeatedWarningOptions;
  readonly #byKey = new Map<string, RepeatedWarning>();
  readonly #maxKeys: number;

  /**
   * @param log where the lines go
   * @param message the warning, the same for every key
   * @param options as {@linkcode RepeatedWarning}'s, and `maxKeys` (default 1000): beyond it,
   * the oldest key is forgotten (its next occurrence is logged as a first one)
   */
  constructor(
    log: Logger,
    message: string,
    options: RepeatedWarningOptions & { maxKeys?: number } = {},
  ) {
    this.#log = log;
    this.#message = message;
    const { maxKeys, ...rest } = options;
    this.#options = rest;
    this.#maxKeys = maxKeys ?? 1000;
  }

  /** The warning of `key`. */
  of(key: string): RepeatedWarning {
    let warning = this.#byKey.get(key);
    if (!warning) {
      warning = new RepeatedWarning(this.#log, this.#message, this.#options);
      this.#byKey.set(key, warning);
      if (this.#byKey.size > this.#maxKeys) {
        this.#byKey.delete(this.#byKey.keys().next().value!);
      }
    }
    return warning;
  }

  /** Notes one occurrence for `key` (see {@linkcode RepeatedWarning.report}). */
  report(key: string, fields: LogFields = {}): boolean {
    return this.of(key).report(fields);
  }

  /** `key`'s condition is over (see {@linkcode RepeatedWarning.recovered}); it is forgotten. */
  recovered(key: string, message: string, fields: LogFields = {}): boolean {
    const warning = this.#byKey.get(key);
    if (!warning) return false;
    this.#byKey.delete(key);
    return warning.recovered(message, fields);
  }
}
