/** What a command does when asked to stop: the first time, and every time after. */
export interface StopHandlers {
  /** The first SIGINT or SIGTERM: stop gently. */
  first(): void;
  /** Each later one: stop now. */
  again(): void;
  /** A copy of the last one, ignored (see {@linkcode SIGNAL_COPY_WINDOW_MS}). */
  copy?(signal: Deno.Signal): void;
}

const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * How soon after a stop signal the same signal again is a copy of it, not a second request.
 *
 * One Ctrl-C often arrives twice: the terminal sends SIGINT to its whole foreground process
 * group, and a parent in that group that forwards signals (`deno task`, a shell wrapper, an
 * init such as tini or dumb-init started with `-g`) sends it once more, a few milliseconds
 * later; systemd's control-group kill and `kill -TERM -<pgid>` do the same with SIGTERM.
 * A person who means "now" presses again after reading "Shutting down", well past this.
 */
export const SIGNAL_COPY_WINDOW_MS = 1_000;

/**
 * Calls `first` on the first SIGINT or SIGTERM and `again` on each later one; an abort of
 * `options.signal` counts as one (at once when it has already aborted). The same signal again
 * within `options.copyWindowMs` (default {@linkcode SIGNAL_COPY_WINDOW_MS}) of the last one
 * counted is the same request delivered twice and is ignored; another signal always counts.
 * Disposing removes the listeners.
 *
 * @example
 * ```ts
 * using _signals = onStopSignals({ first: () => drain.abort(), again: () => kill.abort() });
 * ```
 */
export function onStopSignals(
  handlers: StopHandlers,
  options: { signal?: AbortSignal | undefined; copyWindowMs?: number } = {},
): Disposable {
  const copyWindowMs = options.copyWindowMs ?? SIGNAL_COPY_WINDOW_MS;
  let received = 0;
  let last: { name: Deno.Signal; at: number } | undefined;
  const stop = () => {
    if (received++ === 0) handlers.first();
    else handlers.again();
  };
  const listeners = STOP_SIGNALS.map((name) => {
    const listener = () => {
      const now = performance.now();
      if (last?.name === name && now - last.at < copyWindowMs) {
        handlers.copy?.(name);
        return;
      }
      last = { name, at: now };
      stop();
    };
    Deno.addSignalListener(name, listener);
    return { name, listener };
  });
  const onAbort = () => {
    last = undefined;
    stop();
  };
  const { signal } = options;
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  return {
    [Symbol.dispose]: () => {
      for (const { name, listener } of listeners) Deno.removeSignalListener(name, listener);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}
