import type { EngineConfig } from "../config.ts";
import { EXIT_CODES } from "../local/exit_codes.ts";
import { deliverOutput, writeLine } from "../local/output.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import type { Logger } from "../observability/log.ts";
import {
  buildTaskResponse,
  encodeTaskResponse,
  type ResponseEcho,
  type ResponseUpdate,
} from "../protocol/mod.ts";
import {
  formatDuration,
  type RunningTask,
  runTask,
  startFailureText,
  type TaskResult,
  TaskStartError,
} from "../task/mod.ts";
import { engineSettings } from "./serve.ts";

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

/**
 * Runs one task here, through the same engine as `serve` and without a broker: progress and
 * the task's own lines on stderr, output on stdout (or a file). SIGINT and SIGTERM cancel it
 * as a broker cancellation would; a second one kills it at once.
 *
 * @returns the exit code: 0 success, 1 failed or not started, 124 timeout, 130 cancelled
 */
export async function run(
  config: RunConfig,
  options: { logger: Logger; signal?: AbortSignal; display?: ProgressDisplay },
): Promise<number> {
  const log = options.logger;
  const display = options.display ?? new ProgressDisplay();
  const echo: ResponseEcho = { id: config.id, script: config.script };
  const respond = async (update: ResponseUpdate) => {
    if (config.json) {
      const response = buildTaskResponse(echo, update);
      await writeLine(new TextDecoder().decode(encodeTaskResponse(response)));
    }
  };
  // Responses are written in order, each once the one before is out.
  let responses = Promise.resolve();
  const queueResponse = (update: ResponseUpdate) => {
    responses = responses.then(() => respond(update));
  };

  if (config.input.length > config.engine.maxInputBytes) {
    const message =
      `Task input of ${config.input.length} bytes exceeds the limit of ${config.engine.maxInputBytes} bytes`;
    display.line(`FAILED: ${message}`);
    await respond({ status: "FAILED", output: message });
    return EXIT_CODES.failed;
  }

  const cancel = new AbortController();
  let pid = 0;
  let tails = { stdout: "", stderr: "" };
  let task: RunningTask | undefined;
  const onSignal = () => {
    if (!cancel.signal.aborted) {
      display.line("Cancelling: stopping the task (again to kill it now)");
      // As of the cancel, not of the last progress message.
      if (task) queueResponse({ status: "CANCELLING", stdout: task.stdout, stderr: task.stderr });
      cancel.abort("cancelled");
    } else if (pid > 0) {
      display.line("Killing the task");
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const name of signals) Deno.addSignalListener(name, onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });
  if (options.signal?.aborted) onSignal();

  let result: TaskResult;
  try {
    result = await runTask(
      {
        id: config.id,
        script: config.script,
        input: config.input,
        timeoutMs: config.timeoutMs,
      },
      engineSettings(config.engine),
      {
        signal: cancel.signal,
        onStart: (running) => {
          task = running;
          pid = running.pid;
          log.debug("Task started", { taskId: config.id, pid: running.pid });
          display.line(`RUNNING ${config.script} (id ${config.id}, pid ${running.pid})`);
          queueResponse({ status: "RUNNING", ...tails });
        },
        onProgress: (message, task) => {
          tails = { stdout: task.stdout, stderr: task.stderr };
          display.progress(message);
          queueResponse({ status: "RUNNING", output: message, ...tails });
        },
        onLog: (stream, line) => display.log(stream, line),
      },
    );
  } catch (error) {
    if (!(error instanceof TaskStartError)) throw error;
    const message = startFailureText(error);
    display.line(`FAILED: ${message}`);
    await responses;
    await respond({ status: "FAILED", output: message });
    return EXIT_CODES.failed;
  } finally {
    for (const name of signals) Deno.removeSignalListener(name, onSignal);
    options.signal?.removeEventListener("abort", onSignal);
    display.close();
  }
  await responses;

  const ended = { stdout: result.stdout, stderr: result.stderr };
  const took = formatDuration(Math.round(result.durationMs));
  switch (result.outcome) {
    case "success":
      display.line(`SUCCESS after ${took}, ${result.output.length} bytes of output`);
      await respond({ status: "SUCCESS", output: result.output, ...ended });
      if (config.outputFile !== undefined || !config.json) {
        await deliverOutput(result.output, { file: config.outputFile });
      }
      return EXIT_CODES.success;
    case "failure":
    case "timeout":
      display.line(`FAILED: ${result.message}`);
      await respond({ status: "FAILED", output: result.message, ...ended });
      return result.outcome === "timeout" ? EXIT_CODES.timeout : EXIT_CODES.failed;
    case "cancelled":
    case "shutdown":
      display.line(`CANCELLED after ${took}`);
      await respond({ status: "CANCELLED", ...ended });
      return EXIT_CODES.cancelled;
  }
}
