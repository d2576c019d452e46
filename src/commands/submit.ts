import { Command } from "@commander-js/extra-typings";
import { buildClientRequest } from "../client/request.ts";
import { TaskClient } from "../client/task_client.ts";
import {
  BROKER_SETTINGS,
  type BrokerConfig,
  ConfigError,
  LOG_SETTINGS,
  resolveSettings,
} from "../config.ts";
import { EXIT_CODES } from "../local/exit_codes.ts";
import { deliverOutput, writeLine } from "../local/output.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import { readTaskInput } from "../local/task_input.ts";
import type { Logger } from "../observability/log.ts";
import type { TaskResponse } from "../protocol/mod.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage } from "../util/async.ts";
import { onStopSignals } from "../util/stop_signals.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { addSettingOptions } from "./settings_options.ts";
import { addTaskOptions, inputSource, timeoutOf } from "./task_options.ts";

/** One request, as `taskrunner submit` takes it. */
export interface SubmitConfig {
  script: string;
  input: Uint8Array;
  timeoutMs: number;
  /** Routing key of the responses; a private one by default. */
  routingKey?: string | undefined;
  /** Follow the responses until the terminal one. */
  follow: boolean;
  /** Print each response as a JSON line on stdout. */
  json: boolean;
  /** Where the output goes; stdout when absent. */
  outputFile?: string | undefined;
  broker: BrokerConfig;
}

/** The `submit` command: its options, its help, and its action. */
export function submitCommand(context: CommandContext) {
  const command = addTaskOptions(
    new Command("submit")
      .description(
        "Publish a task request as the hmi-server does; with --follow, show its responses until it ends",
      )
      .argument("<script>", "the task, as the runner resolves it")
      .option("--type <type>", "request type (task family); same as --request-type")
      .option("--follow", "show the status and progress until the task ends; output on stdout")
      .option("--routing-key <key>", "routing key of the responses (default: a private one)")
      .exitOverride(),
  );
  return addSettingOptions(command, BROKER_SETTINGS, LOG_SETTINGS).action(
    async (script, options) => {
      const requestType = options.type ?? options.requestType;
      if (
        options.type !== undefined && options.requestType !== undefined &&
        options.requestType !== options.type
      ) {
        throw new ConfigError("--type and --request-type differ; give one of them");
      }
      const sources = { options: { ...options, requestType }, env: context.env };
      const logger = commandLogger(options, context);
      const broker = resolveSettings(BROKER_SETTINGS, sources);
      const input = await readTaskInput(inputSource(options));
      context.setExitCode(
        await submit({
          script,
          input,
          timeoutMs: timeoutOf(options),
          routingKey: options.routingKey,
          follow: options.follow === true,
          json: options.json === true,
          outputFile: options.output,
          broker,
        }, { logger }),
      );
    },
  );
}

/**
 * Publishes a request as the hmi-server does. Without `follow`, prints the task id. With it,
 * shows the responses live until the terminal one; SIGINT or SIGTERM then cancels the task (a
 * second one stops following).
 *
 * @returns the exit code: 0 published or SUCCESS, 1 FAILED, 130 CANCELLED
 */
export async function submit(
  config: SubmitConfig,
  options: { logger: Logger; display?: ProgressDisplay },
): Promise<number> {
  const display = options.display ?? new ProgressDisplay();
  await using client = await TaskClient.connect(config.broker, { logger: options.logger });
  const routingKey = config.routingKey ?? `taskrunner-submit.${crypto.randomUUID()}`;
  const request = buildClientRequest({ ...config, routingKey }, config.broker.requestType);
  const responses = config.follow ? await client.follow(routingKey) : undefined;
  await client.submit(request);
  if (!responses) {
    await writeLine(request.id);
    return EXIT_CODES.success;
  }

  const stopFollowing = new AbortController();
  let terminal: TaskResponse | undefined;
  try {
    using _signals = onStopSignals({
      first: () => {
        display.line("Cancelling the task (again to stop following)");
        client.cancel(request.id).catch((error) => options.logger.error(errorMessage(error)));
      },
      again: () => {
        if (stopFollowing.signal.aborted) return;
        display.line("Stopped following; the task may still be running");
        stopFollowing.abort();
      },
    });
    // Once Ctrl-C is handled: whoever reads QUEUED may press it at once.
    display.line(`QUEUED ${request.script} (id ${request.id}, type ${request.type})`);
    terminal = await follow(responses, {
      json: config.json,
      display,
      signal: stopFollowing.signal,
    });
  } finally {
    display.close();
  }

  switch (terminal?.status) {
    case "SUCCESS":
      if (config.outputFile !== undefined || !config.json) {
        await deliverOutput(decodeOutput(terminal), { file: config.outputFile });
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
