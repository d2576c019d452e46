import type { CancellationWatcher } from "./broker/cancellation_watcher.ts";
import { type ResponsePublisher, UnroutableResponseError } from "./broker/publisher.ts";
import type { RequestDelivery } from "./broker/request_consumer.ts";
import type { Logger } from "./observability/log.ts";
import {
  DEFAULT_TASK_LOG_LIMITS,
  TaskLogLimiter,
  type TaskLogLimits,
} from "./observability/task_log_limiter.ts";
import {
  encodeResponse,
  InvalidRequestError,
  parseTaskRequest,
  type ResponseEcho,
  type TaskRequest,
  type TaskStatus,
} from "./protocol/mod.ts";
import {
  type RunningTask,
  runTask,
  startFailureText,
  type TaskEngineSettings,
  type TaskResult,
  TaskStartError,
} from "./task/mod.ts";
import { errorMessage, settlesWithin } from "./util/async.ts";

/** What the runner reports, for metrics. */
export interface RunnerObserver {
  taskStarted?(): void;
  taskFinished?(status: TaskStatus, durationMs: number): void;
  progressForwarded?(): void;
  /** A progress message larger than the limit was dropped. */
  progressDropped?(): void;
  /** Lines a task printed that its log limits kept out of the runner's log. */
  taskLogSuppressed?(lines: number): void;
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
  /** Runs of a request lost with their runner before it gets `FAILED`; 0 = never. */
  maxLostRuns?: number;
  /** How much of each task's stdout and stderr the log takes (default 100 lines/s, 1 MiB). */
  taskLog?: TaskLogLimits;
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
  /** Runs of this request lost with their runner: at the limit, it is not run again. */
  lostRuns: number;
}

// How many finished request ids are remembered to recognise late broker redeliveries.
const FINISHED_IDS_KEPT = 10_000;

// Invalid bodies are logged by size and with a short excerpt, never whole.
const LOGGED_ERROR_CHARS = 500;

// A body up to this size is kept while its task runs, so that a shutdown can put the request
// back as a copy that keeps its count of lost runs; a larger one is let go (memory) and its
// requeue counts as a lost run.
const KEPT_BODY_BYTES = 2 * 1024 * 1024;

/**
 * Turns request deliveries into task runs and task events into responses: the one place
 * where the broker layer and the task engine meet.
 */
export class Runner {
  readonly #options: RunnerOptions;
  readonly #log: Logger;
  readonly #observer: RunnerObserver;
  readonly #active = new Map<string, ActiveTask>();
  readonly #maxLostRuns: number;
  /** Copies of lost runs' requests on their way back to the queue: a shutdown waits for them. */
  readonly #requeues = new Set<Promise<boolean>>();
  /** Ids of the latest finished requests, oldest first. */
  readonly #finished = new Set<string>();

  constructor(options: RunnerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
    this.#maxLostRuns = options.maxLostRuns ?? 0;
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

  // Not async, like #start: a frame that awaited would keep the parsed input alive.
  #handle(delivery: RequestDelivery): Promise<void> {
    let parsed: TaskRequest;
    try {
      parsed = parseTaskRequest(delivery.body);
    } catch (error) {
      if (error instanceof InvalidRequestError) {
        this.#rejectInvalid(delivery, error);
        return Promise.resolve();
      }
      delivery.reject(false);
      return Promise.reject(error);
    }
    if (this.#isLostRun(delivery, parsed.id)) return this.#handleLostRun(delivery, parsed);
    return this.#startDelivered(delivery, parsed, delivery.lostRuns);
  }

  // A redelivery after a lost runner: requeued as a copy that counts it, or run (uncounted when
  // no copy could be made, or answered FAILED once the limit is reached).
  async #handleLostRun(delivery: RequestDelivery, parsed: TaskRequest): Promise<void> {
    const lostRuns = delivery.lostRuns + 1;
    if (lostRuns < this.#maxLostRuns) {
      const requeued = this.#requeueLostRun(delivery, parsed, lostRuns);
      this.#requeues.add(requeued);
      if (await requeued.finally(() => this.#requeues.delete(requeued))) return;
      if (!delivery.live) return; // back in the queue already
    }
    return this.#startDelivered(delivery, parsed, lostRuns);
  }

  #startDelivered(delivery: RequestDelivery, parsed: TaskRequest, lostRuns: number): Promise<void> {
    // Small bodies are kept while the task runs: a shutdown requeues them as a copy.
    if (delivery.body.length > KEPT_BODY_BYTES) delivery.releaseBody();
    return this.#start(delivery, parsed, lostRuns);
  }

  // Redelivered, and neither running nor finished here: the runner that had it was lost (or
  // its connection was). Counted only with a limit set.
  #isLostRun(delivery: RequestDelivery, id: string): boolean {
    return this.#maxLostRuns > 0 && delivery.redelivered && !this.#active.has(id) &&
      !this.#finished.has(id);
  }

  // The broker cannot count for us: a copy carrying the count replaces the redelivery, and
  // runs when it comes back (at the back of the queue). Resolves with whether it did.
  async #requeueLostRun(
    delivery: RequestDelivery,
    request: TaskRequest,
    lostRuns: number,
  ): Promise<boolean> {
    if (await delivery.requeue(lostRuns)) {
      this.#log.warn("Request redelivered after a runner was lost while running it; requeued", {
        taskId: request.id,
        lostRuns,
        maxLostRuns: this.#maxLostRuns,
      });
      return true;
    }
    this.#log.warn(
      "Request redelivered after a runner was lost while running it; its copy with the count " +
        "could not be published to the request queue, so it runs uncounted",
      { taskId: request.id, lostRuns },
    );
    return false;
  }

  // Not async: a frame that awaits would keep the parsed input alive for the whole task.
  #start(delivery: RequestDelivery, parsed: TaskRequest, lostRuns = 0): Promise<void> {
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
      lostRuns,
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

  #rejectInvalid(delivery: RequestDelivery, error: InvalidRequestError): void {
    this.#observer.requestRejected?.("invalid");
    this.#log.warn("Rejected invalid request", {
      taskId: error.id,
      bytes: delivery.body.length,
      error: error.message.slice(0, LOGGED_ERROR_CHARS),
    });
    if (error.id !== undefined && error.routingKey !== undefined) {
      const echo: ResponseEcho = { ...error.fields, id: error.id, routingKey: error.routingKey };
      // Not awaited: its routing key may have no queue for a long time (hostile messages name
      // any), and an unsettled message would hold a slot of the prefetch all that while.
      this.#publish(echo, { status: "FAILED", output: error.message }).catch(
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

    if (this.#maxLostRuns > 0 && active.lostRuns >= this.#maxLostRuns) {
      return await this.#refuseCrashLoop(active);
    }

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
    let task: RunningTask | undefined;
    // CANCELLING carries the task's stdout and stderr as of the cancel, as the Java runner's did.
    const tailsNow = () => task ? { stdout: task.stdout, stderr: task.stderr } : tails;
    const progress = (status: TaskStatus, output?: Uint8Array, logs = tails) => {
      this.#publish(request, { status, output: output ?? null, ...logs }).catch((error) => {
        log.warn("Cannot publish response", { status, error: errorMessage(error) });
      });
    };
    cancelled.signal.addEventListener("abort", () => {
      if (started && !finished) progress("CANCELLING", undefined, tailsNow());
    }, { once: true });

    const spec = {
      id: request.id,
      script: request.script,
      input: active.input ?? new Uint8Array(),
      timeoutMs: request.timeoutMinutes * 60_000,
    };
    active.input = undefined; // the engine has it now, and lets go of it once written
    const taskLog = new TaskLogLimiter(this.#options.taskLog ?? DEFAULT_TASK_LOG_LIMITS);
    let result: TaskResult;
    try {
      result = await runTask(
        spec,
        this.#options.engine,
        {
          signal: AbortSignal.any([cancelled.signal, active.shutdown.signal]),
          beforeStart: watched,
          onStart: (running) => {
            started = true;
            task = running;
            this.#observer.taskStarted?.();
            log.info("Task started", { pid: running.pid });
            progress("RUNNING");
            // Cancelled between the engine's last check and the start: say so, in order.
            if (cancelled.signal.aborted) progress("CANCELLING", undefined, tailsNow());
          },
          onProgress: (message, task) => {
            this.#observer.progressForwarded?.();
            tails = { stdout: task.stdout, stderr: task.stderr };
            progress("RUNNING", message);
          },
          onProgressDropped: (bytes) => {
            this.#observer.progressDropped?.();
            log.warn("Progress message dropped: larger than the limit", {
              bytes,
              limit: this.#options.engine.maxProgressBytes,
            });
          },
          onLog: (stream, line) => {
            if (taskLog.admit(line)) log.info(line, { stream });
          },
        },
      ).finally(() => this.#summariseTaskLog(log, taskLog));
    } catch (error) {
      finished = true;
      const message = error instanceof TaskStartError
        ? startFailureText(error)
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
        await this.#requeueOnShutdown(active);
        return;
    }
  }

  // Back to the queue for another runner, as a copy with the count unchanged: a shutdown is
  // no lost run.
  async #requeueOnShutdown(active: ActiveTask): Promise<void> {
    await Promise.all(active.deliveries.map(async (delivery) => {
      if (!await delivery.requeue(delivery.lostRuns)) delivery.reject(true);
    }));
    this.#settled(active);
  }

  // Its runner was lost too often while running it: most likely the task kills it (an OOM).
  async #refuseCrashLoop(active: ActiveTask): Promise<void> {
    const { lostRuns } = active;
    const output = `Runner lost ${lostRuns} time${
      lostRuns === 1 ? "" : "s"
    } while running this task; not run again (limit ${this.#maxLostRuns})`;
    this.#log.error("Request not run again: its task keeps killing the runner", {
      taskId: active.request.id,
      lostRuns,
    });
    await this.#finish(active, "FAILED", { output });
  }

  // One line for all the task output the limits kept out of the log.
  #summariseTaskLog(log: Logger, limiter: TaskLogLimiter): void {
    if (limiter.suppressedLines === 0) return;
    this.#observer.taskLogSuppressed?.(limiter.suppressedLines);
    const limits = this.#options.taskLog ?? DEFAULT_TASK_LOG_LIMITS;
    log.warn("Task output over the log limits was not logged", {
      lines: limiter.suppressedLines,
      bytes: limiter.suppressedBytes,
      linesPerSecond: limits.linesPerSecond,
      maxBytes: limits.maxBytes,
    });
  }

  /** Publishes the one terminal response, then acknowledges the request once it is confirmed. */
  async #finish(
    active: ActiveTask,
    status: TaskStatus,
    update: { output?: readonly Uint8Array[] | string; stdout?: string; stderr?: string },
    durationMs = 0,
  ): Promise<void> {
    try {
      // Until a queue takes it (the server may be away for long), the request stays
      // unacknowledged; a shutdown stops the wait and the request goes back to the queue.
      const routed = await untilAborted(
        this.#publish(active.request, { status, ...update }),
        active.shutdown.signal,
      );
      if (!routed) {
        this.#log.warn("Shutdown before the terminal response was routed; request requeued", {
          taskId: active.request.id,
          status,
        });
        await this.#requeueOnShutdown(active);
        return;
      }
    } catch (error) {
      if (error instanceof UnroutableResponseError) {
        // No one will ever read it: running the task again would end the same way.
        this.#log.error("Terminal response given up; request acknowledged", {
          taskId: active.request.id,
          status,
        });
        for (const delivery of active.deliveries) delivery.ack();
        this.#settled(active, true);
        return;
      }
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
    // Cut short by the channel's close, a copy would leave its original to be counted twice.
    await Promise.allSettled([...this.#requeues]);
  }
}

// Resolves true once `promise` fulfils, false if `signal` aborts first; rejects as it does.
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) {
    promise.catch(() => {}); // settled later by the publisher's close
    return Promise.resolve(false);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => resolve(true), reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}
