/** A wait for a signal to abort; disposing it removes its listener. */
export interface AbortWait extends Disposable {
  /** Resolves with the signal's reason once it aborts (at once when it already has). */
  readonly promise: Promise<unknown>;
}

/**
 * Waits for `signal` to abort, as a promise to race against others. Dispose of the wait once
 * it is no longer raced: a listener left on a timeout signal keeps its timer, and so the
 * process, alive.
 *
 * @example
 * ```ts
 * using stopped = whenAborted(signal);
 * await Promise.race([work, stopped.promise]);
 * ```
 */
export function whenAborted(signal: AbortSignal): AbortWait {
  let onAbort = () => {};
  const promise = new Promise<unknown>((resolve) => {
    onAbort = () => resolve(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return { promise, [Symbol.dispose]: () => signal.removeEventListener("abort", onAbort) };
}

/**
 * A signal that aborts with the reason of whichever of `first` and `second` aborts first, for
 * signals that live no longer than the result (one task's). `AbortSignal.any` does the same
 * for signals of any lifetime, through weak references, sets of dependents and a finalization
 * registration on each: a few KiB of heap per call, twice per running task.
 */
export function eitherAborted(first: AbortSignal, second: AbortSignal): AbortSignal {
  const either = new AbortController();
  for (const source of [first, second]) {
    if (source.aborted) {
      either.abort(source.reason);
      break;
    }
    source.addEventListener("abort", () => either.abort(source.reason), { once: true });
  }
  return either.signal;
}
