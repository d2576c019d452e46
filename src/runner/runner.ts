/**
 * The runner: admits request deliveries (parsing, rejecting the invalid), recognises
 * redeliveries (of a request running or finished here) and lost runs, and drains on shutdown.
 * Each request's life is a {@linkcode RequestRun}; when memory is given back is the
 * {@linkcode MemoryPolicy}'s.
 *
 * @module
 */

import type { Logger } from "../observability/log.ts";
import type { RunnerObserver } from "../observability/observers.ts";
import { RepeatedWarning } from "../observability/repeated_warning.ts";
import type { TaskLogLimits } from "../observability/task_log_limiter.ts";
import { TaskTable } from "../observability/task_table.ts";
import type { CancellationSource, Delivery, ResponseSink } from "../protocol/ports.ts";
import { InvalidRequestError, parseTaskRequest, type TaskRequest } from "../protocol/request.ts";
import type { ResponseEcho } from "../protocol/response.ts";
import type { TaskEngineSettings } from "../task/mod.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage, settlesWithin } from "../util/async.ts";
import { MemoryPolicy } from "./memory_policy.ts";
import { publisherLogged, publishResponse } from "./publish.ts";
import { RequestRun, type RequestRunContext } from "./request_run.ts";

export type { FailureReason, RequeueReason, RunnerObserver } from "../observability/observers.ts";

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
  readonly #active = new Map<string, RequestRun>();
  readonly #maxLostRuns: number;
  /** Copies of lost runs' requests on their way back to the queue: a shutdown waits for them. */
  readonly #requeues = new Set<Promise<boolean>>();
  /** Ids of the latest finished requests, oldest first. */
  readonly #finished = new Set<string>();
  readonly #memory: MemoryPolicy;
  /** Large deliveries waiting for memory to be released before they are parsed. */
  readonly #arriving = new Set<Promise<void>>();
  readonly #tasks: TaskTable;
  readonly #context: RequestRunContext;

  constructor(options: RunnerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
    this.#maxLostRuns = options.maxLostRuns ?? 0;
    this.#tasks = options.tasks ?? new TaskTable();
    this.#memory = new MemoryPolicy(options.logger);
    this.#context = {
      publisher: options.publisher,
      cancellations: options.cancellations,
      engine: options.engine,
      log: options.logger,
      observer: this.#observer,
      tasks: this.#tasks,
      memory: this.#memory,
      taskLog: options.taskLog,
      maxLostRuns: this.#maxLostRuns,
      // Requests for scripts off the allow-list may come by the thousand: one line, then a count.
      notAllowed: new RepeatedWarning(options.logger, "Task not started: script not allowed"),
      settled: (run, finished) => this.#settled(run, finished),
    };
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
    if (!this.#memory.isLarge(delivery.body.length)) return this.#parse(delivery);
    // The frames the broker client assembled the body from are garbage now: let them go before
    // the input is decoded beside the body. A drain waits for it, as for a running task.
    const released = this.#memory.release({ trim: true });
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
    if (!this.#memory.keepsBody(delivery.body.length)) delivery.releaseBody();
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
    const { id } = parsed;
    if (delivery.redelivered && this.#finished.has(id)) {
      this.#log.info("Redelivery of a request that has finished; acknowledged", { taskId: id });
      delivery.ack();
      return Promise.resolve();
    }
    const running = this.#active.get(id);
    if (running) {
      // The broker redelivered it (a channel closed under it): one run, acknowledged once done.
      running.attach(delivery);
      this.#tasks.redelivered(id);
      this.#log.info("Request redelivered while its task runs; attached to it", { taskId: id });
      return Promise.resolve();
    }
    const run = new RequestRun(this.#context, delivery, parsed, lostRuns);
    this.#active.set(id, run);
    this.#tasks.add(id, { script: run.request.script, lostRuns });
    this.#memory.busy();
    return run.start();
  }

  // Once its request is settled, the task is no longer running. If it finished, a broker
  // redelivery of it (from a channel that closed before the ack went through) is only acked.
  #settled(run: RequestRun, finished = false): void {
    const { id } = run.request;
    if (this.#active.get(id) === run) {
      this.#active.delete(id);
      this.#tasks.remove(id);
    }
    if (this.#active.size === 0) this.#memory.idle();
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
      publishResponse(this.#options.publisher, echo, { status: "FAILED", output: error.message })
        .catch(
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

  /**
   * Lets running tasks finish for up to `drainMs`, then stops the rest, whose requests go
   * back to the queue. Aborting `force` ends the wait at once.
   */
  async drain(drainMs: number, options: { force?: AbortSignal } = {}): Promise<void> {
    // A large delivery still waiting to be parsed becomes a running task first.
    await Promise.allSettled([...this.#arriving]);
    const all = () => Promise.allSettled([...this.#active.values()].map((run) => run.done));
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
      for (const run of this.#active.values()) run.shutdown();
      await all();
    }
    // Cut short by the channel's close, a copy would leave its original to be counted twice.
    await Promise.allSettled([...this.#requeues]);
    this.#memory[Symbol.dispose]();
  }
}
