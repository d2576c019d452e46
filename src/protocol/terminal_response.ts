import type { TaskStartError } from "../task/errors.ts";
import type { TaskResult } from "../task/contract.ts";
// Only this one module of the engine, which loads nothing else: clients of the protocol (submit)
// do not load the engine.
import { startFailureText } from "../task/outcome.ts";

/**
 * The one terminal response a request gets (docs/protocol.md, "Status sequences"), as both
 * front doors send it: `serve` publishes it, `run` prints it and exits by it.
 */
export type TerminalResponse =
  & {
    /** The task's stdout and stderr as it ended (`""` when it never started). */
    stdout: string;
    stderr: string;
  }
  & (
    | {
      status: "SUCCESS";
      /** The output as the task wrote it, in the chunks read from its pipe. */
      output: readonly Uint8Array[];
      outputBytes: number;
    }
    | {
      status: "FAILED";
      /** Why, in words (the Java runner's first, where it had any). */
      output: string;
      /** A time limit stopped the task (`run` exits 124 rather than 1). */
      timedOut: boolean;
    }
    | { status: "CANCELLED" }
  );

/** A `FAILED` terminal response. */
export type FailedResponse = Extract<TerminalResponse, { status: "FAILED" }>;

/**
 * The terminal response to a task that ran (or was cancelled before it started). A task stopped
 * by a shutdown is answered `CANCELLED` here; `serve` answers it nothing and requeues its
 * request instead, which is its own decision.
 *
 * @param result how the task ended, as the engine returns it
 */
export function terminalResponse(result: TaskResult): TerminalResponse {
  const tails = { stdout: result.stdout, stderr: result.stderr };
  switch (result.outcome) {
    case "success":
      return {
        status: "SUCCESS",
        output: result.outputChunks,
        outputBytes: result.outputSize,
        ...tails,
      };
    case "failure":
    case "timeout":
      return {
        status: "FAILED",
        output: result.message,
        timedOut: result.outcome === "timeout",
        ...tails,
      };
    case "cancelled":
    case "shutdown":
      return { status: "CANCELLED", ...tails };
  }
}

/**
 * `FAILED` for a request whose task did not run: `message` says why (its input over the limit,
 * its runner lost too often, a fault of the runner).
 */
export function failedResponse(message: string): FailedResponse {
  return { status: "FAILED", output: message, timedOut: false, stdout: "", stderr: "" };
}

/** `FAILED` for a task that could not be started, in the Java runner's words first. */
export function notStartedResponse(error: TaskStartError): FailedResponse {
  return failedResponse(startFailureText(error));
}
