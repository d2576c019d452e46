import { cpuUsage } from "node:process";
import { type TaskStatus, TERMINAL_STATUSES } from "../protocol/status.ts";
import type {
  FailureReason,
  PublisherObserver,
  RequeueReason,
  RunnerObserver,
} from "./observers.ts";
import {
  Counter,
  DEFAULT_BUCKETS,
  Gauge,
  Histogram,
  type LiveMetricOptions,
  type Metric,
  Registry,
} from "./prometheus.ts";
import { VERSION } from "../version.ts";
import { countOpenFds } from "../os/proc_files.ts";
import { OTHER_SCRIPT, ScriptLabels } from "./script_labels.ts";

/** Task duration buckets, in seconds: from 10 ms (a trivial task) to 2 h (the longest Terarium tasks). */
export const TASK_DURATION_BUCKETS: readonly number[] = [
  ...[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  ...[1, 2, 5, 10, 20, 30, 60, 120].map((minutes) => minutes * 60),
];

/**
 * Response publish latency buckets (enqueued to confirmed by the broker), in seconds:
 * Prometheus' defaults (5 ms to 10 s) widened at both ends.
 */
export const PUBLISH_LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, ...DEFAULT_BUCKETS, 30];

/**
 * Queue wait buckets, in seconds: from 5 ms (an idle runner) to 1 h (a backlog behind long
 * tasks).
 */
export const QUEUE_WAIT_BUCKETS: readonly number[] = [
  ...[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  ...[1, 2, 5, 10, 20, 30, 60].map((minutes) => minutes * 60),
];

const REJECT_REASONS = ["invalid", "too_large"] as const;

/** Why a request did not succeed, as `taskrunner_task_failures_total` counts it. */
export const FAILURE_REASONS: readonly FailureReason[] = [
  "timeout",
  "exit",
  "signal",
  "not_found",
  "not_allowed",
  "no_output",
  "lost_runs",
  "invalid",
  "cancelled",
];

/** Why a request went back to the queue, as `taskrunner_requests_requeued_total` counts it. */
export const REQUEUE_REASONS: readonly RequeueReason[] = ["shutdown", "lost_run", "runner_error"];

const REFUSAL_REASONS = ["nack", "too_large", "access_refused"] as const;

/** Every series of the runner with its help text. */
const HELP = {
  taskrunner_tasks_started_total: "Task processes started, by script.",
  taskrunner_tasks_finished_total:
    "Requests ended with a confirmed terminal response, by status and script.",
  taskrunner_task_failures_total:
    "Requests answered FAILED or CANCELLED, by reason and script (counted with the response).",
  taskrunner_tasks_running: "Task processes running now.",
  taskrunner_concurrency_limit: "Requests worked on at once at most (--concurrency, prefetch).",
  taskrunner_task_duration_seconds: "Run time of task processes, by terminal status and script.",
  taskrunner_queue_wait_seconds:
    "Time from a request's publication (since=published: its AMQP timestamp) or, without one, " +
    "its delivery to this runner (since=delivered) to the start of its task process.",
  taskrunner_requests_requeued_total: "Requests put back in the request queue, by reason.",
  taskrunner_cancellations_total: "Cancellations received for requests being worked on.",
  taskrunner_progress_messages_total: "Progress messages forwarded as RUNNING responses.",
  taskrunner_progress_messages_dropped_total:
    "Progress messages dropped for being larger than the limit.",
  taskrunner_task_log_lines_suppressed_total:
    "Lines of task stdout/stderr not written to the runner's log (over its limits).",
  taskrunner_input_bytes_total: "Task input bytes received in requests.",
  taskrunner_output_bytes_total: "Task output bytes of successful tasks.",
  taskrunner_requests_rejected_total:
    "Request messages rejected before a task could run, by reason.",
  taskrunner_response_publish_seconds: "Time from queueing a response to the broker's confirm.",
  taskrunner_response_bytes_total: "Bytes of responses confirmed by the broker.",
  taskrunner_responses_pending: "Responses not yet confirmed by the broker.",
  taskrunner_responses_unrouted:
    "Responses held now: not delivered (no queue bound, refused) and tried again.",
  taskrunner_responses_abandoned_total: "Responses given up: held longer than their time limit.",
  taskrunner_responses_refused_total:
    "Responses the broker refused, by reason: nack, too_large, access_refused.",
  taskrunner_broker_reconnects_total: "Broker connections re-established after a loss.",
  taskrunner_broker_connected: "1 while connected to the broker.",
  taskrunner_consuming: "1 while consuming the request queue.",
  taskrunner_build_info: "Always 1; the version is in the label.",
  process_resident_memory_bytes: "Resident memory size in bytes.",
  nodejs_heap_size_used_bytes: "JavaScript heap in use, in bytes (V8, as prom-client names it).",
  nodejs_heap_size_total_bytes: "JavaScript heap allocated, in bytes.",
  nodejs_external_memory_bytes: "Memory of objects outside the JavaScript heap, in bytes.",
  process_cpu_seconds_total: "User and system CPU time spent, in seconds.",
  process_open_fds: "Open file descriptors.",
  process_max_fds: "Limit of open file descriptors.",
  process_start_time_seconds: "Start time of the process since the Unix epoch, in seconds.",
} as const;

type SeriesName = keyof typeof HELP;

// The name and help text of a series, as its metric's options.
function about(name: SeriesName): { name: SeriesName; help: string } {
  return { name, help: HELP[name] };
}

// A counter that the runner increments.
function counter<L extends string = never>(
  registry: Registry,
  name: SeriesName,
  labelNames: readonly L[] = [],
): Counter<L> {
  return registry.register(new Counter<L>({ ...about(name), labelNames }));
}

// A counter or gauge without labels whose value is read when scraped.
function live(
  registry: Registry,
  Kind: new (options: LiveMetricOptions<never>) => Metric,
  name: SeriesName,
  collect: NonNullable<LiveMetricOptions<never>["collect"]>,
): void {
  registry.register(new Kind({ ...about(name), collect }));
}

/** Live values the metrics read when scraped, from the parts `serve` wires together. */
export interface MetricSources {
  /** Task processes running now. */
  running?: () => number;
  /** Requests worked on at once at most. */
  concurrencyLimit?: () => number;
  /** Connection re-established after a loss, so far. */
  reconnects?: () => number;
  /** Whether the broker connection is up. */
  connected?: () => boolean;
  /** Whether the request queue is being consumed. */
  consuming?: () => boolean;
  /** Responses not yet confirmed by the broker. */
  pendingResponses?: () => number;
}

/**
 * The runner's Prometheus metrics: fed by the runner and the publisher as their observer,
 * read from live sources at scrape time, plus the process metrics.
 *
 * Built on the small registry in `prometheus.ts` rather than prom-client, which costs ~170 ms
 * to load and whose Node default metrics are wrong under Deno (event-loop lag is reported as
 * 9.2e9 s or `Nan`); the process metrics are collected here from Deno's own APIs and `/proc`.
 */
export class RunnerMetrics implements RunnerObserver, PublisherObserver {
  /** The registry holding every series, for {@linkcode RunnerMetrics.text}. */
  readonly registry: Registry = new Registry();
  #sources: MetricSources = {};
  readonly #scripts: ScriptLabels;
  readonly #started: Counter<"script">;
  readonly #finished: Counter<"status" | "script">;
  readonly #failures: Counter<"reason" | "script">;
  readonly #duration: Histogram<"status" | "script">;
  readonly #queueWait: Histogram<"since">;
  readonly #requeued: Counter<"reason">;
  readonly #cancellations: Counter;
  readonly #progress: Counter;
  readonly #progressDropped: Counter;
  readonly #logLinesSuppressed: Counter;
  readonly #inputBytes: Counter;
  readonly #outputBytes: Counter;
  readonly #rejected: Counter<"reason">;
  readonly #publishLatency: Histogram;
  readonly #responseBytes: Counter;
  readonly #unrouted: Gauge;
  readonly #abandoned: Counter;
  readonly #refused: Counter<"reason">;

  /**
   * Registered in the order they are exposed, which is the order of HELP.
   *
   * @param options `scriptAllowed` says which scripts get a `script` label value of their own
   * (the allow-list; default: any, up to the cap)
   */
  constructor(options: { scriptAllowed?: (script: string) => boolean } = {}) {
    const registry = this.registry;
    this.#scripts = new ScriptLabels(options.scriptAllowed ?? (() => true));
    const script = OTHER_SCRIPT;
    this.#started = counter(registry, "taskrunner_tasks_started_total", ["script"]);
    this.#started.inc({ script }, 0);
    this.#finished = counter(registry, "taskrunner_tasks_finished_total", ["status", "script"]);
    for (const status of TERMINAL_STATUSES) this.#finished.inc({ status, script }, 0);
    this.#failures = counter(registry, "taskrunner_task_failures_total", ["reason", "script"]);
    for (const reason of FAILURE_REASONS) this.#failures.inc({ reason, script }, 0);
    this.#live(Gauge, "taskrunner_tasks_running", (sources) => sources.running?.());
    this.#live(Gauge, "taskrunner_concurrency_limit", (sources) => sources.concurrencyLimit?.());
    this.#duration = registry.register(
      new Histogram({
        ...about("taskrunner_task_duration_seconds"),
        labelNames: ["status", "script"],
        buckets: TASK_DURATION_BUCKETS,
      }),
    );
    this.#queueWait = registry.register(
      new Histogram({
        ...about("taskrunner_queue_wait_seconds"),
        labelNames: ["since"],
        buckets: QUEUE_WAIT_BUCKETS,
      }),
    );
    this.#requeued = counter(registry, "taskrunner_requests_requeued_total", ["reason"]);
    for (const reason of REQUEUE_REASONS) this.#requeued.inc({ reason }, 0);
    this.#cancellations = counter(registry, "taskrunner_cancellations_total");
    this.#progress = counter(registry, "taskrunner_progress_messages_total");
    this.#progressDropped = counter(registry, "taskrunner_progress_messages_dropped_total");
    this.#logLinesSuppressed = counter(registry, "taskrunner_task_log_lines_suppressed_total");
    this.#inputBytes = counter(registry, "taskrunner_input_bytes_total");
    this.#outputBytes = counter(registry, "taskrunner_output_bytes_total");
    this.#rejected = counter(registry, "taskrunner_requests_rejected_total", ["reason"]);
    for (const reason of REJECT_REASONS) this.#rejected.inc({ reason }, 0);
    this.#publishLatency = registry.register(
      new Histogram({
        ...about("taskrunner_response_publish_seconds"),
        buckets: PUBLISH_LATENCY_BUCKETS,
      }),
    );
    this.#responseBytes = counter(registry, "taskrunner_response_bytes_total");
    this.#live(Gauge, "taskrunner_responses_pending", (sources) => sources.pendingResponses?.());
    this.#unrouted = registry.register(new Gauge(about("taskrunner_responses_unrouted")));
    this.#unrouted.set(0);
    this.#abandoned = counter(registry, "taskrunner_responses_abandoned_total");
    this.#refused = counter(registry, "taskrunner_responses_refused_total", ["reason"]);
    for (const reason of REFUSAL_REASONS) this.#refused.inc({ reason }, 0);
    this.#live(Counter, "taskrunner_broker_reconnects_total", (sources) => sources.reconnects?.());
    this.#live(Gauge, "taskrunner_broker_connected", (sources) => sources.connected?.());
    this.#live(Gauge, "taskrunner_consuming", (sources) => sources.consuming?.());
    const buildInfo = new Gauge({ ...about("taskrunner_build_info"), labelNames: ["version"] });
    registry.register(buildInfo).set({ version: VERSION }, 1);
    registerProcessMetrics(registry);
  }

  // A series read from the sources at scrape time; 0 until they are bound (booleans as 1/0).
  #live(
    Kind: typeof Counter | typeof Gauge,
    name: SeriesName,
    read: (sources: MetricSources) => number | boolean | undefined,
  ): void {
    live(this.registry, Kind, name, () => Number(read(this.#sources) ?? 0));
  }

  /** Connects the live values read at scrape time (they exist only once `serve` built them). */
  bind(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** The exposition text, for `GET /metrics`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@linkcode RunnerMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  taskStarted(script: string): void {
    this.#started.inc({ script: this.#scripts.of(script) });
  }

  taskFinished(status: TaskStatus, durationMs: number, script: string): void {
    const labels = { status, script: this.#scripts.of(script) };
    this.#finished.inc(labels);
    // The runner reports 0 for a request whose task never started: no run time to record.
    if (durationMs > 0) this.#duration.observe(labels, durationMs / 1000);
  }

  taskFailed(reason: FailureReason, script: string | undefined): void {
    this.#failures.inc({ reason, script: this.#scripts.of(script) });
  }

  queueWait(seconds: number, since: "published" | "delivered"): void {
    this.#queueWait.observe({ since }, Math.max(0, seconds));
  }

  requestRequeued(reason: RequeueReason): void {
    this.#requeued.inc({ reason });
  }

  cancellationReceived(): void {
    this.#cancellations.inc();
  }

  progressForwarded(): void {
    this.#progress.inc();
  }

  progressDropped(): void {
    this.#progressDropped.inc();
  }

  taskLogSuppressed(lines: number): void {
    this.#logLinesSuppressed.inc(lines);
  }

  inputBytes(bytes: number): void {
    this.#inputBytes.inc(bytes);
  }

  outputBytes(bytes: number): void {
    this.#outputBytes.inc(bytes);
  }

  requestRejected(reason: "invalid" | "too_large"): void {
    this.#rejected.inc({ reason });
  }

  confirmed(latencyMs: number, bytes: number): void {
    this.#publishLatency.observe(latencyMs / 1000);
    this.#responseBytes.inc(bytes);
  }

  unrouted(count: number): void {
    this.#unrouted.set(count);
  }

  abandoned(count: number): void {
    this.#abandoned.inc(count);
  }

  refused(reason: typeof REFUSAL_REASONS[number]): void {
    this.#refused.inc({ reason });
  }
}

// Conventional process_* and nodejs_* names, so that standard dashboards and alerts work unchanged.
function registerProcessMetrics(registry: Registry): void {
  live(registry, Gauge, "process_resident_memory_bytes", () => Deno.memoryUsage().rss);
  live(registry, Gauge, "nodejs_heap_size_used_bytes", () => Deno.memoryUsage().heapUsed);
  live(registry, Gauge, "nodejs_heap_size_total_bytes", () => Deno.memoryUsage().heapTotal);
  live(registry, Gauge, "nodejs_external_memory_bytes", () => Deno.memoryUsage().external);
  live(registry, Counter, "process_cpu_seconds_total", () => {
    const usage = cpuUsage();
    return (usage.user + usage.system) / 1e6;
  });
  if (Deno.build.os === "linux") {
    live(registry, Gauge, "process_open_fds", openFds);
    let maxFds: Promise<number | undefined> | undefined;
    live(registry, Gauge, "process_max_fds", () => maxFds ??= maxOpenFds());
  }
  registry.register(new Gauge(about("process_start_time_seconds")))
    .set(Math.round(performance.timeOrigin) / 1000);
}

/**
 * Open file descriptors, from `/proc/self/fd` (Linux). Deno lets a program read `/proc/self`
 * only with `--allow-all`, which the runner does not have: libc lists it (a child could not
 * once the runner is non-dumpable); else `ls` (same user) lists the directory, and the count
 * includes the descriptor or two used to talk to it.
 */
async function openFds(): Promise<number | undefined> {
  const counted = countOpenFds();
  if (counted !== undefined) return counted;
  try {
    let count = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
    return count - 1; // the descriptor of the directory being read
  } catch {
    const lines = await commandOutput("ls", ["-1U", `/proc/${Deno.pid}/fd`]);
    return lines?.split("\n").filter((line) => line.length > 0).length;
  }
}

// `/proc/self/limits` is closed to the runner for the same reason; a child inherits the limit.
async function maxOpenFds(): Promise<number | undefined> {
  const text = await commandOutput("sh", ["-c", "ulimit -n"]);
  const limit = Number(text?.trim());
  return Number.isFinite(limit) && limit > 0 ? limit : undefined;
}

async function commandOutput(program: string, args: string[]): Promise<string | undefined> {
  try {
    const { success, stdout } = await new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout) : undefined;
  } catch {
    return undefined;
  }
}
