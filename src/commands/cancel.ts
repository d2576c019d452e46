import { TaskClient } from "../client/task_client.ts";
import type { BrokerConfig } from "../config.ts";
import type { Logger } from "../observability/log.ts";

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
