import type { CancellationWatcher } from "./broker/cancellation_watcher.ts";
import type { ResponsePublisher } from "./broker/publisher.ts";
import type { RequestDelivery } from "./broker/request_consumer.ts";
import type { Logger } from "./observability/log.ts";
import {
  encodeResponse,
  InvalidRequestError,
  parseTaskRequest,
  type ResponseEcho,
  type TaskRequest,
  type TaskStatus,
} from "./protocol/mod.ts";
import { runTask, type TaskEngineSettings, type TaskResult, TaskStartError } from "./task/mod.ts";
import { errorMessage, settlesWithin } from "./util/async.ts";

/** What the runner reports, for metrics. */
export interface RunnerObserver {
  taskStarted?(): void;
  taskFinished?(status: TaskStatus, durationMs: number): void;
  progressForwarded?(): void;
  inputBytes?(bytes: number): void;
  outputBytes?(bytes: number): void;
  requestRejected?(reason: "invalid" | "too_large"): void;
}

/** What the runner is wired to. */
export interface RunnerOptions {
  publisher: ResponsePublisher;
  cancellations: CancellationWatcher;
  engine: TaskEngineSettings;
  /** Largest input accepted; a larger one gets `FAILED`. */
  maxInputBytes: number;
  logger: Logger;
  observer?: RunnerObserver;
}

interface ActiveTask {
  /** The request but its input, which only the task gets. */
  request: Omit<TaskRequest, "input">;
  /** The input until it is handed to the task (a field, so that it can be let go then). */
  input: Uint8Array | undefined;
  /** This request's deliveries: the first, and any redelivery that arrived while it ran. */
  deliveries: RequestDelivery[];
  /** Aborted on shutdown: the task stops and its request goes back to the queue. */
  shutdown: AbortController;
  done: Promise<void>;
}

// How many finished request ids are remembered to recognise late broker redeliveries.
const FINISHED_IDS_KEPT = 10_000;

// Invalid bodies are logged by size and with a short excerpt, never whole.
const LOGGED_ERROR_CHARS = 500;

/**
 * Turns request deliveries into task runs and task events into responses: the one place
 * where the broker layer and the task engine meet.
 */
export class Runner {
  readonly #options: RunnerOptions;
  readonly #log: Logger;
  readonly #observer: RunnerObserver;
  readonly #active = new Map<string, ActiveTask>();
  /** Ids of the latest finished requests, oldest first. */
  readonly #finished = new Set<string>();

  constructor(options: RunnerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
  }

  /** Requests being worked on. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Takes one delivery from the request queue; never throws. */
  handle(delivery: RequestDelivery): void {
    this.#handle(delivery).catch((error) => {
      this.#log.error("Unexpected error while handling a request", { error: errorMessage(error) });
    });
  }

  async #handle(delivery: RequestDelivery): Promise<void> {
    let parsed: TaskRequest;
    try {
      parsed = parseTaskRequest(delivery.body);
    } catch (error) {
      if (error instanceof InvalidRequestError) return await this.#rejectInvalid(delivery, error);
      delivery.reject(false);
      throw error;
    }
    delivery.releaseBody();
    return this.#start(delivery, parsed);
  }

  // Not async: a frame that awaits would keep the parsed input alive for the whole task.
  #start(delivery: RequestDelivery, parsed: TaskRequest): Promise<void> {
    const { input, ...request } = parsed;
    if (delivery.redelivered && this.#finished.has(request.id)) {
      this.#log.info("Redelivery of a request that has finished; acknowledged", {
        taskId: request.id,
      });
      delivery.ack();
      return Promise.resolve();
    }
    const running = this.#active.get(request.id);
    if (running) {
      // The broker redelivered it (a channel closed under it): one run, acknowledged once done.
      running.deliveries.push(delivery);
      this.#log.info("Request redelivered while its task runs; attached to it", {
        taskId: request.id,
      });
      return Promise.resolve();
    }
    const active: ActiveTask = {
      request,
      input,
      deliveries: [delivery],
      shutdown: new AbortController(),
      done: Promise.resolve(),
    };
    this.#active.set(request.id, active);
    active.done = this.#run(active).catch((error) => {
      // Not settled: the broker hands the request out again when this channel closes.
      this.#log.error("Task could not be run", { taskId: request.id, error: errorMessage(error) });
      for (const delivery of active.deliveries) delivery.reject(true);
    }).finally(() => this.#settled(active));
    return active.done;
  }

  // Once its request is settled, the task is no longer running. If it finished, a broker
  // redelivery of it (from a channel that closed before the ack went through) is only acked.
  #settled(active: ActiveTask, finished = false): void {
    const { id } = active.request;
    if (this.#active.get(id) === active) this.#active.delete(id);
    if (!finished) return;
    this.#finished.add(id);
    if (this.#finished.size > FINISHED_IDS_KEPT) {
      this.#finished.delete(this.#finished.values().next().value!);
    }
  }

  async #rejectInvalid(delivery: RequestDelivery, error: InvalidRequestError): Promise<void> {
    this.#observer.requestRejected?.("invalid");
    this.#log.warn("Rejected invalid request", {
      taskId: error.id,
      bytes: delivery.body.length,
      error: error.message.slice(0, LOGGED_ERROR_CHARS),
    });
    if (error.id !== undefined && error.routingKey !== undefined) {
      const echo: ResponseEcho = { ...error.fields, id: error.id, routingKey: error.routingKey };
      await this.#publish(echo, { status: "FAILED", output: error.message }).catch(
        (publishError) => {
          this.#log.warn("Cannot publish FAILED for invalid request", {
            taskId: error.id,
            error: errorMessage(publishError),
          });
        },
      );
    }
    // Not requeued: a message that is wrong now is wrong forever; a dead-letter exchange keeps it.
    delivery.reject(false);
  }

  async #run(active: ActiveTask): Promise<void> {
    const { request } = active;
    const log = this.#log.with({ taskId: request.id, script: request.script });
    const inputBytes = active.input?.length ?? 0;
    this.#observer.inputBytes?.(inputBytes);

    if (inputBytes > this.#options.maxInputBytes) {
      this.#observer.requestRejected?.("too_large");
      await this.#finish(active, "FAILED", {
        output:
          `Task input of ${inputBytes} bytes exceeds the limit of ${this.#options.maxInputBytes} bytes`,
      });
      return;
    }

    // The cancellation queue is declared, bound and consumed while the engine makes the task's
    // pipes; the task starts once it is watched (a cancellation already waiting stops it).
    const cancelled = new AbortController();
    let watchError: unknown;
    const watching = this.#options.cancellations.watch(request.id, {
      signal: active.shutdown.signal,
    });
    const watched = watching.then((cancellation) => {
      if (cancellation.cancelledBeforeStart) cancelled.abort("cancelled");
      else {
        cancellation.signal.addEventListener("abort", () => cancelled.abort("cancelled"), {
          once: true,
        });
      }
    }, (error) => {
      watchError = error;
      cancelled.abort("shutdown");
    });
    await using _watch = {
      [Symbol.asyncDispose]: () =>
        watching.then((cancellation) => cancellation[Symbol.asyncDispose](), () => {}),
    };

    let started = false;
    let finished = false;
    let tails = { stdout: "", stderr: "" };
    const progress = (status: TaskStatus, output?: Uint8Array) => {
      this.#publish(request, { status, output: output ?? null, ...tails }).catch((error) => {
        log.warn("Cannot publish response", { status, error: errorMessage(error) });
      });
    };
    cancelled.signal.addEventListener("abort", () => {
      if (started && !finished) progress("CANCELLING");
    }, { once: true });

    const spec = {
      id: request.id,
      script: request.script,
      input: active.input ?? new Uint8Array(),
      timeoutMs: request.timeoutMinutes * 60_000,
    };
    active.input = undefined; // the engine has it now, and lets go of it once written
    let result: TaskResult;
    try {
      result = await runTask(
        spec,
        this.#options.engine,
        {
          signal: AbortSignal.any([cancelled.signal, active.shutdown.signal]),
          beforeStart: watched,
          onStart: (task) => {
            started = true;
            this.#observer.taskStarted?.();
            log.info("Task started", { pid: task.pid });
            progress("RUNNING");
            // Cancelled between the engine's last check and the start: say so, in order.
            if (cancelled.signal.aborted) progress("CANCELLING");
          },
          onProgress: (message, task) => {
            this.#observer.progressForwarded?.();
            tails = { stdout: task.stdout, stderr: task.stderr };
            progress("RUNNING", message);
          },
          onLog: (stream, line) => log.info(line, { stream }),
        },
      );
    } catch (error) {
      finished = true;
      const message = error instanceof TaskStartError
        ? error.message
        : `Task failed in the runner: ${errorMessage(error)}`;
      log.warn("Task not started", { error: message });
      await this.#finish(active, "FAILED", { output: message });
      return;
    }
    finished = true;
    // Not watched (the broker went away, or shutdown): the request goes back, as before a start.
    if (watchError !== undefined) throw watchError;
    if (!started && result.outcome === "cancelled") {
      log.info("Task cancelled before it started");
      await this.#finish(active, "CANCELLED", {});
      return;
    }
    const ended = { stdout: result.stdout, stderr: result.stderr };
    const durationMs = Math.round(result.durationMs);
    switch (result.outcome) {
      case "success":
        this.#observer.outputBytes?.(result.outputSize);
        log.info("Task succeeded", {
          status: "SUCCESS",
          durationMs,
          outputBytes: result.outputSize,
        });
        await this.#finish(
          active,
          "SUCCESS",
          { ...ended, output: result.outputChunks },
          result.durationMs,
        );
        return;
      case "failure":
      case "timeout":
        log.warn("Task failed", { status: "FAILED", durationMs, error: result.message });
        await this.#finish(
          active,
          "FAILED",
          { ...ended, output: result.message },
          result.durationMs,
        );
        return;
      case "cancelled":
        log.info("Task cancelled", { status: "CANCELLED", durationMs });
        await this.#finish(active, "CANCELLED", ended, result.durationMs);
        return;
      case "shutdown":
        // No terminal response: the request goes back to the queue for another runner.
        log.info("Task stopped by shutdown; request requeued", { durationMs });
        for (const delivery of active.deliveries) delivery.reject(true);
        this.#settled(active);
        return;
    }
  }

  /** Publishes the one terminal response, then acknowledges the request once it is confirmed. */
  async #finish(
    active: ActiveTask,
    status: TaskStatus,
    update: { output?: readonly Uint8Array[] | string; stdout?: string; stderr?: string },
    durationMs = 0,
  ): Promise<void> {
    try {
      await this.#publish(active.request, { status, ...update });
    } catch (error) {
      // Unacknowledged, the request is redelivered when this runner's channel closes.
      this.#log.error("Terminal response not confirmed; request left unacknowledged", {
        taskId: active.request.id,
        status,
        error: errorMessage(error),
      });
      return;
    }
    this.#observer.taskFinished?.(status, durationMs);
    for (const delivery of active.deliveries) delivery.ack();
    this.#settled(active, true);
  }

  async #publish(echo: ResponseEcho, update: Parameters<typeof encodeResponse>[1]): Promise<void> {
    // Async, so that a response that cannot be encoded rejects instead of throwing.
    const routingKey = typeof echo.routingKey === "string" ? echo.routingKey : "";
    await this.#options.publisher.publish(routingKey, encodeResponse(echo, update));
  }

  /**
   * Lets running tasks finish for up to `drainMs`, then stops the rest, whose requests go
   * back to the queue. Aborting `force` ends the wait at once.
   */
  async drain(drainMs: number, options: { force?: AbortSignal } = {}): Promise<void> {
    const all = () => Promise.allSettled([...this.#active.values()].map((active) => active.done));
    if (this.#active.size > 0) {
      this.#log.info("Waiting for running tasks to finish", {
        running: this.#active.size,
        drainMs,
      });
      const forced = new Promise<void>((resolve) => {
        if (options.force?.aborted) resolve();
        options.force?.addEventListener("abort", () => resolve(), { once: true });
      });
      await Promise.race([settlesWithin(all(), drainMs), forced]);
    }
    if (this.#active.size > 0) {
      this.#log.warn("Stopping tasks still running; their requests go back to the queue", {
        running: this.#active.size,
      });
      for (const active of this.#active.values()) active.shutdown.abort("shutdown");
      await all();
    }
  }
}
