/** How much of one task's stdout and stderr the runner's log takes. */
export interface TaskLogLimits {
  /** Lines per second, sustained; a burst of one second's worth is allowed. */
  linesPerSecond: number;
  /** Characters of task output logged over the task's whole life. */
  maxBytes: number;
}

/** Defaults: enough for any task that logs to be read, not enough to flood the log. */
export const DEFAULT_TASK_LOG_LIMITS: TaskLogLimits = {
  linesPerSecond: 100,
  maxBytes: 1024 * 1024,
};

/**
 * Decides which of a task's lines go to the runner's log: a token bucket bounds the rate, a
 * budget bounds the total, and whatever is left out is counted for one summary at the end.
 * A task printing 500 MB then costs the log a bounded amount, not 500 MB.
 */
export class TaskLogLimiter {
  readonly #limits: TaskLogLimits;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;
  #loggedBytes = 0;
  #suppressedLines = 0;
  #suppressedBytes = 0;

  /**
   * @param limits rate and total
   * @param options `now`: the clock in milliseconds (tests)
   */
  constructor(limits: TaskLogLimits, options: { now?: () => number } = {}) {
    this.#limits = limits;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = limits.linesPerSecond;
    this.#refilledAt = this.#now();
  }

  /** Whether `line` may be logged; when not, it is counted. */
  admit(line: string): boolean {
    const now = this.#now();
    const rate = this.#limits.linesPerSecond;
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilledAt) / 1000) * rate);
    this.#refilledAt = now;
    const bytes = line.length + 1;
    if (this.#tokens < 1 || this.#loggedBytes + bytes > this.#limits.maxBytes) {
      this.#suppressedLines++;
      this.#suppressedBytes += bytes;
      return false;
    }
    this.#tokens -= 1;
    this.#loggedBytes += bytes;
    return true;
  }

  /** Lines left out so far. */
  get suppressedLines(): number {
    return this.#suppressedLines;
  }

  /** Characters (with their newlines) left out so far. */
  get suppressedBytes(): number {
    return this.#suppressedBytes;
  }
}
