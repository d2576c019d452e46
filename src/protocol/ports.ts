/**
 * What the runner needs of the broker, declared below both: the broker layer's classes
 * implement these shapes (`ResponsePublisher`, `CancellationWatcher`, `RequestDelivery`), the
 * runner uses them without importing the broker, and tests fill them with fakes.
 *
 * @module
 */

/** Where responses go, in order for each routing key. */
export interface ResponseSink {
  /**
   * Sends one response to the request's routing key.
   *
   * @param info what the response is, for the operator's list of held responses and the log
   * @returns `"routed"` once a queue took it (confirmed and routed), or `"held"` once the
   * broker did not deliver it now (no queue bound, a queue refused it, no write access): the
   * sink keeps it and tries again up to its own time limit, and the caller need not wait.
   * Rejects with `ResponseTooLargeError` (larger than the broker accepts), with
   * `PublisherClosedError` (the runner stops), or with another error of the message itself.
   */
  publish(
    routingKey: string,
    content: Uint8Array,
    info?: { taskId?: string; script?: string; status?: string },
  ): Promise<"routed" | "held">;
}

/** A task's cancellation queue, watched until disposed. */
export interface TaskCancellation extends AsyncDisposable {
  /** A cancellation was already waiting when the watch began: the task must not start. */
  readonly cancelledBeforeStart: boolean;
  /** Aborts when a cancellation arrives. */
  readonly signal: AbortSignal;
}

/** Where cancellations come from. */
export interface CancellationSource {
  /**
   * Begins watching for a cancellation of `taskId`; resolves once one waiting already would
   * have been seen. `signal` gives up waiting (shutdown): it then rejects.
   */
  watch(taskId: string, options?: { signal?: AbortSignal }): Promise<TaskCancellation>;
}

/** One delivered request, settled exactly once. */
export interface Delivery {
  /** The message body (empty once released). */
  readonly body: Uint8Array;
  /** Lets go of the body, so that a large request is not held until it is settled. */
  releaseBody(): void;
  /** Runs of this request lost with their runner before this delivery. */
  readonly lostRuns: number;
  /** When it was delivered to this runner (ms since the epoch); default: when handled. */
  readonly receivedAt?: number;
  /** When it was published, if its publisher said so (AMQP timestamp, in ms). */
  readonly publishedAt?: number | undefined;
  /** Whether the broker delivered it before (to this runner or another). */
  readonly redelivered: boolean;
  /** Whether it can still be settled. */
  readonly live: boolean;
  /** The request is done. @returns false if it could not be settled */
  ack(): boolean;
  /** Back to the queue (`requeue`) or to the dead letters. @returns false if it could not be */
  reject(requeue: boolean): boolean;
  /**
   * Puts the request back at the back of the queue as a copy that carries `lostRuns`.
   *
   * @returns whether the copy replaced this delivery; if not, it is left as it was
   */
  requeue(lostRuns: number): Promise<boolean>;
}
