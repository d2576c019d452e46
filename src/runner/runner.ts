import {
  PublisherClosedError,
  ResponseTooLargeError,
  UnroutableResponseError,
} from "../broker/publisher.ts";
import type { Logger } from "../observability/log.ts";
import { RepeatedWarning } from "../observability/repeated_warning.ts";
import { TaskTable } from "../observability/task_table.ts";
import {
  DEFAULT_TASK_LOG_LIMITS,
  TaskLogLimiter,
  type TaskLogLimits,
} from "../observability/task_log_limiter.ts";
import {
  encodeResponse,
  failedResponse,
  InvalidRequestError,
  notStartedResponse,
  parseTaskRequest,
  type ResponseEcho,
  type TaskRequest,
  type TaskStatus,
  type TerminalResponse,
  terminalResponse,
} from "../protocol/mod.ts";
import { CancellationLink } from "./cancellation_link.ts";
import {
  failureOfResult,
  failureOfStartError,
  type FailureReason,
} from "./failure_reason.ts";
import { IdleRelease } from "./idle_release.ts";
import type { CancellationSource, Delivery, ResponseSink } from "./ports.ts";
import { ProgressResponses } from "./progress_responses.ts";
import { releaseMemory } from "../os/release_memory.ts";
import {
  runTask,
  type TaskEngineSettings,
  TaskInputTooLargeError,
  type TaskResult,
  TaskStartError,
} from "../task/mod.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage, settlesWithin, yieldToEventLoop } from "../util/async.ts";

export type { FailureReason } from "./failure_reason.ts";

/** Why a request went back to the queue: a shutdown, a lost run's copy, a fault of the runner. */
export type RequeueReason = "shutdown" | "lost_run" | "runner_error";

/** What the runner reports, for metrics. */
export interface RunnerObserver {
  taskStarted?(script: string): void;
  taskFinished?(status: TaskStatus, durationMs: number, script: string): void;
  /** A request answered FAILED or CANCELLED (`script` unknown for an unreadable request). */
  taskFailed?(reason: FailureReason, script: string | undefined): void;
  /**
   * From the request's publication (its AMQP timestamp, when its publisher set one) or else
   * its delivery here, to its task's start.
   */
  queueWait?(seconds: number, since: "published" | "delivered"): void;
  requestRequeued?(reason: RequeueReason): void;
  /** A cancellation arrived for a request being worked on. */
  cancellationReceived?(): void;
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
  /** Where responses go (the broker's `ResponsePublisher`). */
  publisher: ResponseSink;
  /** Where cancellations come from (the broker's `CancellationWatcher`). */
  cancellations: CancellationSource;
  /** How tasks run; its `maxInputBytes` refuses a larger input with `FAILED`. */
  engine: TaskEngineSettings;
  logger: Logger;
  observer?: RunnerObserver;
  /** Runs of a request lost with their runner before it gets `FAILED`; 0 = never. */
  maxLostRuns?: number;
  /** How much of each task's stdout and stderr the log takes (default 100 lines/s, 1 MiB). */
  taskLog?: TaskLogLimits;
  /** Where the requests being worked on are shown (`GET /tasks`); default: a table of its own. */
  tasks?: TaskTable;
}

interface ActiveTask {
  /** The request but its input, which only the task gets. */
  request: Omit<TaskRequest, "input">;
  /** The input until it is handed to the task (a field, so that it can be let go then). */
  input: Uint8Array | undefined;
  /** This request's deliveries: the first, and any redelivery that arrived while it ran. */
  deliveries: Delivery[];
  /** Aborted on shutdown: the task stops and its request goes back to the queue. */
  shutdown: AbortController;
  done: Promise<void>;
  /** Runs of this request lost with their runner: at the limit, it is not run again. */
  lostRuns: number;
  /** When the first delivery arrived (ms since the epoch). */
  receivedAt: number;
  /** When the request was published, if its publisher said so (AMQP timestamp, ms). */
  publishedAt: number | undefined;
}

// How many finished request ids are remembered to recognise late broker redeliveries.
const FINISHED_IDS_KEPT = 10_000;

// Invalid bodies are logged by size and with a short excerpt, never whole.
const LOGGED_ERROR_CHARS = 500;

// A body up to this size is kept while its task runs, so that a shutdown can put the request
// back as a copy that keeps its count of lost runs; a larger one is let go (memory) and its
// requeue counts as a lost run.
const KEPT_BODY_BYTES = 2 * 1024 * 1024;

// From this size, a request's body or a task's output has the runner release memory (a full
// collection, and the allocator trimmed where small buffers were let go) wherever buffers of
// the whole payload have just become garbage, before the next copy: V8 and glibc would leave
// them resident. Only the body's release is off the path to the response (once the task runs).
const COLLECT_FROM_BYTES = 8 * 1024 * 1024;

// Idle this long after work, the runner gives memory back (a full collection and a trim).
const IDLE_RELEASE_MS = 1_000;

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
  readonly #idleRelease = new IdleRelease(
    () => this.#releaseMemory({ trim: true }),
    IDLE_RELEASE_MS,
  );
  /** Large deliveries waiting for memory to be released before they are parsed. */
  readonly #arriving = new Set<Promise<void>>();
  readonly #tasks: TaskTable;
  // Requests for scripts off the allow-list may come by the thousand: one line, then a count.
  readonly #notAllowed: RepeatedWarning;

  constructor(options: RunnerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#notAllowed = new RepeatedWarning(options.logger, "Task not started: script not allowed");
    this.#observer = options.observer ?? {};
    this.#maxLostRuns = options.maxLostRuns ?? 0;
    this.#tasks = options.tasks ?? new TaskTable();
  }

  /** The requests being worked on, row by row, for `GET /tasks`. */
  get tasks(): TaskTable {
    return this.#tasks;
  }

  /** Requests being worked on. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Takes one delivery from the request queue; never throws. */
  handle(delivery: Delivery): void {
    if (this.#log.enabled("debug")) {
      this.#log.debug("Delivery received", {
        bytes: delivery.body.length,
        redelivered: delivery.redelivered,
        lostRuns: delivery.lostRuns,
      });
    }
    this.#handle(delivery).catch((error) => {
      this.#log.error("Unexpected error while handling a request", { error: errorMessage(error) });
    });
  }

  #handle(delivery: Delivery): Promise<void> {
    if (delivery.body.length < COLLECT_FROM_BYTES) return this.#parse(delivery);
    // The frames the broker client assembled the body from are garbage now: let them go before
    // the input is decoded beside the body. A drain waits for it, as for a running task.
    const released = this.#releaseMemory({ trim: true });
    this.#arriving.add(released);
    return released.then(() => {
      this.#arriving.delete(released);
      return this.#parse(delivery);
    });
  }

  // Not async, like #start: a frame that awaited would keep the parsed input alive.
  #parse(delivery: Delivery): Promise<void> {
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
  async #handleLostRun(delivery: Delivery, parsed: TaskRequest): Promise<void> {
    const lostRuns = delivery.lostRuns + 1;
    if (lostRuns < this.#maxLostRuns) {
      const requeued = this.#requeueLostRun(delivery, parsed, lostRuns);
      this.#requeues.add(requeued);
      if (await requeued.finally(() => this.#requeues.delete(requeued))) return;
      if (!delivery.live) return; // back in the queue already
    }
    return this.#startDelivered(delivery, parsed, lostRuns);
  }

  #startDelivered(delivery: Delivery, parsed: TaskRequest, lostRuns: number): Promise<void> {
    // Small bodies are kept while the task runs: a shutdown requeues them as a copy.
    if (delivery.body.length > KEPT_BODY_BYTES) delivery.releaseBody();
    return this.#start(delivery, parsed, lostRuns);
  }

  // Redelivered, and neither running nor finished here: the runner that had it was lost (or
  // its connection was). Counted only with a limit set.
  #isLostRun(delivery: Delivery, id: string): boolean {
    return this.#maxLostRuns > 0 && delivery.redelivered && !this.#active.has(id) &&
      !this.#finished.has(id);
  }

  // The broker cannot count for us: a copy carrying the count replaces the redelivery, and
  // runs when it comes back (at the back of the queue). Resolves with whether it did.
  async #requeueLostRun(
    delivery: Delivery,
    request: TaskRequest,
    lostRuns: number,
  ): Promise<boolean> {
    if (await delivery.requeue(lostRuns)) {
      this.#observer.requestRequeued?.("lost_run");
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
  #start(delivery: Delivery, parsed: TaskRequest, lostRuns = 0): Promise<void> {
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
      this.#tasks.redelivered(request.id);
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
      receivedAt: delivery.receivedAt ?? Date.now(),
      publishedAt: delivery.publishedAt,
    };
    this.#active.set(request.id, active);
    this.#tasks.add(request.id, { script: request.script, lostRuns });
    this.#idleRelease.busy();
    active.done = this.#run(active).catch((error) => {
      // Not settled: the broker hands the request out again when this channel closes.
      this.#log.error("Task could not be run", { taskId: request.id, error: errorMessage(error) });
      for (const delivery of active.deliveries) {
        if (delivery.reject(true)) this.#observer.requestRequeued?.("runner_error");
      }
    }).finally(() => this.#settled(active));
    return active.done;
  }

  // Once its request is settled, the task is no longer running. If it finished, a broker
  // redelivery of it (from a channel that closed before the ack went through) is only acked.
  #settled(active: ActiveTask, finished = false): void {
    const { id } = active.request;
    if (this.#active.get(id) === active) {
      this.#active.delete(id);
      this.#tasks.remove(id);
    }
    if (this.#active.size === 0) this.#idleRelease.idle();
    if (!finished) return;
    this.#finished.add(id);
    if (this.#finished.size > FINISHED_IDS_KEPT) {
      this.#finished.delete(this.#finished.values().next().value!);
    }
  }

  #rejectInvalid(delivery: Delivery, error: InvalidRequestError): void {
    this.#observer.requestRejected?.("invalid");
    const script = error.fields.script;
    this.#observer.taskFailed?.("invalid", typeof script === "string" ? script : undefined);
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
          this.#log.log(
            publisherLogged(publishError) ? "debug" : "warn",
            "Cannot publish FAILED for invalid request",
            {
              taskId: error.id,
              error: errorMessage(publishError),
            },
          );
        },
      );
    }
    // Not requeued: a message that is wrong now is wrong forever; a dead-letter exchange keeps it.
    delivery.reject(false);
  }

  // In phases: the crash-loop check, the task's run while its cancellation queue is watched,
  // then its one terminal response (or none, on shutdown).
  async #run(active: ActiveTask): Promise<void> {
    const { request } = active;
    const log = this.#log.with({ taskId: request.id, script: request.script });
    this.#observer.inputBytes?.(active.input?.length ?? 0);
    if (this.#maxLostRuns > 0 && active.lostRuns >= this.#maxLostRuns) {
      return await this.#refuseCrashLoop(active);
    }
    // The cancellation queue is declared, bound and consumed while the engine makes the task's
    // pipes; the task starts once it is watched (a cancellation already waiting stops it).
    await using cancellation = new CancellationLink(this.#options.cancellations, request.id, {
      signal: active.shutdown.signal,
    });
    // The look-up is on its way to the broker before the engine's set-up takes the thread:
    // the broker client writes in an immediate, queued after our first one (from a tick).
    await yieldToEventLoop();
    await yieldToEventLoop();
    let ran: { result: TaskResult; started: boolean };
    try {
      ran = await this.#runTask(active, cancellation, log);
    } catch (error) {
      this.#tasks.exited(request.id);
      return await this.#notStarted(active, error, log);
    }
    this.#tasks.exited(request.id);
    // Not watched (the broker went away, or shutdown): the request goes back, as before a start.
    cancellation.throwIfFailed();
    await this.#answer(active, ran, log);
  }

  // Runs the task, publishing RUNNING and CANCELLING as it goes.
  async #runTask(
    active: ActiveTask,
    cancellation: CancellationLink,
    log: Logger,
  ): Promise<{ result: TaskResult; started: boolean }> {
    const { request } = active;
    const debug = log.enabled("debug");
    const responses = new ProgressResponses((update) => {
      this.#publish(request, update).then((outcome) => {
        if (debug) log.debug(`Response ${outcome}`, { status: update.status });
      }, (error) => {
        // The publisher logs its refusals (too large, given up), once and then with a count.
        log.log(publisherLogged(error) ? "debug" : "warn", "Cannot publish response", {
          status: update.status,
          error: errorMessage(error),
        });
      });
    });
    cancellation.signal.addEventListener("abort", () => {
      if (cancellation.signal.reason === "cancelled") {
        this.#observer.cancellationReceived?.();
        this.#tasks.cancelRequested(request.id);
      }
      responses.cancel();
    }, { once: true });
    const spec = {
      id: request.id,
      script: request.script,
      input: active.input ?? new Uint8Array(),
      timeoutMs: request.timeoutMinutes * 60_000,
    };
    active.input = undefined; // the engine has it now, and lets go of it once written
    // The body the input was decoded from is garbage: collected while the task starts up.
    const largeInput = spec.input.length >= COLLECT_FROM_BYTES;
    let released: Promise<void> | undefined;
    const taskLog = new TaskLogLimiter(this.#options.taskLog ?? DEFAULT_TASK_LOG_LIMITS);
    try {
      const result = await runTask(spec, this.#options.engine, {
        signal: AbortSignal.any([cancellation.signal, active.shutdown.signal]),
        beforeStart: cancellation.watched,
        onStart: (running) => {
          this.#observer.taskStarted?.(request.script);
          this.#tasks.started(request.id, running.pid);
          this.#observeQueueWait(active);
          log.info("Task started", { pid: running.pid });
          responses.start(running, cancellation.signal.aborted);
          if (largeInput) released = this.#releaseMemory();
        },
        onProgress: (message, task) => {
          this.#observer.progressForwarded?.();
          this.#tasks.progress(request.id, message.length);
          responses.progress(message, task);
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
      });
      return { result, started: responses.started };
    } finally {
      responses.end();
      this.#summariseTaskLog(log, taskLog);
      await released;
    }
  }

  // FAILED for a task that did not start: refused by the engine, or a fault of the runner.
  async #notStarted(active: ActiveTask, error: unknown, log: Logger): Promise<void> {
    if (error instanceof TaskInputTooLargeError) this.#observer.requestRejected?.("too_large");
    const response = error instanceof TaskStartError
      ? notStartedResponse(error)
      : failedResponse(`Task failed in the runner: ${errorMessage(error)}`);
    if (error instanceof TaskStartError && error.message.includes("script not allowed")) {
      this.#notAllowed.report({
        taskId: active.request.id,
        script: active.request.script,
        error: response.output,
      });
    } else {
      log.warn("Task not started", { error: response.output });
    }
    const failure = failureOfStartError(error);
    await this.#finish(active, response, failure ? { failure } : {});
  }

  // Published: the AMQP timestamp has a resolution of seconds, so a wait under one is noise.
  #observeQueueWait(active: ActiveTask): void {
    const now = Date.now();
    if (active.publishedAt !== undefined) {
      this.#observer.queueWait?.((now - active.publishedAt) / 1000, "published");
    } else this.#observer.queueWait?.((now - active.receivedAt) / 1000, "delivered");
  }

  // The one terminal response of a task that ran (or was cancelled before it started); none
  // after a shutdown, whose request goes back to the queue for another runner.
  async #answer(
    active: ActiveTask,
    ran: { result: TaskResult; started: boolean },
    log: Logger,
  ): Promise<void> {
    const { result, started } = ran;
    const durationMs = Math.round(result.durationMs);
    if (result.outcome === "shutdown") {
      log.info("Task stopped by shutdown; request requeued", { durationMs });
      return await this.#requeueOnShutdown(active);
    }
    const large = result.outcome === "success" && result.outputSize >= COLLECT_FROM_BYTES;
    // The body and the input (written by now) go before the output is encoded beside the output.
    if (large) await this.#releaseMemory();
    const response = terminalResponse(result);
    switch (response.status) {
      case "SUCCESS":
        this.#observer.outputBytes?.(response.outputBytes);
        log.info("Task succeeded", {
          status: "SUCCESS",
          durationMs,
          outputBytes: response.outputBytes,
        });
        break;
      case "FAILED":
        log.warn("Task failed", { status: "FAILED", durationMs, error: response.output });
        break;
      case "CANCELLED":
        if (started) log.info("Task cancelled", { status: "CANCELLED", durationMs });
        else log.info("Task cancelled before it started");
        break;
    }
    // Once encoded, the output is let go (and collected) before the broker client copies the
    // response into frames.
    const encoded = result.outcome === "success"
      ? () => {
        result.releaseOutput();
        return large ? this.#releaseMemory() : Promise.resolve();
      }
      : undefined;
    const failure = failureOfResult(result);
    await this.#finish(active, response, {
      durationMs: started ? result.durationMs : 0,
      ...(encoded ? { encoded } : {}),
      ...(failure ? { failure } : {}),
    });
    // The response and its frames, confirmed and let go: gone before the next large request.
    if (large) await this.#releaseMemory({ trim: true });
  }

  // Back to the queue for another runner, as a copy with the count unchanged: a shutdown is
  // no lost run.
  async #requeueOnShutdown(active: ActiveTask): Promise<void> {
    await Promise.all(active.deliveries.map(async (delivery) => {
      if (await delivery.requeue(delivery.lostRuns) || delivery.reject(true)) {
        this.#observer.requestRequeued?.("shutdown");
      }
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
    await this.#finish(active, failedResponse(output), { failure: "lost_runs" });
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

  /**
   * Publishes the one terminal response, then acknowledges the request once the broker has it:
   * routed to a queue, or held by the publisher (no queue now, a queue or the exchange refused
   * it), which tries it again on its own time limit. A held response holds no task slot, and a
   * request whose terminal response is out of the runner's hands is never run again.
   * `encoded` runs once the response is encoded, before it is published.
   */
  async #finish(
    active: ActiveTask,
    response: TerminalResponse,
    options: { durationMs?: number; encoded?: () => Promise<void>; failure?: FailureReason } = {},
  ): Promise<void> {
    const { status } = response;
    const durationMs = options.durationMs ?? 0;
    const taskId = active.request.id;
    let outcome: "routed" | "held" | false;
    try {
      // Until the broker has it (it may be down), the request stays unacknowledged; a
      // shutdown stops the wait and the request goes back to the queue.
      outcome = await untilAborted(
        this.#publish(active.request, response, options.encoded),
        active.shutdown.signal,
      );
    } catch (error) {
      if (error instanceof PublisherClosedError) {
        // Unacknowledged, the request is redelivered when this runner's channel closes.
        this.#log.error("Terminal response not confirmed; request left unacknowledged", {
          taskId,
          status,
        });
        return;
      }
      if (error instanceof ResponseTooLargeError && status === "SUCCESS") {
        return await this.#finish(active, {
          ...failedResponse(tooLargeText(error)),
          stdout: response.stdout,
          stderr: response.stderr,
        }, { durationMs, failure: "no_output" });
      }
      // It cannot be published at all (given up, larger than the broker takes, a routing key
      // AMQP refuses): running the task again would end the same way.
      this.#log.error("Terminal response cannot be published; request acknowledged", {
        taskId,
        status,
        error: errorMessage(error),
      });
      this.#settleFinished(active);
      return;
    }
    if (outcome === false) {
      this.#log.warn("Shutdown before the broker took the terminal response; request requeued", {
        taskId,
        status,
      });
      await this.#requeueOnShutdown(active);
      return;
    }
    if (outcome === "held") {
      this.#log.info("Terminal response held by the publisher; request acknowledged", {
        taskId,
        status,
      });
    } else {
      this.#log.debug("Terminal response published and confirmed; request acknowledged", {
        taskId,
        status,
      });
    }
    this.#observer.taskFinished?.(status, durationMs, active.request.script);
    if (options.failure) this.#observer.taskFailed?.(options.failure, active.request.script);
    this.#settleFinished(active);
  }

  #settleFinished(active: ActiveTask): void {
    for (const delivery of active.deliveries) delivery.ack();
    this.#settled(active, true);
  }

  async #publish(
    echo: ResponseEcho,
    update: Parameters<typeof encodeResponse>[1],
    encoded?: () => Promise<void>,
  ): Promise<"routed" | "held"> {
    // Async, so that a response that cannot be encoded rejects instead of throwing.
    const routingKey = typeof echo.routingKey === "string" ? echo.routingKey : "";
    const content = encodeResponse(echo, update);
    await encoded?.();
    return await this.#options.publisher.publish(routingKey, content, {
      ...(typeof echo.id === "string" ? { taskId: echo.id } : {}),
      ...(typeof echo.script === "string" ? { script: echo.script } : {}),
      status: update.status,
    });
  }

  // After a turn (so that no frame still holds what was just let go); never rejects: memory is
  // a matter of degree, not of the request's outcome.
  async #releaseMemory(options: { trim?: boolean } = {}): Promise<void> {
    await Promise.resolve();
    await releaseMemory(options).catch((error) => {
      this.#log.debug("Cannot release memory", { error: errorMessage(error) });
    });
  }

  /**
   * Lets running tasks finish for up to `drainMs`, then stops the rest, whose requests go
   * back to the queue. Aborting `force` ends the wait at once.
   */
  async drain(drainMs: number, options: { force?: AbortSignal } = {}): Promise<void> {
    // A large delivery still waiting to be parsed becomes a running task first.
    await Promise.allSettled([...this.#arriving]);
    const all = () => Promise.allSettled([...this.#active.values()].map((active) => active.done));
    if (this.#active.size > 0) {
      this.#log.info("Waiting for running tasks to finish", {
        running: this.#active.size,
        drainMs,
      });
      using forced = options.force ? whenAborted(options.force) : undefined;
      await Promise.race([settlesWithin(all(), drainMs), ...(forced ? [forced.promise] : [])]);
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
    this.#idleRelease[Symbol.dispose]();
  }
}

// Resolves with what `promise` fulfils with, false if `signal` aborts first; rejects as it does.
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | false> {
  using aborted = whenAborted(signal);
  // The abort first: when both have happened already, the abort wins. A rejection after it is
  // handled by the race (the publisher's close settles it later).
  return await Promise.race([aborted.promise.then(() => false as const), promise]);
}

// Errors the publisher has logged itself (with a count when they repeat).
function publisherLogged(error: unknown): boolean {
  return error instanceof ResponseTooLargeError || error instanceof UnroutableResponseError ||
    error instanceof PublisherClosedError;
}

// The FAILED text of a task whose output the broker cannot take: the server's failure handler
// runs instead of waiting for a SUCCESS that never comes.
function tooLargeText(error: ResponseTooLargeError): string {
  return `Task output is larger than the broker's limit: its response is ${error.bytes} bytes${
    error.limit === undefined ? "" : `, the broker accepts at most ${error.limit} bytes`
  } (RabbitMQ max_message_size; output is sent base64-encoded)`;
}
