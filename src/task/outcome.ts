import type { TaskStartError } from "./errors.ts";
import type { OomKills } from "./oom_kills.ts";
import type { TimeLimit } from "./timer.ts";

/**
 * Where a task stood when it ended, as the Java runner's phases name it: writing its input,
 * reading its progress and output, or waiting for the process once the output was read.
 */
export type TaskPhase = "input" | "reading" | "exit";

/** What is known of a task that ended on its own or on a time limit. */
export interface TaskEnd {
  id: string;
  script: string;
  status: Deno.CommandStatus;
  /** The time limit that stopped it, if one did. */
  limit?: TimeLimit | undefined;
  phase: TaskPhase;
  /** Whether the task opened and closed its output pipe (even without writing a byte). */
  outputClosed: boolean;
  outputTooLarge: boolean;
  stderr: string;
  timeoutMs: number;
  maxDurationMs: number;
  maxOutputBytes: number;
  /** The cgroup's `oom_kill` count before and after the task, when it was killed by SIGKILL. */
  oomKills?: OomKills | undefined;
}

/** Why a task did not succeed, with the text its `FAILED` response carries. */
export type TaskFailure =
  | { outcome: "failure"; message: string; exitCode: number | null }
  | { outcome: "timeout"; message: string; limit: TimeLimit };

/**
 * Decides whether a task that ended (on its own or on a time limit) failed, and says why.
 * Each text starts with what the Java runner said in the same case, which the hmi-server and
 * its users may match on, followed by this runner's detail after a colon.
 *
 * @returns the failure, or undefined when the task succeeded
 */
export function classifyTaskEnd(end: TaskEnd): TaskFailure | undefined {
  const task = `task "${end.script}"`;
  if (end.limit === "duration") {
    return {
      outcome: "timeout",
      limit: "duration",
      message: `Process did not exit within the timeout: ${task} timed out after ${
        formatDuration(end.maxDurationMs)
      }, the maximum task duration (--max-task-duration)`,
    };
  }
  if (end.limit === "inactivity") {
    return {
      outcome: "timeout",
      limit: "inactivity",
      message: `${javaTimeoutText(end)}: ${task} timed out after ${
        formatDuration(end.timeoutMs)
      } without progress (timeoutMinutes is an inactivity limit)`,
    };
  }
  const { status } = end;
  const lastError = lastLine(end.stderr);
  const because = lastError ? `: ${lastError}` : "";
  if (!status.success) {
    const how = status.signal
      ? `was killed by ${status.signal}${oomKillText(end.oomKills)}`
      : `exited with code ${status.code}`;
    // Java reads the output before it waits for the process: a non-zero exit after the output
    // is complete has a text of its own.
    const java = end.outputClosed
      ? `Python script exited with non-zero exit code: ${status.code}`
      : exitedEarly(end);
    return {
      outcome: "failure",
      exitCode: status.signal ? null : status.code,
      message: `${java}: ${task} ${how}${because}`,
    };
  }
  if (!end.outputClosed) {
    return {
      outcome: "failure",
      exitCode: 0,
      message: `${exitedEarly(end)}: ${task} exited without writing its output pipe${because}`,
    };
  }
  if (end.outputTooLarge) {
    return {
      outcome: "failure",
      exitCode: 0,
      message:
        `Task "${end.script}" wrote more output than the limit of ${end.maxOutputBytes} bytes`,
    };
  }
  return undefined;
}

/**
 * The `FAILED` text of a task that could not be started: the Java runner's words for the same
 * case first (`Script file: <script> not found`), where it had any, then this runner's.
 */
export function startFailureText(error: TaskStartError): string {
  return error.javaText ? `${error.javaText}: ${error.message}` : error.message;
}

// Said only when the count rose while the task ran: a SIGKILL from anyone else says nothing.
function oomKillText(kills: OomKills | undefined): string {
  if (!kills || kills.after <= kills.before) return "";
  return `, by the kernel's out-of-memory killer (oom_kill in "${kills.path}" went from ${kills.before} to ${kills.after} while it ran)`;
}

function exitedEarly(end: TaskEnd): string {
  return `Process for task ${end.id} exited early with code ${end.status.code}`;
}

function javaTimeoutText(end: TaskEnd): string {
  switch (end.phase) {
    case "input":
      return `Writing to pipe took too long for task ${end.id}`;
    case "reading":
      return `Reading from pipe took too long for task ${end.id}`;
    case "exit":
      return "Process did not exit within the timeout";
  }
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  const line = lines[lines.length - 1] ?? "";
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

/** Formats milliseconds the way a person says them: `90 s`, `1.5 min`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${Number((ms / 1_000).toFixed(1))} s`;
  return `${Number((ms / 60_000).toFixed(2))} min`;
}
