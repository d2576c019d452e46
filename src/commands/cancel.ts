import { Command } from "@commander-js/extra-typings";
import { TaskClient } from "../client/task_client.ts";
import { BROKER_SETTINGS, type BrokerConfig, LOG_SETTINGS, resolveSettings } from "../config.ts";
import type { Logger } from "../observability/log.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { addSettingOptions } from "./settings_options.ts";

/** The `cancel` command: its options, its help, and its action. */
export function cancelCommand(context: CommandContext) {
  const command = new Command("cancel")
    .description("Cancel a task: publish its cancellation as the hmi-server does")
    .argument("<task-id>", "the id of the task")
    .exitOverride();
  return addSettingOptions(command, BROKER_SETTINGS, LOG_SETTINGS).action(
    async (taskId, options) => {
      await cancel(taskId, {
        broker: resolveSettings(BROKER_SETTINGS, { options, env: context.env }),
        logger: commandLogger(options, context),
      });
    },
  );
}

/**
 * Publishes the cancellation of a task, as the hmi-server does: an empty message on the
 * cancellation exchange with the task id as routing key.
 */
export async function cancel(
  taskId: string,
  options: { broker: BrokerConfig; logger: Logger },
): Promise<void> {
  await using client = await TaskClient.connect(options.broker, { logger: options.logger });
  await client.cancel(taskId);
  options.logger.info("Cancellation sent", { taskId });
}
