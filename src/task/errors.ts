/** A task that could not be started: the script is missing, not allowed, or not executable. */
export class TaskStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TaskStartError";
  }
}
