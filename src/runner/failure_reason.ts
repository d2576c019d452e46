import type { FailureReason } from "../observability/observers.ts";
import {
  ScriptNotAllowedError,
  TaskInputTooLargeError,
  type TaskResult,
  TaskStartError,
} from "../task/mod.ts";

export type { FailureReason };

/**
 * The reason of a task that ran and did not succeed; undefined for a success or a shutdown
 * (whose request goes back to the queue).
 */
export function failureOfResult(result: TaskResult): FailureReason | undefined {
  switch (result.outcome) {
    case "timeout":
      return "timeout";
    case "cancelled":
      return "cancelled";
    case "failure":
      // The engine answers exit code 0 for an exit without a complete output (none, or over
      // the output limit), null for a signal.
      if (result.exitCode === null) return "signal";
      return result.exitCode === 0 ? "no_output" : "exit";
    default:
      return undefined;
  }
}

/**
 * The reason of a task that did not start; undefined for a fault of the runner itself, which
 * is no property of the request.
 */
export function failureOfStartError(error: unknown): FailureReason | undefined {
  if (error instanceof TaskInputTooLargeError) return "invalid";
  if (error instanceof ScriptNotAllowedError) return "not_allowed";
  if (error instanceof TaskStartError) return "not_found";
  return undefined;
}
