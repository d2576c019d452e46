import type { ResponseUpdate } from "./response.ts";
import type { RunningTask } from "../task/mod.ts";

/**
 * The responses of one task before its terminal one: `RUNNING` at its start and for each
 * progress message (with stdout and stderr as of that message), and `CANCELLING` on a cancel
 * while it runs (with stdout and stderr as of the cancel, as the Java runner sent them).
 */
export class ProgressResponses {
  readonly #send: (update: ResponseUpdate) => void;
  #task: RunningTask | undefined;
  #tails = { stdout: "", stderr: "" };
  #ended = false;

  /** @param send publishes one response, in order, without waiting */
  constructor(send: (update: ResponseUpdate) => void) {
    this.#send = send;
  }

  /** Whether the task was started. */
  get started(): boolean {
    return this.#task !== undefined;
  }

  /** The task has started: `RUNNING`, then `CANCELLING` if it was cancelled meanwhile. */
  start(task: RunningTask, cancelled: boolean): void {
    this.#task = task;
    this.#send({ status: "RUNNING", output: null, ...this.#tails });
    // Cancelled between the engine's last check and the start: say so, in order.
    if (cancelled) this.cancel();
  }

  /** A progress message of the task. */
  progress(message: Uint8Array, task: RunningTask): void {
    this.#tails = { stdout: task.stdout, stderr: task.stderr };
    this.#send({ status: "RUNNING", output: message, ...this.#tails });
  }

  /** The task is being cancelled: `CANCELLING`, unless it has not started or has ended. */
  cancel(): void {
    const task = this.#task;
    if (!task || this.#ended) return;
    this.#send({ status: "CANCELLING", output: null, stdout: task.stdout, stderr: task.stderr });
  }

  /** The task has ended: what follows is its terminal response. */
  end(): void {
    this.#ended = true;
  }
}
