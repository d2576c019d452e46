/**
 * One request's life on the runner, as Celery's `Request` owns one task's: the crash-loop
 * check, the task's run while its cancellation queue is watched, its responses, and the one
 * terminal response after which its deliveries are settled.
 *
 * @module
 */

import type { Logger } from "../observability/log.ts";
import type { RunnerObserver } from "../observability/observers.ts";
import type { RepeatedWarning } from "../observability/repeated_warning.ts";
import {
  DEFAULT_TASK_LOG_LIMITS,
  TaskLogLimiter,
  type TaskLogLimits,
} from "../observability/task_log_limiter.ts";
import type { TaskTable } from "../observability/task_table.ts";
import type { CancellationSource, Delivery, ResponseSink } from "../protocol/ports.ts";
import { ProgressResponses } from "../protocol/progress_responses.ts";
import { PublisherClosedError, ResponseTooLargeError } from "../protocol/publish_errors.ts";
import type { TaskRequest } from "../protocol/request.ts";
import { type EncodableUpdate, ResponseEncoder } from "../protocol/response.ts";
import {
  failedResponse,
  notStartedResponse,
  type TerminalResponse,
  terminalResponse,
} from "../protocol/terminal_response.ts";
import {
  runTask,
  type TaskEngineSettings,
  TaskInputTooLargeError,
  type TaskResult,
  TaskStartError,
} from "../task/mod.ts";
import { eitherAborted, whenAborted } from "../util/abort.ts";
import { errorMessage, yieldToEventLoop } from "../util/async.ts";
import { CancellationLink } from "./cancellation_link.ts";
import { failureOfResult, failureOfStartError, type FailureReason } from "./failure_reason.ts";
import type { MemoryPolicy } from "./memory_policy.ts";
import { publisherLogged, publishResponse } from "./publish.ts";

/** What a request's life needs of its runner: its wiring, and where it reports. */
export interface RequestRunContext {
  publisher: ResponseSink;
  cancellations: CancellationSource;
  engine: TaskEngineSettings;
  log: Logger;
  observer: RunnerObserver;
  tasks: TaskTable;
  memory: MemoryPolicy;
  /** How much of each task's stdout and stderr the log takes. */
  taskLog: TaskLogLimits | undefined;
  /** Runs of a request lost with their runner before it gets `FAILED`; 0 = never. */
  maxLostRuns: number;
  /** Requests for scripts off the allow-list: one line, then a count. */
  notAllowed: RepeatedWarning;
  /** The request is settled (`finished`: answered and acknowledged) or left to the broker. */
  settled(run: RequestRun, finished: boolean): void;
}

/** What a task's run gave: its result, and whether it started. */
interface Ran {
  result: TaskResult;
  started: boolean;
}

/** One request being worked on, from its first delivery to its settlement. */
export class RequestRun {
  /** The request but its input, which only the task gets. */
  readonly request: Omit<TaskRequest, "input">;
  /** The input until it is handed to the task (a field, so that it can be let go then). */
  #input: Uint8Array | undefined;
  /** This request's deliveries: the first, and any redelivery that arrived while it ran. */
  readonly #deliveries: Delivery[];
  /** Aborted on shutdown: the task stops and its request goes back to the queue. */
  readonly #shutdown = new AbortController();
  /** Writes the request's fields once for all its responses. */
  #encoder: ResponseEncoder | undefined;
  /** Runs of this request lost with their runner: at the limit, it is not run again. */
  readonly #lostRuns: number;
  /** When the first delivery arrived (ms since the epoch). */
  readonly #receivedAt: number;
  /** When the request was published, if its publisher said so (AMQP timestamp, ms). */
  readonly #publishedAt: number | undefined;
  readonly #context: RequestRunContext;
  /** Settles once the request is settled or left to the broker; never rejects. */
  done: Promise<void> = Promise.resolve();

  /**
   * @param context the runner's wiring
   * @param delivery the request's first delivery
   * @param parsed the request; its input is taken over
   * @param lostRuns runs of it lost with their runner
   */
  constructor(
    context: RequestRunContext,
    delivery: Delivery,
    parsed: TaskRequest,
    lostRuns: number,
  ) {
    const { input, ...request } = parsed;
    this.request = request;
    this.#input = input;
    this.#deliveries = [delivery];
    this.#lostRuns = lostRuns;
    this.#receivedAt = delivery.receivedAt ?? Date.now();
    this.#publishedAt = delivery.publishedAt;
    this.#context = context;
  }

  /** A redelivery of the request while it runs: one run, acknowledged once done. */
  attach(delivery: Delivery): void {
    this.#deliveries.push(delivery);
  }

  /** Stops the task; the request goes back to the queue. */
  shutdown(): void {
    this.#shutdown.abort("shutdown");
  }

  /** Starts the request's life; {@linkcode done} settles at its end. */
  start(): Promise<void> {
    const { log, observer } = this.#context;
    this.done = this.#run().catch((error) => {
      // Not settled: the broker hands the request out again when this channel closes.
      log.error("Task could not be run", { taskId: this.request.id, error: errorMessage(error) });
      for (const delivery of this.#deliveries) {
        if (delivery.reject(true)) observer.requestRequeued?.("runner_error");
      }
    }).finally(() => this.#context.settled(this, false));
    return this.done;
  }

  // In phases: the crash-loop check, the task's run while its cancellation queue is watched,
  // then its one terminal response (or none, on shutdown).
  async #run(): Promise<void> {
    const { request } = this;
    const { observer, maxLostRuns, tasks } = this.#context;
    const log = this.#context.log.with({ taskId: request.id, script: request.script });
    observer.inputBytes?.(this.#input?.length ?? 0);
    if (maxLostRuns > 0 && this.#lostRuns >= maxLostRuns) {
      return await this.#refuseCrashLoop();
    }
    // The cancellation queue is declared, bound and consumed while the engine makes the task's
    // pipes; the task starts once it is watched (a cancellation already waiting stops it).
    await using cancellation = new CancellationLink(this.#context.cancellations, request.id, {
      signal: this.#shutdown.signal,
    });
    // The look-up is on its way to the broker before the engine's set-up takes the thread:
    // the broker client writes in an immediate, queued after our first one (from a tick).
    await yieldToEventLoop();
    await yieldToEventLoop();
    let ran: Ran;
    try {
      ran = await this.#runTask(cancellation, log);
    } catch (error) {
      tasks.exited(request.id);
      return await this.#notStarted(error, log);
    }
    tasks.exited(request.id);
    // Not watched (the broker went away, or shutdown): the request goes back, as before a start.
    cancellation.throwIfFailed();
    await this.#answer(ran, log);
  }

  // Runs the task, publishing RUNNING and CANCELLING as it goes.
  async #runTask(cancellation: CancellationLink, log: Logger): Promise<Ran> {
    const { request } = this;
    const { observer, tasks, memory } = this.#context;
    const responses = this.#progressResponses(log);
    cancellation.signal.addEventListener("abort", () => {
      if (cancellation.signal.reason === "cancelled") {
        observer.cancellationReceived?.();
        tasks.cancelRequested(request.id);
      }
      responses.cancel();
    }, { once: true });
    const spec = {
      id: request.id,
      script: request.script,
      input: this.#input ?? new Uint8Array(),
      timeoutMs: request.timeoutMinutes * 60_000,
    };
    this.#input = undefined; // the engine has it now, and lets go of it once written
    // The body the input was decoded from is garbage: collected while the task starts up.
    const largeInput = memory.isLarge(spec.input.length);
    let released: Promise<void> | undefined;
    const taskLog = new TaskLogLimiter(this.#context.taskLog ?? DEFAULT_TASK_LOG_LIMITS);
    try {
      const result = await runTask(spec, this.#context.engine, {
        signal: eitherAborted(cancellation.signal, this.#shutdown.signal),
        beforeStart: cancellation.watched,
        onStart: (running) => {
          observer.taskStarted?.(request.script);
          tasks.started(request.id, running.pid);
          this.#observeQueueWait();
          log.info("Task started", { pid: running.pid });
          responses.start(running, cancellation.signal.aborted);
          if (largeInput) released = memory.release();
        },
        onProgress: (message, task) => {
          observer.progressForwarded?.();
          tasks.progress(request.id, message.length);
          responses.progress(message, task);
        },
        onProgressDropped: (bytes) => {
          observer.progressDropped?.();
          log.warn("Progress message dropped: larger than the limit", {
            bytes,
            limit: this.#context.engine.maxProgressBytes,
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

  // The RUNNING and CANCELLING responses, published in order without being waited for.
  #progressResponses(log: Logger): ProgressResponses {
    const debug = log.enabled("debug");
    return new ProgressResponses((update) => {
      this.#publish(update).then((outcome) => {
        if (debug) log.debug(`Response ${outcome}`, { status: update.status });
      }, (error) => {
        // The publisher logs its refusals (too large, given up), once and then with a count.
        log.log(publisherLogged(error) ? "debug" : "warn", "Cannot publish response", {
          status: update.status,
          error: errorMessage(error),
        });
      });
    });
  }

  // FAILED for a task that did not start: refused by the engine, or a fault of the runner.
  async #notStarted(error: unknown, log: Logger): Promise<void> {
    if (error instanceof TaskInputTooLargeError) {
      this.#context.observer.requestRejected?.("too_large");
    }
    const response = error instanceof TaskStartError
      ? notStartedResponse(error)
      : failedResponse(`Task failed in the runner: ${errorMessage(error)}`);
    const failure = failureOfStartError(error);
    if (failure === "not_allowed") {
      this.#context.notAllowed.report({
        taskId: this.request.id,
        script: this.request.script,
        error: response.output,
      });
    } else {
      log.warn("Task not started", { error: response.output });
    }
    await this.#finish(response, failure ? { failure } : {});
  }

  // Published: the AMQP timestamp has a resolution of seconds, so a wait under one is noise.
  #observeQueueWait(): void {
    const { observer } = this.#context;
    const now = Date.now();
    if (this.#publishedAt !== undefined) {
      observer.queueWait?.((now - this.#publishedAt) / 1000, "published");
    } else observer.queueWait?.((now - this.#receivedAt) / 1000, "delivered");
  }

  // The one terminal response of a task that ran (or was cancelled before it started); none
  // after a shutdown, whose request goes back to the queue for another runner.
  async #answer(ran: Ran, log: Logger): Promise<void> {
    const { result, started } = ran;
    const { memory } = this.#context;
    if (result.outcome === "shutdown") {
      log.info("Task stopped by shutdown; request requeued", {
        durationMs: Math.round(result.durationMs),
      });
      return await this.#requeueOnShutdown();
    }
    const large = result.outcome === "success" && memory.isLarge(result.outputSize);
    // The body and the input (written by now) go before the output is encoded beside the output.
    if (large) await memory.release();
    const response = terminalResponse(result);
    this.#logEnd(response, ran, log);
    // Once encoded, the output is let go (and collected) before the broker client copies the
    // response into frames.
    const encoded = result.outcome === "success"
      ? () => {
        result.releaseOutput();
        return large ? memory.release() : Promise.resolve();
      }
      : undefined;
    const failure = failureOfResult(result);
    await this.#finish(response, {
      durationMs: started ? result.durationMs : 0,
      ...(encoded ? { encoded } : {}),
      ...(failure ? { failure } : {}),
    });
    // The response and its frames, confirmed and let go: gone before the next large request.
    if (large) await memory.release({ trim: true });
  }

  // One line for how the task ended.
  #logEnd(response: TerminalResponse, ran: Ran, log: Logger): void {
    const durationMs = Math.round(ran.result.durationMs);
    switch (response.status) {
      case "SUCCESS":
        this.#context.observer.outputBytes?.(response.outputBytes);
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
        if (ran.started) log.info("Task cancelled", { status: "CANCELLED", durationMs });
        else log.info("Task cancelled before it started");
        break;
    }
  }

  // Back to the queue for another runner, as a copy with the count unchanged: a shutdown is
  // no lost run.
  async #requeueOnShutdown(): Promise<void> {
    await Promise.all(this.#deliveries.map(async (delivery) => {
      if (await delivery.requeue(delivery.lostRuns) || delivery.reject(true)) {
        this.#context.observer.requestRequeued?.("shutdown");
      }
    }));
    this.#context.settled(this, false);
  }

  // Its runner was lost too often while running it: most likely the task kills it (an OOM).
  async #refuseCrashLoop(): Promise<void> {
    const lostRuns = this.#lostRuns;
    const output = `Runner lost ${lostRuns} time${
      lostRuns === 1 ? "" : "s"
    } while running this task; not run again (limit ${this.#context.maxLostRuns})`;
    this.#context.log.error("Request not run again: its task keeps killing the runner", {
      taskId: this.request.id,
      lostRuns,
    });
    await this.#finish(failedResponse(output), { failure: "lost_runs" });
  }

  // One line for all the task output the limits kept out of the log.
  #summariseTaskLog(log: Logger, limiter: TaskLogLimiter): void {
    if (limiter.suppressedLines === 0) return;
    this.#context.observer.taskLogSuppressed?.(limiter.suppressedLines);
    const limits = this.#context.taskLog ?? DEFAULT_TASK_LOG_LIMITS;
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
    response: TerminalResponse,
    options: { durationMs?: number; encoded?: () => Promise<void>; failure?: FailureReason } = {},
  ): Promise<void> {
    const { status } = response;
    const taskId = this.request.id;
    const { log, observer } = this.#context;
    let outcome: "routed" | "held" | false;
    try {
      // Until the broker has it (it may be down), the request stays unacknowledged; a
      // shutdown stops the wait and the request goes back to the queue.
      outcome = await untilAborted(this.#publish(response, options.encoded), this.#shutdown.signal);
    } catch (error) {
      return await this.#notPublished(response, error, options.durationMs ?? 0);
    }
    if (outcome === false) {
      log.warn("Shutdown before the broker took the terminal response; request requeued", {
        taskId,
        status,
      });
      await this.#requeueOnShutdown();
      return;
    }
    if (outcome === "held") {
      log.info("Terminal response held by the publisher; request acknowledged", {
        taskId,
        status,
      });
    } else {
      log.debug("Terminal response published and confirmed; request acknowledged", {
        taskId,
        status,
      });
    }
    observer.taskFinished?.(status, options.durationMs ?? 0, this.request.script);
    if (options.failure) observer.taskFailed?.(options.failure, this.request.script);
    this.#settleFinished();
  }

  // The terminal response could not be published: left to the broker (the publisher closed),
  // answered FAILED instead (too large a SUCCESS), or given up and acknowledged.
  async #notPublished(
    response: TerminalResponse,
    error: unknown,
    durationMs: number,
  ): Promise<void> {
    const { status } = response;
    const taskId = this.request.id;
    if (error instanceof PublisherClosedError) {
      // Unacknowledged, the request is redelivered when this runner's channel closes.
      this.#context.log.error("Terminal response not confirmed; request left unacknowledged", {
        taskId,
        status,
      });
      return;
    }
    if (error instanceof ResponseTooLargeError && status === "SUCCESS") {
      return await this.#finish({
        ...failedResponse(tooLargeText(error)),
        stdout: response.stdout,
        stderr: response.stderr,
      }, { durationMs, failure: "no_output" });
    }
    // It cannot be published at all (given up, larger than the broker takes, a routing key
    // AMQP refuses): running the task again would end the same way.
    this.#context.log.error("Terminal response cannot be published; request acknowledged", {
      taskId,
      status,
      error: errorMessage(error),
    });
    this.#settleFinished();
  }

  #settleFinished(): void {
    for (const delivery of this.#deliveries) delivery.ack();
    this.#context.settled(this, true);
  }

  #publish(update: EncodableUpdate, encoded?: () => Promise<void>): Promise<"routed" | "held"> {
    this.#encoder ??= new ResponseEncoder(this.request);
    return publishResponse(this.#context.publisher, this.#encoder, update, encoded);
  }
}

// Resolves with what `promise` fulfils with, false if `signal` aborts first; rejects as it does.
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | false> {
  using aborted = whenAborted(signal);
  // The abort first: when both have happened already, the abort wins. A rejection after it is
  // handled by the race (the publisher's close settles it later).
  return await Promise.race([aborted.promise.then(() => false as const), promise]);
}

// The FAILED text of a task whose output the broker cannot take: the server's failure handler
// runs instead of waiting for a SUCCESS that never comes.
function tooLargeText(error: ResponseTooLargeError): string {
  return `Task output is larger than the broker's limit: its response is ${error.bytes} bytes${
    error.limit === undefined ? "" : `, the broker accepts at most ${error.limit} bytes`
  } (RabbitMQ max_message_size; output is sent base64-encoded)`;
}
