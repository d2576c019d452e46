/**
 * Task-side helper for the Terarium taskrunner, for tasks written in Deno/TypeScript.
 *
 * The runner starts a task as
 * `task --id <uuid> --input_pipe <path> --output_pipe <path> --progress_pipe <path>`
 * (hyphen spellings `--input-pipe` etc. are accepted too). The three paths are named pipes:
 *
 * - input: the runner writes all input bytes and closes it; the task reads to end of file;
 * - progress: the task opens it, writes ONE JSON document, closes it, as many times as it likes;
 *   a JSON object with a `done` key ends progress;
 * - output: the task opens it once, writes its result, closes it.
 *
 * Needs `--allow-read --allow-write` (for the pipes) and nothing else.
 *
 * @example
 * ```ts
 * import { Task } from "./mod.ts";
 *
 * const task = new Task();
 * task.onCancel(() => console.log("cancelled"));
 * const input = await task.readInputJson<{ x: number }>();
 * await task.writeProgress({ progress: 0.5 });
 * await task.writeOutput({ result: input.x * 2 });
 * task.shutdown();
 * ```
 *
 * @module
 */

/** The command-line arguments a task receives from the runner. */
export interface TaskArgs {
  /** The request id (`--id`). */
  id: string;
  /** Input given inline (`--input`) instead of through a pipe. */
  input?: string;
  /** Path of the input FIFO (`--input_pipe` / `--input-pipe`). */
  inputPipe?: string;
  /** Path of the output FIFO (`--output_pipe` / `--output-pipe`). */
  outputPipe?: string;
  /** Path of the progress FIFO (`--progress_pipe` / `--progress-pipe`). */
  progressPipe?: string;
  /**
   * Seconds after which the task exits by itself
   * (`--self_destruct_timeout_seconds` / `--self-destruct-timeout-seconds`); default one day.
   */
  selfDestructTimeoutSeconds: number;
}

/** Error thrown by {@linkcode parseTaskArgs} for a bad command line. */
export class TaskArgsError extends Error {
  /** @param message what is wrong with the arguments */
  constructor(message: string) {
    super(message);
    this.name = "TaskArgsError";
  }
}

/** Default self-destruct timeout: one day, as in the Python helper. */
export const DEFAULT_SELF_DESTRUCT_TIMEOUT_SECONDS = 60 * 60 * 24;

/** Default timeout of each pipe operation, as in the Python helper. */
export const DEFAULT_TIMEOUT_MS = 30_000;

type StringKey = "id" | "input" | "inputPipe" | "outputPipe" | "progressPipe";

const FLAGS: Readonly<Record<string, StringKey | "selfDestructTimeoutSeconds">> = {
  "--id": "id",
  "--input": "input",
  "--input_pipe": "inputPipe",
  "--input-pipe": "inputPipe",
  "--output_pipe": "outputPipe",
  "--output-pipe": "outputPipe",
  "--progress_pipe": "progressPipe",
  "--progress-pipe": "progressPipe",
  "--self_destruct_timeout_seconds": "selfDestructTimeoutSeconds",
  "--self-destruct-timeout-seconds": "selfDestructTimeoutSeconds",
};

/**
 * Parse a task's command line. Accepts `--flag value` and `--flag=value`, both the underscore
 * and the hyphen spellings.
 *
 * @param args the arguments, `Deno.args` by default
 * @returns the parsed arguments
 * @throws {TaskArgsError} on an unknown flag, a missing value, a missing `--id`, or when neither
 *   `--input` nor an input pipe is given
 */
export function parseTaskArgs(args: readonly string[] = Deno.args): TaskArgs {
  const strings: Partial<Record<StringKey, string>> = {};
  let selfDestructTimeoutSeconds = DEFAULT_SELF_DESTRUCT_TIMEOUT_SECONDS;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const key = FLAGS[flag];
    if (key === undefined) throw new TaskArgsError(`unknown argument: ${arg}`);
    let value: string | undefined;
    if (flag !== arg) {
      value = arg.slice(eq + 1);
    } else {
      value = args[++i];
      if (value === undefined) throw new TaskArgsError(`missing value for ${flag}`);
    }
    if (key === "selfDestructTimeoutSeconds") {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0 || value.trim() === "") {
        throw new TaskArgsError(`${flag} needs a number of seconds, got: ${value}`);
      }
      selfDestructTimeoutSeconds = n;
    } else {
      strings[key] = value;
    }
  }
  if (strings.id === undefined) throw new TaskArgsError("the following argument is required: --id");
  if (strings.input === undefined && strings.inputPipe === undefined) {
    throw new TaskArgsError("Either `input` or `input_pipe` must be specified");
  }
  const parsed: TaskArgs = { id: strings.id, selfDestructTimeoutSeconds };
  if (strings.input !== undefined) parsed.input = strings.input;
  if (strings.inputPipe !== undefined) parsed.inputPipe = strings.inputPipe;
  if (strings.outputPipe !== undefined) parsed.outputPipe = strings.outputPipe;
  if (strings.progressPipe !== undefined) parsed.progressPipe = strings.progressPipe;
  return parsed;
}

/** Options of every pipe operation. */
export interface IoOptions {
  /**
   * Give up after this many milliseconds ({@linkcode DEFAULT_TIMEOUT_MS} by default; `Infinity`
   * waits forever). The promise then rejects with a `TimeoutError` `DOMException`.
   */
  timeoutMs?: number;
  /** Give up when this signal aborts; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of the {@linkcode Task} constructor. */
export interface TaskOptions {
  /** Start the self-destruct timer (default true). */
  selfDestruct?: boolean;
  /** Where {@linkcode Task.log} writes (default `console.log`). */
  log?: (message: string) => void;
}

/** Something that can be sent as progress or output: bytes, text, or any JSON value. */
export type Payload = Uint8Array | string | unknown;

/** What {@linkcode Task.onCancel} calls; may be async (it is awaited before exiting). */
export type CancelHandler = (signal: Deno.Signal) => void | Promise<void>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encode a payload: bytes as they are, a string as UTF-8, anything else as JSON.
 *
 * To send a JSON *string* value, pass `JSON.stringify(s)`.
 *
 * @param value the payload
 * @returns its bytes
 */
export function encodePayload(value: Payload): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return encoder.encode(value);
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`cannot encode ${typeof value} as JSON`);
  return encoder.encode(json);
}

/** One pipe operation running under a timeout and/or an abort signal. */
class Deadline {
  readonly signal: AbortSignal;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #controller = new AbortController();

  constructor(options: IoOptions, what: string) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signals = [this.#controller.signal];
    if (options.signal !== undefined) signals.push(options.signal);
    this.signal = signals.length === 1 ? this.#controller.signal : AbortSignal.any(signals);
    if (Number.isFinite(timeoutMs)) {
      this.#timer = setTimeout(() => {
        this.#controller.abort(
          new DOMException(`${what} timed out after ${timeoutMs} ms`, "TimeoutError"),
        );
      }, timeoutMs);
    }
  }

  /**
   * Race `promise` against the deadline. On expiry, `unblock` is called so that a pending FIFO
   * open or read can finish (and not keep the process alive), and the returned promise rejects.
   */
  async race<T>(promise: Promise<T>, unblock: () => void): Promise<T> {
    this.signal.throwIfAborted();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        try {
          unblock();
        } finally {
          reject(this.signal.reason);
        }
      };
      this.signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([promise, aborted]);
    } finally {
      if (onAbort !== undefined) this.signal.removeEventListener("abort", onAbort);
    }
  }

  dispose(): void {
    clearTimeout(this.#timer);
  }
}

/** Open the other end of a FIFO for a moment so a blocked `open` of ours returns. */
function unblockFifo(path: string, as: "reader" | "writer"): void {
  // Opening the opposite end pairs with our pending open; close it at once. The pending side
  // sees an empty pipe (reader) or notices it was abandoned (writer) and closes too.
  Deno.open(path, as === "reader" ? { read: true } : { write: true })
    .then((f) => f.close())
    .catch(() => {});
}

/**
 * The task's side of the taskrunner protocol.
 *
 * Construct it once at start-up: it parses the command line (or takes {@linkcode TaskArgs}) and
 * starts a self-destruct timer that exits the process after `--self_destruct_timeout_seconds`
 * (call {@linkcode Task.shutdown} when done; the timer never keeps the process alive by itself).
 */
export class Task {
  #args: TaskArgs;
  #hasWrittenOutput = false;
  #selfDestructTimer: ReturnType<typeof setTimeout> | undefined;
  #log: (message: string) => void;
  #input: Promise<Uint8Array> | undefined;

  /**
   * @param args the command-line arguments (default `Deno.args`) or already parsed arguments
   * @param options see {@linkcode TaskOptions}
   * @throws {TaskArgsError} for a bad command line
   */
  constructor(args: readonly string[] | TaskArgs = Deno.args, options: TaskOptions = {}) {
    this.#args = isStringArray(args) ? parseTaskArgs(args) : { ...args };
    this.#log = options.log ?? ((message) => console.log(message));
    if (options.selfDestruct ?? true) {
      const seconds = this.#args.selfDestructTimeoutSeconds;
      const timer = setTimeout(() => {
        console.error(`Self-destruct timeout of ${seconds}s reached, exiting`);
        Deno.exit(137);
      }, Math.min(seconds * 1000, 2 ** 31 - 1));
      Deno.unrefTimer(timer);
      this.#selfDestructTimer = timer;
    }
  }

  /** The request id. */
  get id(): string {
    return this.#args.id;
  }

  /** Input given inline with `--input`, if any. */
  get input(): string | undefined {
    return this.#args.input;
  }

  /** Path of the input pipe, if any. */
  get inputPipe(): string | undefined {
    return this.#args.inputPipe;
  }

  /** Path of the output pipe, if any (without one, output goes to stdout). */
  get outputPipe(): string | undefined {
    return this.#args.outputPipe;
  }

  /** Path of the progress pipe, if any (without one, progress goes to stdout). */
  get progressPipe(): string | undefined {
    return this.#args.progressPipe;
  }

  /** Whether {@linkcode Task.writeOutput} has been called. */
  get hasWrittenOutput(): boolean {
    return this.#hasWrittenOutput;
  }

  /**
   * Write a line to stdout (which the runner captures).
   *
   * @param message the line
   */
  log(message: string): void {
    this.#log(message);
  }

  /** Stop the self-destruct timer. Idempotent. */
  shutdown(): void {
    clearTimeout(this.#selfDestructTimer);
    this.#selfDestructTimer = undefined;
  }

  /**
   * Read the whole input: `--input` as UTF-8, or the input pipe to end of file. The input pipe
   * can only be read once, so the result is cached and later calls return the same bytes.
   *
   * @param options timeout and abort signal
   * @returns the input bytes
   */
  readInput(options: IoOptions = {}): Promise<Uint8Array> {
    if (this.#args.input !== undefined) {
      return Promise.resolve(encoder.encode(this.#args.input));
    }
    const path = this.#args.inputPipe;
    if (path === undefined) return Promise.reject(new Error("no input pipe"));
    if (this.#input === undefined) {
      this.#input = this.#readPipe(path, options);
      // a failed read may be retried
      this.#input.catch(() => {
        this.#input = undefined;
      });
    }
    return this.#input;
  }

  /**
   * Read the whole input and decode it as UTF-8.
   *
   * @param options timeout and abort signal
   * @returns the input text
   */
  async readInputText(options: IoOptions = {}): Promise<string> {
    return decoder.decode(await this.readInput(options));
  }

  /**
   * Read the whole input and parse it as JSON.
   *
   * @typeParam T the expected type (not checked)
   * @param options timeout and abort signal
   * @returns the parsed input
   */
  async readInputJson<T = unknown>(options: IoOptions = {}): Promise<T> {
    return JSON.parse(await this.readInputText(options)) as T;
  }

  /**
   * Send one progress message: open the progress pipe, write, close. Without a progress pipe the
   * message is printed to stdout. Strings and bytes are sent as they are, anything else as JSON.
   * An object with a `done` key ends progress on the runner side.
   *
   * @param value the message
   * @param options timeout and abort signal
   */
  async writeProgress(value: Payload, options: IoOptions = {}): Promise<void> {
    const bytes = encodePayload(value);
    const path = this.#args.progressPipe;
    if (path === undefined) {
      this.log(decoder.decode(bytes));
      return;
    }
    await this.#writePipe(path, bytes, options, "Writing to progress pipe");
  }

  /**
   * Write the task's result; allowed once. First sends `{"done":true}` on the progress pipe (if
   * there is one) so the runner stops reading progress, then opens the output pipe, writes,
   * closes. Without an output pipe the result is printed to stdout. Strings and bytes are sent
   * as they are, anything else as JSON. The timeout applies to each of the two steps.
   *
   * @param value the result
   * @param options timeout and abort signal
   * @throws {Error} if output was already written
   */
  async writeOutput(value: Payload, options: IoOptions = {}): Promise<void> {
    if (this.#hasWrittenOutput) throw new Error("Output has already been written");
    this.#hasWrittenOutput = true;
    const bytes = encodePayload(value);
    if (this.#args.progressPipe !== undefined) {
      await this.writeProgress({ done: true }, options);
    }
    const path = this.#args.outputPipe;
    if (path === undefined) {
      this.log(decoder.decode(bytes));
      return;
    }
    await this.#writePipe(path, bytes, options, "Writing to output pipe");
  }

  /**
   * On SIGTERM or SIGINT (cancel or timeout in the runner), call `handler`, then exit with code 1.
   * The runner sends SIGKILL after its grace period, so keep the handler short.
   *
   * @param handler called with the signal's name; awaited if it returns a promise
   * @returns a function that removes the listeners again
   */
  onCancel(handler: CancelHandler): () => void {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const listeners = signals.map((signal) => {
      const listener = async () => {
        try {
          await handler(signal);
        } catch (e) {
          console.error("cancel handler failed:", e);
        } finally {
          Deno.exit(1);
        }
      };
      Deno.addSignalListener(signal, listener);
      return [signal, listener] as const;
    });
    return () => {
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    };
  }

  async #readPipe(path: string, options: IoOptions): Promise<Uint8Array> {
    const deadline = new Deadline(options, "Reading from input pipe");
    let file: Deno.FsFile | undefined;
    try {
      this.log("Reading input from input pipe");
      file = await openFifo(path, "read", deadline);
      // A read blocked on a writer that never closes cannot be interrupted; the promise still
      // rejects on time and our end is closed.
      return await deadline.race(readAll(file), () => {});
    } finally {
      try {
        file?.close();
      } catch {
        // already closed
      }
      deadline.dispose();
    }
  }

  async #writePipe(path: string, bytes: Uint8Array, options: IoOptions, what: string) {
    const deadline = new Deadline(options, what);
    let file: Deno.FsFile | undefined;
    try {
      file = await openFifo(path, "write", deadline);
      await deadline.race(writeAll(file, bytes), () => {});
    } catch (e) {
      this.log(`${what} ${path} failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    } finally {
      try {
        file?.close();
      } catch {
        // already closed
      }
      deadline.dispose();
    }
  }
}

/**
 * Opens one end of a FIFO before `deadline`. The open blocks until the other side turns up;
 * on expiry the open is released by briefly playing the other side, and the end it then gets
 * is closed again (nothing read or written).
 */
async function openFifo(
  path: string,
  mode: "read" | "write",
  deadline: Deadline,
): Promise<Deno.FsFile> {
  let abandoned = false;
  const opening = Deno.open(path, mode === "read" ? { read: true } : { write: true }).then((f) => {
    if (abandoned) {
      f.close();
      return undefined;
    }
    return f;
  });
  const file = await deadline.race(opening, () => {
    abandoned = true;
    unblockFifo(path, mode === "read" ? "writer" : "reader");
  });
  if (file === undefined) throw deadline.signal.reason;
  return file;
}

function isStringArray(value: readonly string[] | TaskArgs): value is readonly string[] {
  return Array.isArray(value);
}

async function readAll(file: Deno.FsFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    total += n;
  }
  const result = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await file.write(bytes.subarray(offset));
  }
}
