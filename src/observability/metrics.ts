import { cpuUsage } from "node:process";
import type { PublisherObserver } from "../broker/publisher.ts";
import { type TaskStatus, TERMINAL_STATUSES } from "../protocol/status.ts";
import type { RunnerObserver } from "../runner.ts";
import { Counter, Gauge, Histogram, Registry } from "./prometheus.ts";
import { VERSION } from "../version.ts";
import { countOpenFds } from "../util/open_fds.ts";

/** Task duration buckets, in seconds: from 10 ms (a trivial task) to 2 h (the longest Terarium tasks). */
export const TASK_DURATION_BUCKETS: readonly number[] = [
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
  1200,
  1800,
  3600,
  7200,
];

/** Response publish latency buckets (enqueued to confirmed by the broker), in seconds. */
export const PUBLISH_LATENCY_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

const REJECT_REASONS = ["invalid", "too_large"] as const;

/** Live values the metrics read when scraped, from the parts `serve` wires together. */
export interface MetricSources {
  /** Requests being worked on now. */
  running?: () => number;
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
  readonly #started: Counter;
  readonly #finished: Counter<"status">;
  readonly #duration: Histogram<"status">;
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

  constructor() {
    const registry = this.registry;
    const sources = () => this.#sources;
    this.#started = registry.register(
      new Counter({ name: "taskrunner_tasks_started_total", help: "Task processes started." }),
    );
    this.#finished = registry.register(
      new Counter({
        name: "taskrunner_tasks_finished_total",
        help: "Requests ended with a confirmed terminal response, by status.",
        labelNames: ["status"],
      }),
    );
    for (const status of TERMINAL_STATUSES) this.#finished.inc({ status }, 0);
    registry.register(
      new Gauge({
        name: "taskrunner_tasks_running",
        help: "Requests being worked on now.",
        collect: () => sources().running?.() ?? 0,
      }),
    );
    this.#duration = registry.register(
      new Histogram({
        name: "taskrunner_task_duration_seconds",
        help: "Run time of task processes, by terminal status.",
        labelNames: ["status"],
        buckets: TASK_DURATION_BUCKETS,
      }),
    );
    this.#progress = registry.register(
      new Counter({
        name: "taskrunner_progress_messages_total",
        help: "Progress messages forwarded as RUNNING responses.",
      }),
    );
    this.#progressDropped = registry.register(
      new Counter({
        name: "taskrunner_progress_messages_dropped_total",
        help: "Progress messages dropped for being larger than the limit.",
      }),
    );
    this.#logLinesSuppressed = registry.register(
      new Counter({
        name: "taskrunner_task_log_lines_suppressed_total",
        help: "Lines of task stdout/stderr not written to the runner's log (over its limits).",
      }),
    );
    this.#inputBytes = registry.register(
      new Counter({
        name: "taskrunner_input_bytes_total",
        help: "Task input bytes received in requests.",
      }),
    );
    this.#outputBytes = registry.register(
      new Counter({
        name: "taskrunner_output_bytes_total",
        help: "Task output bytes of successful tasks.",
      }),
    );
    this.#rejected = registry.register(
      new Counter({
        name: "taskrunner_requests_rejected_total",
        help: "Request messages rejected before a task could run, by reason.",
        labelNames: ["reason"],
      }),
    );
    for (const reason of REJECT_REASONS) this.#rejected.inc({ reason }, 0);
    this.#publishLatency = registry.register(
      new Histogram({
        name: "taskrunner_response_publish_seconds",
        help: "Time from queueing a response to the broker's confirm.",
        buckets: PUBLISH_LATENCY_BUCKETS,
      }),
    );
    this.#responseBytes = registry.register(
      new Counter({
        name: "taskrunner_response_bytes_total",
        help: "Bytes of responses confirmed by the broker.",
      }),
    );
    registry.register(
      new Gauge({
        name: "taskrunner_responses_pending",
        help: "Responses not yet confirmed by the broker.",
        collect: () => sources().pendingResponses?.() ?? 0,
      }),
    );
    this.#unrouted = registry.register(
      new Gauge({
        name: "taskrunner_responses_unrouted",
        help: "Responses kept because no queue is bound for their routing key (server away).",
      }),
    );
    this.#unrouted.set(0);
    this.#abandoned = registry.register(
      new Counter({
        name: "taskrunner_responses_abandoned_total",
        help: "Responses given up: no queue for their routing key long after others were routed.",
      }),
    );
    registry.register(
      new Counter({
        name: "taskrunner_broker_reconnects_total",
        help: "Broker connections re-established after a loss.",
        collect: () => sources().reconnects?.() ?? 0,
      }),
    );
    registry.register(
      new Gauge({
        name: "taskrunner_broker_connected",
        help: "1 while connected to the broker.",
        collect: () => sources().connected?.() ? 1 : 0,
      }),
    );
    registry.register(
      new Gauge({
        name: "taskrunner_consuming",
        help: "1 while consuming the request queue.",
        collect: () => sources().consuming?.() ? 1 : 0,
      }),
    );
    registry.register(
      new Gauge({
        name: "taskrunner_build_info",
        help: "Always 1; the version is in the label.",
        labelNames: ["version"],
      }),
    ).set({ version: VERSION }, 1);
    registerProcessMetrics(registry);
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

  taskStarted(): void {
    this.#started.inc();
  }

  taskFinished(status: TaskStatus, durationMs: number): void {
    this.#finished.inc({ status });
    // The runner reports 0 for a request whose task never started: no run time to record.
    if (durationMs > 0) this.#duration.observe({ status }, durationMs / 1000);
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
}

// Conventional process_* names, so that standard dashboards and alerts work unchanged.
function registerProcessMetrics(registry: Registry): void {
  registry.register(
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      collect: () => Deno.memoryUsage().rss,
    }),
  );
  registry.register(
    new Gauge({
      name: "process_heap_bytes",
      help: "JavaScript heap in use, in bytes.",
      collect: () => Deno.memoryUsage().heapUsed,
    }),
  );
  registry.register(
    new Gauge({
      name: "process_heap_total_bytes",
      help: "JavaScript heap allocated, in bytes.",
      collect: () => Deno.memoryUsage().heapTotal,
    }),
  );
  registry.register(
    new Counter({
      name: "process_cpu_seconds_total",
      help: "User and system CPU time spent, in seconds.",
      collect: () => {
        const usage = cpuUsage();
        return (usage.user + usage.system) / 1e6;
      },
    }),
  );
  if (Deno.build.os === "linux") {
    registry.register(
      new Gauge({ name: "process_open_fds", help: "Open file descriptors.", collect: openFds }),
    );
    let maxFds: Promise<number | undefined> | undefined;
    registry.register(
      new Gauge({
        name: "process_max_fds",
        help: "Limit of open file descriptors.",
        collect: () => maxFds ??= maxOpenFds(),
      }),
    );
  }
  registry.register(
    new Gauge({
      name: "process_start_time_seconds",
      help: "Start time of the process since the Unix epoch, in seconds.",
    }),
  ).set(Math.round(performance.timeOrigin) / 1000);
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
