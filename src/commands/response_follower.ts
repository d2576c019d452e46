import type { Logger } from "../observability/log.ts";
import { EXIT_CODES } from "../local/exit_codes.ts";
import { deliverOutput, writeLine } from "../local/output.ts";
import type { ProgressDisplay } from "../local/progress_display.ts";
import type { TaskResponse } from "../protocol/mod.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage } from "../util/async.ts";
import { onStopSignals } from "../util/stop_signals.ts";

/** How {@linkcode followToEnd} shows a task and where its output goes. */
export interface FollowOptions {
  /** Cancels the task: the first SIGINT or SIGTERM does it. */
  cancel: () => Promise<unknown>;
  /** Print each response as a JSON line on stdout. */
  json: boolean;
  /** Where the output goes; stdout when absent. */
  outputFile?: string | undefined;
  display: ProgressDisplay;
  logger: Logger;
  /** A line shown once Ctrl-C is handled: whoever reads it may press it at once. */
  banner?: string;
}

/**
 * Shows a task's responses live until the terminal one, then delivers its output; SIGINT or
 * SIGTERM cancels the task (a second one stops following). Shared by `submit --follow` and
 * `follow`.
 *
 * @returns the exit code (0 SUCCESS, 1 FAILED, 130 CANCELLED or no longer followed) and whether
 *   the terminal response came
 */
export async function followToEnd(
  responses: AsyncIterable<TaskResponse>,
  options: FollowOptions,
): Promise<{ exitCode: number; ended: boolean }> {
  const { display } = options;
  const stopFollowing = new AbortController();
  let terminal: TaskResponse | undefined;
  try {
    using _signals = onStopSignals({
      first: () => {
        display.line("Cancelling the task (again to stop following)");
        options.cancel().catch((error) => options.logger.error(errorMessage(error)));
      },
      again: () => {
        if (stopFollowing.signal.aborted) return;
        display.line("Stopped following; the task may still be running");
        stopFollowing.abort();
      },
    });
    if (options.banner !== undefined) display.line(options.banner);
    terminal = await follow(responses, {
      json: options.json,
      display,
      signal: stopFollowing.signal,
    });
  } finally {
    display.close();
  }

  return { exitCode: await deliver(terminal, options), ended: terminal !== undefined };
}

// Delivers the output of a task that succeeded; the exit code of how it ended.
async function deliver(
  terminal: TaskResponse | undefined,
  options: FollowOptions,
): Promise<number> {
  switch (terminal?.status) {
    case "SUCCESS":
      if (options.outputFile !== undefined || !options.json) {
        await deliverOutput(decodeOutput(terminal), { file: options.outputFile });
      }
      return EXIT_CODES.success;
    case "FAILED":
      return EXIT_CODES.failed;
    default:
      return EXIT_CODES.cancelled;
  }
}

/**
 * Shows the responses (and prints them as JSON lines with `json`) until the terminal one,
 * which it returns, or until `signal` aborts or they end.
 */
async function follow(
  responses: AsyncIterable<TaskResponse>,
  options: { json: boolean; display: ProgressDisplay; signal: AbortSignal },
): Promise<TaskResponse | undefined> {
  const logs = new LogFollower(options.display);
  const iterator = responses[Symbol.asyncIterator]();
  using stopped = whenAborted(options.signal);
  const stop = stopped.promise.then(() => undefined);
  let terminal: TaskResponse | undefined;
  while (true) {
    const next = await Promise.race([iterator.next(), stop]);
    if (next === undefined) {
      // Not awaited: an async generator's return() waits for the next() in flight, which no
      // response may ever settle. Closing the client ends the subscription.
      iterator.return?.().catch(() => {});
      break;
    }
    if (next.done) break;
    const response = next.value;
    if (options.json) await writeLine(JSON.stringify(response));
    logs.show(response);
    terminal = show(response, options.display);
  }
  return terminal;
}

// Shows one response; returns it when it is terminal.
function show(response: TaskResponse, display: ProgressDisplay): TaskResponse | undefined {
  switch (response.status) {
    case "RUNNING":
      if (response.output === null) display.line(`RUNNING ${response.script ?? ""}`);
      else display.progress(decodeOutput(response));
      return undefined;
    case "SUCCESS":
      display.close();
      display.line(`SUCCESS, ${decodeOutput(response).length} bytes of output`);
      return response;
    case "FAILED":
      display.close();
      display.line(`FAILED: ${new TextDecoder().decode(decodeOutput(response))}`);
      return response;
    case "CANCELLED":
      display.close();
      display.line("CANCELLED");
      return response;
    default:
      display.line(response.status);
      return undefined;
  }
}

function decodeOutput(response: TaskResponse): Uint8Array {
  return response.output ? Uint8Array.fromBase64(response.output) : new Uint8Array();
}

/**
 * Shows the task's stdout and stderr lines as they grow from one response to the next (each
 * response carries the tail kept so far).
 */
class LogFollower {
  readonly #display: ProgressDisplay;
  readonly #seen = { stdout: "", stderr: "" };

  constructor(display: ProgressDisplay) {
    this.#display = display;
  }

  show(response: TaskResponse): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const text = response[stream] ?? "";
      const seen = this.#seen[stream];
      // A tail that no longer starts with what was shown was cut at its front: show it whole.
      const fresh = text.startsWith(seen) ? text.slice(seen.length) : text;
      this.#seen[stream] = text;
      for (const line of fresh.split("\n")) {
        if (line.length > 0) this.#display.log(stream, line);
      }
    }
  }
}
