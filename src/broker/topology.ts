import type { Channel, ChannelModel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { errorMessage } from "../util/async.ts";

/** The queues and exchanges the runner uses. */
export interface Topology {
  /** Full request queue name, `<base>-<type>`. */
  requestQueue: string;
  responseExchange: string;
  cancellationExchange: string;
  durable: boolean;
  /** Dead-letter exchange of the request queue; empty for none. */
  deadLetterExchange: string;
  queueType: "classic" | "quorum";
}

const NOT_FOUND = 404;
const PRECONDITION_FAILED = 406;

/** The AMQP reply code of a channel error, if any. */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

// A failed declaration closes its channel, so each step gets a channel of its own.
async function onFreshChannel<T>(
  model: ChannelModel,
  work: (channel: Channel) => Promise<T>,
): Promise<T> {
  const channel = await model.createChannel();
  channel.on("error", () => {}); // the rejected call reports it
  try {
    return await work(channel);
  } finally {
    await channel.close().catch(() => {});
  }
}

/**
 * Declares the topology as the Terarium protocol has it. Objects that already exist with other
 * flags (declared by the server or an operator) are used as they are, with a warning; the
 * response exchange belongs to the server and is only declared when missing.
 */
export async function declareTopology(
  model: ChannelModel,
  topology: Topology,
  log: Logger,
): Promise<void> {
  const queueArguments: Record<string, unknown> = {};
  if (topology.deadLetterExchange) {
    await ensureDeadLetterExchange(model, topology, log);
    queueArguments["x-dead-letter-exchange"] = topology.deadLetterExchange;
  }
  if (topology.queueType === "quorum") queueArguments["x-queue-type"] = "quorum";
  const durable = topology.durable || topology.queueType === "quorum";

  try {
    await onFreshChannel(model, (channel) =>
      channel.assertQueue(topology.requestQueue, {
        durable,
        exclusive: false,
        autoDelete: false,
        arguments: queueArguments,
      }));
  } catch (error) {
    if (replyCode(error) !== PRECONDITION_FAILED) throw error;
    log.warn("Request queue exists with other settings; using it as it is", {
      queue: topology.requestQueue,
      error: errorMessage(error),
    });
    await onFreshChannel(model, (channel) => channel.checkQueue(topology.requestQueue));
  }

  try {
    await onFreshChannel(
      model,
      (channel) =>
        channel.assertExchange(topology.cancellationExchange, "direct", {
          durable: topology.durable,
          autoDelete: false,
        }),
    );
  } catch (error) {
    if (replyCode(error) !== PRECONDITION_FAILED) throw error;
    log.warn("Cancellation exchange exists with other settings; using it as it is", {
      exchange: topology.cancellationExchange,
      error: errorMessage(error),
    });
  }

  await ensureResponseExchange(model, topology, log);
}

/** Whether an exchange exists (a passive check on a channel of its own). */
export async function exchangeExists(
  broker: { current: ChannelModel | undefined },
  name: string,
): Promise<boolean> {
  const model = broker.current;
  if (!model) throw new Error("Not connected to the broker");
  try {
    await onFreshChannel(model, (channel) => channel.checkExchange(name));
    return true;
  } catch (error) {
    if (replyCode(error) === NOT_FOUND) return false;
    throw error;
  }
}

/** Checks the response exchange, and declares it (direct) only when it is missing. */
export async function ensureResponseExchange(
  model: ChannelModel,
  topology: Pick<Topology, "responseExchange" | "durable">,
  log: Logger,
): Promise<void> {
  try {
    await onFreshChannel(model, (channel) => channel.checkExchange(topology.responseExchange));
  } catch (error) {
    if (replyCode(error) !== NOT_FOUND) throw error;
    log.info("Response exchange missing; declaring it", { exchange: topology.responseExchange });
    await onFreshChannel(
      model,
      (channel) =>
        channel.assertExchange(topology.responseExchange, "direct", {
          durable: topology.durable,
          autoDelete: false,
        }),
    );
  }
}

// Dead-lettered messages need a queue to land in, or the broker drops them.
async function ensureDeadLetterExchange(
  model: ChannelModel,
  topology: Topology,
  log: Logger,
): Promise<void> {
  try {
    await onFreshChannel(model, (channel) => channel.checkExchange(topology.deadLetterExchange));
    return;
  } catch (error) {
    if (replyCode(error) !== NOT_FOUND) throw error;
  }
  const queue = `${topology.requestQueue}.dead-letter`;
  log.info("Declaring dead-letter exchange and queue", {
    exchange: topology.deadLetterExchange,
    queue,
  });
  await onFreshChannel(model, async (channel) => {
    await channel.assertExchange(topology.deadLetterExchange, "fanout", {
      durable: true,
      autoDelete: false,
    });
    await channel.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false });
    await channel.bindQueue(queue, topology.deadLetterExchange, "");
  });
}
