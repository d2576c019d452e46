/** What a command does when asked to stop: the first time, and every time after. */
export interface StopHandlers {
  /** The first SIGINT or SIGTERM: stop gently. */
  first(): void;
  /** Each later one: stop now. */
  again(): void;
}

const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Calls `first` on the first SIGINT or SIGTERM and `again` on each later one; an abort of
 * `options.signal` counts as one (at once when it has already aborted). Disposing removes
 * the listeners.
 *
 * @example
 * ```ts
 * using _signals = onStopSignals({ first: () => drain.abort(), again: () => kill.abort() });
 * ```
 */
export function onStopSignals(
  handlers: StopHandlers,
  options: { signal?: AbortSignal | undefined } = {},
): Disposable {
  let received = 0;
  const onSignal = () => {
    if (received++ === 0) handlers.first();
    else handlers.again();
  };
  const { signal } = options;
  for (const name of STOP_SIGNALS) Deno.addSignalListener(name, onSignal);
  signal?.addEventListener("abort", onSignal, { once: true });
  if (signal?.aborted) onSignal();
  return {
    [Symbol.dispose]: () => {
      for (const name of STOP_SIGNALS) Deno.removeSignalListener(name, onSignal);
      signal?.removeEventListener("abort", onSignal);
    },
  };
}
