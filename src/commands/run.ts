import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import {
  ENGINE_SETTINGS,
  type EngineConfig,
  engineSettings,
  resolveSettings,
} from "../config/settings.ts";
import { exitCodeOf } from "../local/exit_codes.ts";
import { deliverOutput } from "../local/output.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import { readTaskInput } from "../local/task_input.ts";
import type { Logger } from "../observability/log.ts";
import { ResponseLines } from "../local/response_lines.ts";
import { notStartedResponse, type TerminalResponse, terminalResponse } from "../protocol/mod.ts";
import { ProgressResponses } from "../protocol/progress_responses.ts";
import {
  formatDuration,
  runTask,
  taskDirsRemoved,
  type TaskResult,
  TaskStartError,
} from "../task/mod.ts";
import { onStopSignals } from "../util/stop_signals.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { LOGGING_SECTION } from "./sections.ts";
import { addSettingOptions, section } from "./settings_options.ts";
import { prepareWorkDir } from "./work_dir.ts";
import { addTaskOptions, inputSource, timeoutOf } from "./task_options.ts";

/** One local task run, as `taskrunner run` takes it. */
export interface RunConfig {
  script: string;
  /** The task id passed to the task (`--id`). */
  id: string;
  input: Uint8Array;
  timeoutMs: number;
  /** Where the output goes; stdout when absent. */
  outputFile?: string | undefined;
  /** Print the responses `serve` would publish, one JSON object per line, on stdout. */
  json: boolean;
  engine: EngineConfig;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  logger: Logger;
  /** Cancels the task when it aborts, as SIGINT does; a second stop (a signal) kills it. */
  signal?: AbortSignal;
  display?: ProgressDisplay;
  /** The environment the task inherits, less the broker settings. */
  env: Record<string, string | undefined>;
}

/** The `run` command: its options, its help, and its action. */
export function runCommand(context: CommandContext) {
  const command = addTaskOptions(
    new Command("run")
      .description(
        "Run one task here, as serve would, without a broker: progress on stderr, output on stdout",
      )
      .argument("<script>", "the task: a .py file, or an executable (path or name on PATH)")
      .exitOverride(),
  ).option("--id <id>", "task id passed to the task (default: a random UUID)", parseId);
  return addSettingOptions(
    command,
    section("Task engine:", ENGINE_SETTINGS),
    LOGGING_SECTION,
  ).action(
    async (script, options) => {
      const logger = commandLogger(options, context);
      const engine = resolveSettings(ENGINE_SETTINGS, { options, env: context.env });
      prepareWorkDir(engine.workDir);
      const input = await readTaskInput(inputSource(options));
      context.setExitCode(
        await run({
          script,
          id: options.id ?? crypto.randomUUID(),
          input,
          timeoutMs: timeoutOf(options),
          outputFile: options.output,
          json: options.json === true,
          engine,
        }, { logger, env: context.env }),
      );
    },
  );
}

function parseId(value: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(value)) {
    throw new InvalidArgumentError("Invalid task id: use 1 to 128 letters, digits, ., _ or -");
  }
  return value;
}

/**
 * Runs one task here, through the same engine as `serve` and without a broker: progress and
 * the task's own lines on stderr, output on stdout (or a file). SIGINT and SIGTERM cancel it
 * as a broker cancellation would; a second one kills it at once.
 *
 * @returns the exit code: 0 success, 1 failed or not started, 124 timeout, 130 cancelled
 */
export async function run(config: RunConfig, options: RunOptions): Promise<number> {
  const display = options.display ?? new ProgressDisplay();
  const responses = new ResponseLines({ id: config.id, script: config.script }, config.json);
  let result: TaskResult;
  try {
    result = await runHere(config, { ...options, display, responses });
  } catch (error) {
    if (!(error instanceof TaskStartError)) throw error;
    return await report(notStartedResponse(error), config, { display, responses });
  } finally {
    display.close();
  }
  return await report(terminalResponse(result), config, {
    display,
    responses,
    took: formatDuration(Math.round(result.durationMs)),
    output: result.outcome === "success" ? result.output : undefined,
  });
}

/**
 * Runs the task, showing its progress and lines and queueing the responses `serve` would
 * publish; the first stop signal cancels it, a second one kills its process group.
 */
async function runHere(
  config: RunConfig,
  options: RunOptions & { display: ProgressDisplay; responses: ResponseLines },
): Promise<TaskResult> {
  const { display } = options;
  const cancel = new AbortController();
  let pid = 0;
  // The same status sequence as serve's: RUNNING, RUNNING per progress, CANCELLING on a cancel
  // while the task runs (also one that came between the engine's last check and the start).
  const responses = new ProgressResponses((update) => options.responses.queue(update));
  using _signals = onStopSignals({
    first: () => {
      display.line("Cancelling: stopping the task (again to kill it now)");
      responses.cancel();
      cancel.abort("cancelled");
    },
    again: () => {
      if (pid <= 0) return;
      display.line("Killing the task");
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    },
  }, { signal: options.signal });
  const { id, script, input, timeoutMs } = config;
  const engine = engineSettings(config.engine, options.env);
  try {
    return await runTask({ id, script, input, timeoutMs }, engine, {
      signal: cancel.signal,
      onStart: (running) => {
        pid = running.pid;
        options.logger.debug("Task started", { taskId: id, pid: running.pid });
        display.line(`RUNNING ${script} (id ${id}, pid ${running.pid})`);
        responses.start(running, cancel.signal.aborted);
      },
      onProgress: (message, task) => {
        display.progress(message);
        responses.progress(message, task);
      },
      onLog: (stream, line) => display.log(stream, line),
    });
  } finally {
    responses.end();
    await taskDirsRemoved(); // nothing is left in the work dir once run returns
  }
}

/** Shows how the task ended, writes its terminal response and output; returns the exit code. */
async function report(
  response: TerminalResponse,
  config: RunConfig,
  options: {
    display: ProgressDisplay;
    responses: ResponseLines;
    /** How long the task ran, when it did. */
    took?: string;
    /** The output joined, when it succeeded. */
    output?: Uint8Array | undefined;
  },
): Promise<number> {
  const { display, responses, took } = options;
  switch (response.status) {
    case "SUCCESS":
      display.line(`SUCCESS after ${took}, ${response.outputBytes} bytes of output`);
      break;
    case "FAILED":
      display.line(`FAILED: ${response.output}`);
      break;
    case "CANCELLED":
      display.line(`CANCELLED after ${took}`);
      break;
  }
  await responses.last(response);
  if (options.output && (config.outputFile !== undefined || !config.json)) {
    await deliverOutput(options.output, { file: config.outputFile });
  }
  return exitCodeOf(response);
}
