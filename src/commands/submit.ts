import { Command } from "@commander-js/extra-typings";
import { buildClientRequest } from "../client/request.ts";
import { TaskClient } from "../client/task_client.ts";
import { BROKER_SETTINGS, type BrokerConfig, resolveSettings } from "../config/settings.ts";
import { EXIT_CODES } from "../local/exit_codes.ts";
import { writeLine } from "../local/output.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import { readTaskInput } from "../local/task_input.ts";
import type { Logger } from "../observability/log.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { BROKER_SECTION, CLIENT_QUEUES_SECTION, LOGGING_SECTION } from "./sections.ts";
import { addSettingOptions } from "./settings_options.ts";
import { followToEnd } from "./response_follower.ts";
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

// Task ids are UUIDs: the hmi-server's `UUID`, and what `submit` makes.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` can be a task id: a UUID. */
export function isTaskId(text: string): boolean {
  return UUID.test(text);
}

/** The queue keeping the responses of a task submitted without `--follow` or a routing key. */
export function keptResponsesQueue(taskId: string): string {
  return `taskrunner-submit.${taskId}`;
}

/** How long the queue keeping the responses of a task submitted without `--follow` stays unused. */
export const KEPT_RESPONSES_HOURS = 24;

const SUBMIT_EXAMPLES = `
Without --follow, the responses are kept in a queue of their own, "taskrunner-submit.<id>"
(deleted after ${KEPT_RESPONSES_HOURS} h unused), which "taskrunner follow <id>" shows; --routing-key
sends them instead where a consumer of yours binds that key. submit warns when no runner
consumes the request queue.

Examples:
  # Run a task on the runners of the gollm queue and show it until it ends
  taskrunner submit --request-type gollm --follow --input-json '{"text":"hi"}' gollm:embedding

  # Fire and forget: print the task id; the responses wait in their queue
  taskrunner submit --request-type gollm --input task_input.json gollm:embedding
  taskrunner follow <the id it printed>
`;

/** The `submit` command: its options, its help, and its action. */
export function submitCommand(context: CommandContext) {
  const command = addTaskOptions(
    new Command("submit")
      .description(
        "Publish a task request as the hmi-server does; with --follow, show its responses until it ends",
      )
      .argument("<script>", "the task, as the runner resolves it")
      .option("--follow", "show the status and progress until the task ends; output on stdout")
      .option(
        "--routing-key <key>",
        "routing key of the responses, for a consumer of yours (default: a queue of their own)",
      )
      .addHelpText("after", SUBMIT_EXAMPLES)
      .exitOverride(),
  );
  return addSettingOptions(command, BROKER_SECTION, CLIENT_QUEUES_SECTION, LOGGING_SECTION)
    .action(async (script, options) => {
      const sources = { options, env: context.env };
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
    });
}

/**
 * Publishes a request as the hmi-server does, and warns when no runner consumes its queue.
 * Without `follow`, prints the task id; the responses go to a queue that keeps them (unless
 * `routingKey` says where they go). With it, shows the responses live until the terminal one;
 * SIGINT or SIGTERM then cancels the task (a second one stops following).
 *
 * @returns the exit code: 0 published or SUCCESS, 1 FAILED, 130 CANCELLED
 */
export async function submit(
  config: SubmitConfig,
  options: { logger: Logger; display?: ProgressDisplay },
): Promise<number> {
  const display = options.display ?? new ProgressDisplay();
  await using client = await TaskClient.connect(config.broker, { logger: options.logger });
  const id = crypto.randomUUID();
  const routingKey = config.routingKey ?? keptResponsesQueue(id);
  const request = buildClientRequest({ ...config, id, routingKey }, config.broker.requestType);
  const responses = config.follow ? await client.follow(routingKey) : undefined;
  const keptIn = !config.follow && config.routingKey === undefined ? routingKey : undefined;
  if (keptIn !== undefined) {
    await client.keepResponses(routingKey, {
      queue: keptIn,
      expiresMs: KEPT_RESPONSES_HOURS * 3_600_000,
    });
  }
  await warnWithoutRunner(client, options.logger);
  await client.submit(request);
  if (!responses) {
    await writeLine(request.id);
    if (keptIn !== undefined) {
      options.logger.info(
        `Responses are kept in queue "${keptIn}" (deleted after ${KEPT_RESPONSES_HOURS} h unused): show them with taskrunner follow ${id}`,
      );
    }
    return EXIT_CODES.success;
  }

  const { exitCode } = await followToEnd(responses, {
    banner: `QUEUED ${request.script} (id ${request.id}, type ${request.type})`,
    cancel: () => client.cancel(request.id),
    json: config.json,
    outputFile: config.outputFile,
    display,
    logger: options.logger,
  });
  return exitCode;
}

/** Warns when no runner consumes the request queue: the request then waits there. */
async function warnWithoutRunner(client: TaskClient, logger: Logger): Promise<void> {
  const queue = client.topology.requestQueue;
  await client.declareRequestQueue();
  const { consumerCount } = await client.checkQueue(queue);
  if (consumerCount === 0) {
    logger.warn(`No runner consumes queue "${queue}": the request waits there until one does`);
  }
}
