/**
 * The task engine's contract: what a caller gives `runTask()` (spec, settings, hooks)
 * and what it gets back. Kept apart from the engine so that its parts (logs, readers) and its
 * callers share the types without importing the engine itself.
 *
 * @module
 */

import type { SpawnMethod } from "./process_group.ts";
import type { PipeArgStyle } from "./script_command.ts";
import type { TimeLimit } from "./timer.ts";

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
  /**
   * The cgroup file whose `oom_kill` count tells a task killed for memory (`memory.events`);
   * absent: the runner's own cgroup's, found at the first task; null: none is read.
   */
  memoryEventsPath?: string | null;
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
      /**
       * Lets go of the output (`output` and `outputChunks` are empty from then on), so that a
       * large result is not held once it has been copied on.
       */
      releaseOutput(): void;
    }
    | { outcome: "failure"; message: string; exitCode: number | null }
    | { outcome: "timeout"; message: string; limit: TimeLimit }
    | { outcome: "cancelled" | "shutdown" }
  );

/** Options of `runTask()`. */
export interface RunTaskOptions extends TaskHooks {
  /** Aborting it stops the task; its reason, if a `StopReason`, names the outcome. */
  signal?: AbortSignal;
  /**
   * Settles when the task may be started: the engine makes its pipes meanwhile, then waits for
   * it, then checks `signal` (e.g. the broker's cancellation queue, declared side by side).
   */
  beforeStart?: Promise<unknown>;
}
