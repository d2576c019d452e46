/** Which time limit stopped a task. */
export type TimeLimit = "inactivity" | "duration";

// Timers fire at once past 2^31 - 1 ms (about 24.8 days): longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A task's time limits: an inactivity limit that every sign of life restarts (the request's
 * `timeoutMinutes`, as the Java runner applied it to each phase), and an optional cap on the
 * whole run. Its signal aborts with the {@linkcode TimeLimit} that fired.
 */
export class TaskTimer implements Disposable {
  readonly #controller = new AbortController();
  readonly #inactivityMs: number;
  #deadline: number;
  #inactivity: ReturnType<typeof setTimeout> | undefined;
  #duration: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param inactivityMs how long the task may go without a sign of life
   * @param options `maxDurationMs`: a cap on the whole run; 0 or absent means none
   */
  constructor(inactivityMs: number, options: { maxDurationMs?: number } = {}) {
    this.#inactivityMs = inactivityMs;
    this.#deadline = performance.now() + inactivityMs;
    this.#armInactivity(inactivityMs);
    const cap = options.maxDurationMs ?? 0;
    if (cap > 0) this.#armDuration(performance.now() + cap);
  }

  /** Aborts, with the limit that fired as its reason, when a limit is reached. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The limit that fired, if one did. */
  get fired(): TimeLimit | undefined {
    return this.#controller.signal.aborted ? this.#controller.signal.reason : undefined;
  }

  /** A sign of life: the inactivity limit starts again from now. */
  touch(): void {
    if (this.#controller.signal.aborted) return;
    // The timer is not re-armed on every touch (progress may come by the thousand): when it
    // fires early, it waits again for what is left.
    this.#deadline = performance.now() + this.#inactivityMs;
  }

  #armInactivity(ms: number): void {
    this.#inactivity = setTimeout(() => {
      const left = this.#deadline - performance.now();
      if (left > 0) this.#armInactivity(left);
      else this.#fire("inactivity");
    }, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  }

  #armDuration(deadline: number): void {
    this.#duration = setTimeout(() => {
      if (deadline - performance.now() > 0) this.#armDuration(deadline);
      else this.#fire("duration");
    }, Math.min(Math.max(deadline - performance.now(), 0), MAX_TIMER_MS));
  }

  #fire(limit: TimeLimit): void {
    this[Symbol.dispose]();
    this.#controller.abort(limit);
  }

  /** Stops the timers (a pending timer would keep the process alive). */
  [Symbol.dispose](): void {
    clearTimeout(this.#inactivity);
    clearTimeout(this.#duration);
  }
}
