import { buildClientRequest, TaskClient } from "../client/task_client.ts";
import type { BrokerConfig } from "../config.ts";
import { EXIT_CODES } from "../local/exit_codes.ts";
import { deliverOutput, writeLine } from "../local/output.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import type { Logger } from "../observability/log.ts";
import type { TaskResponse } from "../protocol/mod.ts";

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

  display.line(`QUEUED ${request.script} (id ${request.id}, type ${request.type})`);
  const stopFollowing = new AbortController();
  const onSignal = () => {
    if (stopFollowing.signal.aborted) return;
    if (cancelling) {
      display.line("Stopped following; the task may still be running");
      stopFollowing.abort();
      return;
    }
    cancelling = true;
    display.line("Cancelling the task (again to stop following)");
    client.cancel(request.id).catch((error) => options.logger.error(String(error)));
  };
  let cancelling = false;
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const name of signals) Deno.addSignalListener(name, onSignal);
  const stopped = new Promise<undefined>((resolve) =>
    stopFollowing.signal.addEventListener("abort", () => resolve(undefined), { once: true })
  );

  const logs = new LogFollower(display);
  let terminal: TaskResponse | undefined;
  try {
    const iterator = responses[Symbol.asyncIterator]();
    while (true) {
      const next = await Promise.race([iterator.next(), stopped]);
      if (next === undefined) {
        await iterator.return?.();
        break;
      }
      if (next.done) break;
      const response = next.value;
      if (config.json) await writeLine(JSON.stringify(response));
      logs.show(response);
      terminal = show(response, display);
    }
  } finally {
    for (const name of signals) Deno.removeSignalListener(name, onSignal);
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
