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

/** A script the allow-list refuses: told apart from a missing one by its class, not its text. */
export class ScriptNotAllowedError extends TaskStartError {
  /** @param detail what follows "script not allowed" in the message (`: why`), if anything */
  constructor(script: string, detail = "") {
    super(`Cannot start task "${script}": script not allowed${detail}`);
    this.name = "ScriptNotAllowedError";
  }
}

/** A task whose input is larger than the engine accepts: nothing was made, nothing was run. */
export class TaskInputTooLargeError extends TaskStartError {
  /** The size of the input refused. */
  readonly bytes: number;
  /** The limit it is over (`--max-input-bytes`). */
  readonly limit: number;

  constructor(bytes: number, limit: number) {
    super(`Task input of ${bytes} bytes exceeds the limit of ${limit} bytes`);
    this.name = "TaskInputTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * Refuses an input over `maxInputBytes` (absent: no limit), before anything is made for the
 * task: a front door then answers `FAILED` with the error's message.
 *
 * @throws {TaskInputTooLargeError} when the input is over the limit
 */
export function checkInputSize(input: Uint8Array, maxInputBytes: number | undefined): void {
  if (maxInputBytes !== undefined && input.length > maxInputBytes) {
    throw new TaskInputTooLargeError(input.length, maxInputBytes);
  }
}
