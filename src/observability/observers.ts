/**
 * What the runner and the response publisher report as they work, declared here, on the floor
 * that counts it (`RunnerMetrics` fills both), so that observability needs nothing from the
 * layers above it that report to it.
 *
 * @module
 */

import type { TaskStatus } from "../protocol/status.ts";

/**
 * Why a request did not succeed, for `taskrunner_task_failures_total`: a time limit, a
 * non-zero exit, a signal, a script missing or not allowed, an exit without a (complete)
 * output, a runner lost too often, an invalid request (or an input over the limit), a
 * cancellation.
 */
export type FailureReason =
  | "timeout"
  | "exit"
  | "signal"
  | "not_found"
  | "not_allowed"
  | "no_output"
  | "lost_runs"
  | "invalid"
  | "cancelled";

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

/** Why the broker refused a response. */
export type RefusalReason = "nack" | "too_large" | "access_refused";

/** Observer of publisher activity, for metrics. */
export interface PublisherObserver {
  confirmed?(latencyMs: number, bytes: number): void;
  /** The number of responses held (unrouted, nacked, or refused write access) changed. */
  unrouted?(count: number): void;
  /** Responses were given up (held past their limit). */
  abandoned?(count: number): void;
  /** The broker refused a response. */
  refused?(reason: RefusalReason): void;
}
