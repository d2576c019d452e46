import { settlesWithin } from "../util/async.ts";
import { FifoWriter } from "./fifo_io.ts";
import { TaskPipes } from "./fifo.ts";
import { writeTaskOwner } from "./stale_tasks.ts";
import { forEachLine } from "./lines.ts";
import { OutputTail } from "./output_tail.ts";
import { ProcessGroup, type SpawnMethod, type StopReason } from "./process_group.ts";
import { concatBytes } from "../util/bytes.ts";
import { classifyTaskEnd } from "./task_outcome.ts";
import { checkInputSize } from "./input_limit.ts";
import { TaskPipeReaders } from "./task_readers.ts";
export { formatDuration, startFailureText } from "./task_outcome.ts";
import { TaskTimer, type TimeLimit } from "./task_timer.ts";
import { pipeArgs, type PipeArgStyle, resolveScriptCommand } from "./script_command.ts";

/**
 * What to run. The engine takes `input` over: it sets the field to an empty array once the
 * input is handed to the task, so that a large input is not held for the task's whole life.
 */
export interface TaskSpec {
  id: string;
  script: string;
  input: Uint8Array;
  /**
   * Inactivity limit, in milliseconds (the request's `timeoutMinutes`): the task is stopped
   * when this long passes without a sign of life. Its input being written, each progress
   * message, and the output pipe's open and close start the time again, as the Java runner
   * applied the limit to each of those phases.
   */
  timeoutMs: number;
}

/** How tasks are run; the same for every task of a runner. */
export interface TaskEngineSettings {
  /** Parent of the per-task FIFO directories. */
  workDir: string;
  /** Interpreter for `.py` scripts. */
  python: string;
  pipeArgStyle: PipeArgStyle;
  /** Time between SIGTERM and SIGKILL on cancel and timeout. */
  killGraceMs: number;
  /** Bound on the stdout and stderr text kept (each). */
  logTailBytes: number;
  /** Bound on the output a task may write. */
  maxOutputBytes: number;
  /** Largest input accepted; a larger one is refused before anything is made. Absent: none. */
  maxInputBytes?: number;
  /** Cap on a task's whole run, whatever it reports, in milliseconds; 0 or absent: none. */
  maxTaskMs?: number;
  /** Largest progress message forwarded; a larger one is dropped (default 1 MiB). */
  maxProgressBytes?: number;
  /** Script patterns allowed to run; empty allows any. */
  allowedScripts: readonly string[];
  /** The child's whole environment. */
  env: Record<string, string>;
  /** Run tasks as this user and group (the runner must be root); the FIFOs are theirs too. */
  uid?: number;
  gid?: number;
  /**
   * On the `Deno.Command` route only (`--uid`/`--gid`): have the task killed when the runner
   * dies (through `setpriv --pdeathsig`, when present). Tasks started through `posix_spawn`
   * are stopped by the next runner's stale-task reaper, or by tini ending the container.
   */
  dieWithRunner?: boolean;
  /** Force how tasks are started (tests); by default `posix_spawn` wherever it can. */
  spawnMethod?: SpawnMethod;
}

/** A task while it runs, as the hooks see it. */
export interface RunningTask {
  readonly id: string;
  readonly pid: number;
  /** The stdout lines kept so far. */
  readonly stdout: string;
  /** The stderr lines kept so far. */
  readonly stderr: string;
}

/** Callbacks through which a caller follows a task. */
export interface TaskHooks {
  /** The process has started. */
  onStart?(task: RunningTask): void;
  /** A progress message (the `done` sentinel is not passed on). */
  onProgress?(message: Uint8Array, task: RunningTask): void;
  /** A progress message larger than the limit was dropped (`bytes` long). */
  onProgressDropped?(bytes: number, task: RunningTask): void;
  /** A line the task printed. */
  onLog?(stream: "stdout" | "stderr", line: string, task: RunningTask): void;
}

/** How a started task ended. */
export type TaskResult =
  & { stdout: string; stderr: string; durationMs: number }
  & (
    | {
      outcome: "success";
      /** The output, joined on first use. */
      readonly output: Uint8Array;
      /** The output as read from the pipe, in order: what large results are best sent from. */
      readonly outputChunks: readonly Uint8Array[];
      readonly outputSize: number;
    }
    | { outcome: "failure"; message: string; exitCode: number | null }
    | { outcome: "timeout"; message: string; limit: TimeLimit }
    | { outcome: "cancelled" | "shutdown" }
  );

/** Options of {@linkcode runTask}. */
export interface RunTaskOptions extends TaskHooks {
  /** Aborting it stops the task; its reason, if a {@linkcode StopReason}, names the outcome. */
  signal?: AbortSignal;
  /**
   * Settles when the task may be started: the engine makes its pipes meanwhile, then waits for
   * it, then checks `signal` (e.g. the broker's cancellation queue, declared side by side).
   */
  beforeStart?: Promise<unknown>;
}

const EMPTY_INPUT = new Uint8Array(0);

// Bounded wait for stdout/stderr to close once the group is gone (a detached grandchild may keep them).
const LOG_DRAIN_MS = 1_000;

/**
 * Runs one task to its end: FIFOs, child process, input, progress and output concurrently,
 * timeout and cancel. Knows nothing of any broker.
 *
 * @param spec what to run
 * @param settings how tasks run here
 * @param options cancel signal and progress hooks
 * @throws {TaskStartError} when the task cannot be started (nothing was run)
 */
export async function runTask(
  spec: TaskSpec,
  settings: TaskEngineSettings,
  options: RunTaskOptions = {},
): Promise<TaskResult> {
  checkInputSize(spec.input, settings.maxInputBytes);
  // Only the input is read from `spec` later, once: the engine then keeps no reference to it.
  const { id, script, timeoutMs } = spec;
  const command = await resolveScriptCommand(script, {
    python: settings.python,
    allowedScripts: settings.allowedScripts,
    path: settings.env.PATH ?? "",
  });
  const owner = settings.uid !== undefined && settings.gid !== undefined
    ? { uid: settings.uid, gid: settings.gid }
    : undefined;
  await using pipes = await TaskPipes.create(settings.workDir, id, owner ? { owner } : {});
  const startedAt = performance.now();

  const stdout = new OutputTail(settings.logTailBytes);
  const stderr = new OutputTail(settings.logTailBytes);
  let pid = 0;
  const running: RunningTask = {
    id,
    get pid() {
      return pid;
    },
    get stdout() {
      return stdout.text;
    },
    get stderr() {
      return stderr.text;
    },
  };

  // Every sign of life restarts the inactivity limit; the phase names the Java runner's text.
  using timer = new TaskTimer(timeoutMs, { maxDurationMs: settings.maxTaskMs ?? 0 });
  const readers = new TaskPipeReaders(pipes, settings, { timer, running, hooks: options });
  const { progressReader, outputReader } = readers;
  const inputWriter = new FifoWriter(pipes.input);

  await options.beforeStart;
  if (options.signal?.aborted) {
    // Cancelled while the pipes were being made: nothing was started.
    return {
      stdout: "",
      stderr: "",
      durationMs: performance.now() - startedAt,
      outcome: reasonOf(options.signal.reason),
    };
  }
  // Whatever happens from here on, the pipes are closed (after the group is gone, below).
  await using _pipeIo = {
    async [Symbol.asyncDispose]() {
      await Promise.all([
        progressReader.stop().catch(() => {}),
        outputReader.stop().catch(() => {}),
        inputWriter.stop(),
      ]);
    },
  };
  // Open the pipes first: the task's opens then never wait, nothing it writes is lost, and its
  // input is in the pipe when it starts reading.
  progressReader.start();
  outputReader.start();
  inputWriter.start(spec.input, () => readers.inputWritten());
  // The writer has the input now; a frame that awaits keeps its locals alive, so let go here.
  spec.input = EMPTY_INPUT;
  const group = await ProcessGroup.spawn(
    {
      program: command.program,
      args: [...command.args, ...pipeArgs(id, pipes, settings.pipeArgStyle)],
    },
    {
      env: settings.env,
      taskId: id,
      ...owner,
      dieWithParent: settings.dieWithRunner ?? false,
      ...(settings.spawnMethod ? { method: settings.spawnMethod } : {}),
    },
  );
  await using _group = group;
  pid = group.pid;
  // Lets a runner restarted after a crash find this task's group and stop it.
  await writeTaskOwner(pipes.dir, group.pid);
  const logsDone = Promise.all([
    forEachLine(group.stdout, (line) => {
      stdout.append(line);
      options.onLog?.("stdout", line, running);
    }),
    forEachLine(group.stderr, (line) => {
      stderr.append(line);
      options.onLog?.("stderr", line, running);
    }),
  ]).catch(() => {});
  options.onStart?.(running);

  const timeout = timer.signal;
  const stop = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let stopReason: StopReason | undefined;
  let onStop = () => {};
  const stopped = new Promise<StopReason>((resolve) => {
    onStop = () => resolve(timeout.aborted ? "timeout" : reasonOf(options.signal?.reason));
    if (stop.aborted) onStop();
    else stop.addEventListener("abort", onStop, { once: true });
  });
  const first = await Promise.race([group.status, stopped]);
  stop.removeEventListener("abort", onStop);
  timer[Symbol.dispose](); // the task has ended: its reading and waiting are no activity
  let status: Deno.CommandStatus;
  if (typeof first === "string") {
    stopReason = first;
    status = await group.terminate(settings.killGraceMs);
  } else {
    status = first;
    group.signal("SIGKILL"); // leftovers of a finished task
  }

  await Promise.all([progressReader.stop(), outputReader.stop(), inputWriter.stop()]);
  await settlesWithin(logsDone, LOG_DRAIN_MS);
  const common = {
    stdout: stdout.text,
    stderr: stderr.text,
    durationMs: performance.now() - startedAt,
  };

  if (stopReason !== undefined && stopReason !== "timeout") {
    return { ...common, outcome: stopReason };
  }
  const failure = classifyTaskEnd({
    id,
    script,
    status,
    limit: stopReason === "timeout" ? timer.fired : undefined,
    phase: readers.phase,
    outputClosed: readers.outputClosed,
    outputTooLarge: readers.outputTooLarge,
    stderr: common.stderr,
    timeoutMs,
    maxDurationMs: settings.maxTaskMs ?? 0,
    maxOutputBytes: settings.maxOutputBytes,
  });
  if (failure) return { ...common, ...failure };
  const { outputParts, outputSize } = readers;
  let joined: Uint8Array | undefined;
  return {
    ...common,
    outcome: "success",
    outputChunks: outputParts,
    outputSize,
    get output() {
      joined ??= outputParts.length === 1 ? outputParts[0]! : concatBytes(outputParts, outputSize);
      return joined;
    },
  };
}

function reasonOf(reason: unknown): "cancelled" | "shutdown" {
  return reason === "shutdown" ? "shutdown" : "cancelled";
}
