import type { CancellationSource, TaskCancellation } from "../protocol/ports.ts";

/**
 * Links one task to its cancellation queue: the watch begins at once (the engine makes the
 * task's pipes meanwhile), {@linkcode watched} settles when the task may start, and
 * {@linkcode signal} aborts with `"cancelled"` on a cancellation (already waiting, or arriving
 * later), or with `"shutdown"` when the watch failed (the request then goes back to the queue).
 * Disposing it stops watching.
 */
export class CancellationLink implements AsyncDisposable {
  readonly #stop = new AbortController();
  readonly #watching: Promise<TaskCancellation>;
  #failed = false;
  #error: unknown;
  /** Settles once the task is watched, or the watch failed. */
  readonly watched: Promise<void>;

  /**
   * @param source where cancellations come from
   * @param taskId the request id, which names the cancellation queue
   * @param options `signal` gives up the watch (shutdown)
   */
  constructor(source: CancellationSource, taskId: string, options: { signal: AbortSignal }) {
    this.#watching = source.watch(taskId, { signal: options.signal });
    this.watched = this.#watching.then((cancellation) => {
      if (cancellation.cancelledBeforeStart) this.#stop.abort("cancelled");
      else {
        cancellation.signal.addEventListener("abort", () => this.#stop.abort("cancelled"), {
          once: true,
        });
      }
    }, (error) => {
      this.#failed = true;
      this.#error = error;
      this.#stop.abort("shutdown");
    });
  }

  /** Aborts when the task is to stop: cancelled, or not watched. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Throws the error the watch failed with, if it did: the task is not to be answered. */
  throwIfFailed(): void {
    if (this.#failed) throw this.#error;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#watching.then((cancellation) => cancellation[Symbol.asyncDispose](), () => {});
  }
}
