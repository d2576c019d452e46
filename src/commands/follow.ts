import { Command } from "@commander-js/extra-typings";
import { TaskClient } from "../client/task_client.ts";
import {
  BROKER_SETTINGS,
  type BrokerConfig,
  ConfigError,
  resolveSettings,
} from "../config/settings.ts";
import { ProgressDisplay } from "../local/progress_display.ts";
import type { Logger } from "../observability/log.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { followToEnd } from "./response_follower.ts";
import { BROKER_SECTION, LOGGING_SECTION } from "./sections.ts";
import { addSettingOptions, pickSettings, section } from "./settings_options.ts";
import { isTaskId, KEPT_RESPONSES_HOURS, keptResponsesQueue } from "./submit.ts";

const FOLLOW_EXAMPLES = `
Reads the queue "taskrunner-submit.<id>" that submit without --follow made, from its first
response, and deletes it once the task has ended. Exits as submit --follow does: 0 SUCCESS,
1 FAILED or no such queue, 130 CANCELLED; 2 when the id is not a UUID.

Example:
  id=$(taskrunner submit --request-type gollm --input task_input.json gollm:embedding)
  taskrunner follow "$id" > result.json
`;

/** The `follow` command: its options, its help, and its action. */
export function followCommand(context: CommandContext) {
  const command = new Command("follow")
    .description(
      "Show the responses of a task submitted without --follow until it ends; output on stdout",
    )
    .argument("<task-id>", "the id submit printed")
    .option("--output <file>", "write the output to a file instead of stdout")
    .option("--json", "print every response, one JSON object per line, on stdout")
    .addHelpText("after", FOLLOW_EXAMPLES)
    .exitOverride();
  return addSettingOptions(
    command,
    BROKER_SECTION,
    section(
      "Queues:",
      pickSettings(BROKER_SETTINGS, ["cancellationExchange", "durableQueues"]),
    ),
    LOGGING_SECTION,
  ).action(async (taskId, options) => {
    if (!isTaskId(taskId)) {
      throw new ConfigError(`Invalid task id "${taskId}": a task id is a UUID`);
    }
    context.setExitCode(
      await follow(taskId, {
        broker: resolveSettings(BROKER_SETTINGS, { options, env: context.env }),
        json: options.json === true,
        outputFile: options.output,
        logger: commandLogger(options, context),
      }),
    );
  });
}

/**
 * Shows the responses kept for a task submitted without `follow`, until the terminal one,
 * then deletes their queue. SIGINT or SIGTERM cancels the task (a second one stops following).
 *
 * @returns the exit code of `submit --follow`; 1 when no responses are kept for the task
 */
export async function follow(
  taskId: string,
  options: {
    broker: BrokerConfig;
    json: boolean;
    outputFile?: string | undefined;
    logger: Logger;
    display?: ProgressDisplay;
  },
): Promise<number> {
  await using client = await TaskClient.connect(options.broker, { logger: options.logger });
  const queue = keptResponsesQueue(taskId);
  const responses = await client.followKept(queue);
  if (!responses) {
    throw new Error(
      `No responses kept for task "${taskId}": queue "${queue}" does not exist (submitted with --follow or --routing-key, followed to its end already, or unused for ${KEPT_RESPONSES_HOURS} h)`,
    );
  }
  const { exitCode, ended } = await followToEnd(responses, {
    cancel: () => client.cancel(taskId),
    json: options.json,
    outputFile: options.outputFile,
    display: options.display ?? new ProgressDisplay(),
    logger: options.logger,
  });
  // Read to the end, the queue has served; one no longer followed stays for the next reader.
  if (ended) await client.deleteAll({ queues: [queue], exchanges: [] });
  return exitCode;
}
