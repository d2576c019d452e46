import { settlesWithin } from "../util/async.ts";
import { FifoWriter } from "./fifo_io.ts";
import { TaskPipes } from "./fifo.ts";
import { writeTaskOwner } from "./stale_tasks.ts";
import { TASK_DIR_VARIABLE } from "./stale_processes.ts";
import { type OomKills, readOomKillCount, runnerMemoryEventsPath } from "./oom_kills.ts";
import { ProcessGroup } from "./process_group.ts";
import { awaitTaskExit, stopReasonOf, type TaskExit } from "./exit.ts";
import { TaskLogs } from "./logs.ts";
import { concatBytes } from "../util/bytes.ts";
import { classifyTaskEnd } from "./outcome.ts";
import { checkInputSize } from "./errors.ts";
import { TaskPipeReaders } from "./readers.ts";
export { formatDuration, startFailureText } from "./outcome.ts";
import { TaskTimer } from "./timer.ts";
import type { RunTaskOptions, TaskEngineSettings, TaskResult, TaskSpec } from "./contract.ts";
import { pipeArgs, resolveScriptCommand, type ScriptCommand } from "./script_command.ts";

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
  let command: ScriptCommand;
  try {
    command = resolveScriptCommand(script, {
      python: settings.python,
      allowedScripts: settings.allowedScripts,
      path: settings.env.PATH ?? "",
    });
  } catch (error) {
    // The Java runner looked for a cancellation before it looked for the script: a task
    // cancelled before it started is CANCELLED, whatever its script.
    await options.beforeStart;
    if (options.signal?.aborted) return notStarted(options.signal, performance.now());
    throw error;
  }
  const owner = settings.uid !== undefined && settings.gid !== undefined
    ? { uid: settings.uid, gid: settings.gid }
    : undefined;
  using pipes = TaskPipes.create(settings.workDir, id, owner ? { owner } : {});
  const startedAt = performance.now();
  const logs = new TaskLogs(id, settings.logTailBytes);
  // Every sign of life restarts the inactivity limit; the phase names the Java runner's text.
  using timer = new TaskTimer(timeoutMs, { maxDurationMs: settings.maxTaskMs ?? 0 });
  const readers = new TaskPipeReaders(pipes, settings, {
    timer,
    running: logs.running,
    hooks: options,
  });

  // Whatever happens from here on, the pipes are closed (after the group is gone, below). Opened
  // and the input handed over while the caller's `beforeStart` is on its way (a broker's round
  // trip): none of it waits for the task, and a task that never starts only closes them.
  await using pipeIo = openPipeIo(readers, pipes, spec);
  const oomPath = settings.memoryEventsPath === undefined
    ? runnerMemoryEventsPath()
    : settings.memoryEventsPath;
  const oomBefore = oomPath === null ? undefined : readOomKillCount(oomPath);
  await options.beforeStart;
  // Cancelled while the pipes were being made: nothing was started.
  if (options.signal?.aborted) return notStarted(options.signal, startedAt);
  await using group = await spawnTask(command, { id, pipes, settings, owner });
  logs.started(group.pid);
  const logsDone = logs.follow(group, options.onLog);
  options.onStart?.(logs.running);
  // Lets a runner restarted after a crash find this task's group and stop it (its processes
  // carry the task's directory too: this record is for those that drop their environment).
  writeTaskOwner(pipes.dir, group.pid);

  const exit = await awaitTaskExit(group, {
    timer,
    signal: options.signal,
    killGraceMs: settings.killGraceMs,
  });
  // A daemon the task started may hold its output pipe open: once it is gone, what the task
  // wrote ends where the task closed it, and the task's exit and output decide.
  await group.killLeftovers();
  await pipeIo.stop();
  await settlesWithin(logsDone, LOG_DRAIN_MS);
  return taskResult(exit, {
    spec: { id, script, timeoutMs },
    settings,
    timer,
    readers,
    logs,
    startedAt,
    oomKills: oomPath !== null && oomBefore !== undefined && exit.status.signal === "SIGKILL" &&
        exit.stopReason === undefined
      ? { path: oomPath, before: oomBefore, after: readOomKillCount(oomPath) ?? oomBefore }
      : undefined,
  });
}

/** The result of a task cancelled (or shut down) before it started. */
function notStarted(signal: AbortSignal, since: number): TaskResult {
  const durationMs = performance.now() - since;
  return { stdout: "", stderr: "", durationMs, outcome: stopReasonOf(signal.reason) };
}

/** Starts the task's process, with the pipe arguments every task gets. */
function spawnTask(
  command: ScriptCommand,
  task: {
    id: string;
    pipes: TaskPipes;
    settings: TaskEngineSettings;
    owner: { uid: number; gid: number } | undefined;
  },
): Promise<ProcessGroup> {
  const { id, pipes, settings } = task;
  return ProcessGroup.spawn(
    {
      program: command.program,
      args: [...command.args, ...pipeArgs(id, pipes, settings.pipeArgStyle)],
    },
    {
      // The task's directory, whose name tells its runner: a runner started after this one
      // died finds the task's processes by it (see `stale_processes.ts`).
      env: { ...settings.env, [TASK_DIR_VARIABLE]: pipes.dir },
      taskId: id,
      ...task.owner,
      dieWithParent: settings.dieWithRunner ?? false,
      ...(settings.spawnMethod ? { method: settings.spawnMethod } : {}),
    },
  );
}

/** The task's pipes while it runs: its progress and output read, its input written. */
interface PipeIo extends AsyncDisposable {
  /** Stops reading and writing; rejects when one of them failed. */
  stop(): Promise<void>;
}

/**
 * Opens the task's pipes and hands its input over, before the task starts: its opens then never
 * wait, nothing it writes is lost, and its input is in the pipe when it starts reading.
 * Disposing stops them all, whatever happened.
 */
function openPipeIo(readers: TaskPipeReaders, pipes: TaskPipes, spec: TaskSpec): PipeIo {
  const { progressReader, outputReader } = readers;
  const inputWriter = new FifoWriter(pipes.input);
  progressReader.start();
  outputReader.start();
  inputWriter.start(spec.input, () => readers.inputWritten());
  // The writer has the input now; a frame that awaits keeps its locals alive, so let go here.
  spec.input = EMPTY_INPUT;
  return {
    stop: async () => {
      await Promise.all([progressReader.stop(), outputReader.stop(), inputWriter.stop()]);
    },
    async [Symbol.asyncDispose]() {
      await Promise.all([
        progressReader.stop().catch(() => {}),
        outputReader.stop().catch(() => {}),
        inputWriter.stop(),
      ]);
    },
  };
}

/** How a started task ended, from how its wait ended and what its pipes and logs saw. */
function taskResult(
  exit: TaskExit,
  task: {
    spec: Omit<TaskSpec, "input">;
    settings: TaskEngineSettings;
    timer: TaskTimer;
    readers: TaskPipeReaders;
    logs: TaskLogs;
    startedAt: number;
    /** The `oom_kill` counts of a task killed by SIGKILL that no one here stopped. */
    oomKills: OomKills | undefined;
  },
): TaskResult {
  const { spec, settings, readers, logs } = task;
  const common = {
    stdout: logs.stdout,
    stderr: logs.stderr,
    durationMs: performance.now() - task.startedAt,
  };
  const { stopReason, status } = exit;
  if (stopReason !== undefined && stopReason !== "timeout") {
    return { ...common, outcome: stopReason };
  }
  const failure = classifyTaskEnd({
    id: spec.id,
    script: spec.script,
    status,
    limit: stopReason === "timeout" ? task.timer.fired : undefined,
    phase: readers.phase,
    outputClosed: readers.outputClosed,
    outputTooLarge: readers.outputTooLarge,
    stderr: common.stderr,
    timeoutMs: spec.timeoutMs,
    maxDurationMs: settings.maxTaskMs ?? 0,
    maxOutputBytes: settings.maxOutputBytes,
    oomKills: task.oomKills,
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
    releaseOutput() {
      // The chunks array is shared with whoever took `outputChunks`: emptied, not replaced.
      outputParts.length = 0;
      joined = new Uint8Array(0);
    },
  };
}
