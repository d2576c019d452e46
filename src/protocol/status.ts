/** Task statuses as the hmi-server knows them; `QUEUED` is published by the server only. */
export const TASK_STATUSES = [
  "QUEUED",
  "RUNNING",
  "SUCCESS",
  "FAILED",
  "CANCELLING",
  "CANCELLED",
] as const;

/** One of {@linkcode TASK_STATUSES}. */
export type TaskStatus = typeof TASK_STATUSES[number];

/** The statuses that end a request: exactly one of them is published per request. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set([
  "SUCCESS",
  "FAILED",
  "CANCELLED",
]);

/** Whether `status` ends a request. */
export function isTerminalStatus(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}
