import { FifoReader } from "./fifo_io.ts";
import type { TaskPipes } from "./fifo.ts";
import { isDoneMessage, MAX_PROGRESS_MESSAGE_BYTES, ProgressFramer } from "./progress_framer.ts";
import type { RunningTask, TaskEngineSettings, TaskHooks } from "./contract.ts";
import type { TaskPhase } from "./outcome.ts";
import type { TaskTimer } from "./timer.ts";

/**
 * The reading side of a task's pipes: progress framed into messages and passed to the hooks,
 * the output gathered, and what the task did with them (the output closed or not, the phase it
 * is in). Every sign of life restarts the task's inactivity limit.
 */
export class TaskPipeReaders {
  readonly progressReader: FifoReader;
  readonly outputReader: FifoReader;
  /** Where the task stands, in the Java runner's phases. */
  phase: TaskPhase = "input";
  /** The `done` sentinel has come: later messages are not passed on. */
  progressDone = false;
  /** The task opened and closed its output pipe (even without writing a byte). */
  outputClosed = false;
  outputTooLarge = false;
  /** The output as read, in order, up to the limit. */
  readonly outputParts: Uint8Array[] = [];
  outputSize = 0;
  readonly #timer: TaskTimer;

  /**
   * @param pipes the task's FIFOs
   * @param settings the engine's limits
   * @param context the task's timer, its running view, and the caller's hooks
   */
  constructor(
    pipes: TaskPipes,
    settings: TaskEngineSettings,
    context: { timer: TaskTimer; running: RunningTask; hooks: TaskHooks },
  ) {
    const { timer, running, hooks } = context;
    this.#timer = timer;
    const framer = new ProgressFramer((message) => {
      timer.touch();
      if (this.progressDone) return;
      if (isDoneMessage(message)) this.progressDone = true;
      else hooks.onProgress?.(message, running);
    }, {
      maxBytes: settings.maxProgressBytes ?? MAX_PROGRESS_MESSAGE_BYTES,
      onDropped: (bytes) => {
        timer.touch();
        if (!this.progressDone) hooks.onProgressDropped?.(bytes, running);
      },
    });
    this.progressReader = new FifoReader(pipes.progress, {
      data: (chunk) => framer.push(chunk),
      closed: () => framer.close(),
      end: () => framer.end(),
    });
    this.outputReader = new FifoReader(pipes.output, {
      data: (chunk) => {
        this.outputSize += chunk.length;
        if (this.outputSize > settings.maxOutputBytes) this.outputTooLarge = true;
        else this.outputParts.push(chunk);
      },
      opened: () => timer.touch(),
      closed: () => {
        timer.touch();
        this.outputClosed = true;
        this.phase = "exit";
      },
      end: () => {},
    }, {
      bufferBytes: 1024 * 1024,
      // The task has exited and its daemons are killed: a writer left is one that cannot be
      // told to be the task's, and what the task wrote is its output.
      closeOnStop: true,
    });
  }

  /** The task's input has been written whole: the Java runner's next phase begins. */
  inputWritten(): void {
    this.#timer.touch();
    if (this.phase === "input") this.phase = "reading";
  }
}
