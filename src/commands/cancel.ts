import { Command } from "@commander-js/extra-typings";
import { TaskClient } from "../client/task_client.ts";
import {
  BROKER_SETTINGS,
  type BrokerConfig,
  ConfigError,
  resolveSettings,
} from "../config/settings.ts";
import type { Logger } from "../observability/log.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { BROKER_SECTION, LOGGING_SECTION } from "./sections.ts";
import { addSettingOptions, pickSettings, section } from "./settings_options.ts";
import { isTaskId } from "./submit.ts";

/** The cancellation exchange and its durability: all of the queue names `cancel` uses. */
const CANCEL_QUEUES_SECTION = section(
  "Queues:",
  pickSettings(BROKER_SETTINGS, ["cancellationExchange", "durableQueues"]),
);

const CANCEL_EXAMPLES = `
Exits 0 when the task's cancellation queue received the cancellation (a runner runs the task,
or the hmi-server has submitted it and no runner has taken it yet), 1 when no queue did
(unknown id, or the task has ended), 2 when the id is not a UUID.

Example:
  taskrunner cancel 0e7bd4c8-5c1f-4a51-9b0e-2f6c1d2a3b4c
`;

/** No cancellation queue received a cancellation: nothing runs or waits with that id. */
export class NotReceivedError extends Error {
  constructor(taskId: string, exchange: string) {
    super(
      `No cancellation queue received the cancellation of task "${taskId}": no runner runs it and no request waits for one (unknown id, or the task has ended; exchange "${exchange}")`,
    );
    this.name = "NotReceivedError";
  }
}

/** The `cancel` command: its options, its help, and its action. */
export function cancelCommand(context: CommandContext) {
  const command = new Command("cancel")
    .description("Cancel a task: publish its cancellation as the hmi-server does")
    .argument("<task-id>", "the id of the task (a UUID)")
    .addHelpText("after", CANCEL_EXAMPLES)
    .exitOverride();
  return addSettingOptions(command, BROKER_SECTION, CANCEL_QUEUES_SECTION, LOGGING_SECTION)
    .action(async (taskId, options) => {
      if (!isTaskId(taskId)) {
        throw new ConfigError(`Invalid task id "${taskId}": a task id is a UUID`);
      }
      await cancel(taskId, {
        broker: resolveSettings(BROKER_SETTINGS, { options, env: context.env }),
        logger: commandLogger(options, context),
      });
    });
}

/**
 * Publishes the cancellation of a task, as the hmi-server does: an empty message on the
 * cancellation exchange with the task id as routing key.
 *
 * @throws {NotReceivedError} when no cancellation queue received it
 */
export async function cancel(
  taskId: string,
  options: { broker: BrokerConfig; logger: Logger },
): Promise<void> {
  await using client = await TaskClient.connect(options.broker, { logger: options.logger });
  const { received } = await client.cancel(taskId);
  if (!received) throw new NotReceivedError(taskId, options.broker.cancellationExchange);
  options.logger.info("Cancellation received by the task's cancellation queue", { taskId });
}
