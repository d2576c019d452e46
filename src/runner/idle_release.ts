/**
 * Gives memory back once the runner has gone idle after work: a burst of tasks leaves the
 * heap and glibc's arenas at the size the burst needed (tens of MB over idle after a thousand
 * small tasks), which neither V8 nor glibc returns by itself while nothing runs.
 *
 * @module
 */

/** Calls `release` once, `delayMs` after the last task ended, unless a task starts meanwhile. */
export class IdleRelease implements Disposable {
  readonly #release: () => Promise<void>;
  readonly #delayMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #workedSinceRelease = false;

  /**
   * @param release what gives the memory back (a full collection and a trim)
   * @param delayMs how long idle first: a task arriving sooner costs no collection
   */
  constructor(release: () => Promise<void>, delayMs: number) {
    this.#release = release;
    this.#delayMs = delayMs;
  }

  /** A task started. */
  busy(): void {
    this.#workedSinceRelease = true;
    this.#cancel();
  }

  /** No task runs any more. */
  idle(): void {
    if (!this.#workedSinceRelease || this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#workedSinceRelease = false;
      void this.#release();
    }, this.#delayMs);
    Deno.unrefTimer(Number(timer)); // never what keeps the process alive
    this.#timer = timer;
  }

  #cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  [Symbol.dispose](): void {
    this.#cancel();
  }
}
