import { LineSplitter, MAX_LINE_CHARS } from "./lines.ts";
import { OutputTail } from "./output_tail.ts";
import type { RunningTask, TaskHooks } from "./contract.ts";
import type { OutputReader } from "./process_group.ts";

/**
 * What a task printed on stdout and stderr, kept up to a bound, and the view of the running
 * task that the hooks are given, which reads from it.
 */
export class TaskLogs {
  readonly #stdout: OutputTail;
  readonly #stderr: OutputTail;
  readonly #maxLineChars: number;
  #pid = 0;
  /** The task as the hooks see it: its pid once started, and its output so far. */
  readonly running: RunningTask;

  /**
   * @param id the task's id
   * @param tailBytes bound on the stdout and stderr text kept (each)
   */
  constructor(id: string, tailBytes: number) {
    this.#stdout = new OutputTail(tailBytes);
    this.#stderr = new OutputTail(tailBytes);
    // A line as long as the tail holds is kept whole (Java's readLine() never cut one).
    this.#maxLineChars = Math.max(tailBytes, MAX_LINE_CHARS);
    const pid = () => this.#pid;
    const stdout = this.#stdout;
    const stderr = this.#stderr;
    this.running = {
      id,
      get pid() {
        return pid();
      },
      get stdout() {
        return stdout.text;
      },
      get stderr() {
        return stderr.text;
      },
    };
  }

  /** The stdout lines kept so far. */
  get stdout(): string {
    return this.#stdout.text;
  }

  /** The stderr lines kept so far. */
  get stderr(): string {
    return this.#stderr.text;
  }

  /** The task's process has started: its pid is known from now on. */
  started(pid: number): void {
    this.#pid = pid;
  }

  /**
   * Reads the process's stdout and stderr line by line into the tails, passing each line to
   * `onLog`; resolves once both have ended (never rejects).
   */
  follow(
    process: { stdout: OutputReader; stderr: OutputReader },
    onLog: TaskHooks["onLog"],
  ): Promise<void> {
    const read = (name: "stdout" | "stderr", output: OutputReader, tail: OutputTail) => {
      const lines = new LineSplitter((line) => {
        tail.append(line);
        onLog?.(name, line, this.running);
      }, { maxLineChars: this.#maxLineChars });
      return output((chunk) => lines.push(chunk)).finally(() => lines.end());
    };
    return Promise.all([
      read("stdout", process.stdout, this.#stdout),
      read("stderr", process.stderr, this.#stderr),
    ]).then(
      () => {},
      () => {},
    );
  }
}
