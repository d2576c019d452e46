/** A task that could not be started: the script is missing, not allowed, or not executable. */
export class TaskStartError extends Error {
  /** What the Java runner said in the same case, which a `FAILED` text starts with. */
  readonly javaText: string | undefined;

  constructor(message: string, options?: { cause?: unknown; javaText?: string }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "TaskStartError";
    this.javaText = options?.javaText;
  }
}
