import type { Channel, ChannelModel, Options } from "amqplib";
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

/**
 * Runs declarations one after the other on one channel. A failed declaration (a passive
 * check of something missing, flags that differ) makes the broker close the channel, so the
 * next declaration gets a new one.
 */
export class DeclarationChannel implements AsyncDisposable {
  readonly #model: ChannelModel;
  #channel: Promise<Channel> | undefined;

  constructor(model: ChannelModel) {
    this.#model = model;
  }

  /** Runs `work` on the channel; its error is the caller's to handle. */
  async run<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    this.#channel ??= this.#model.createChannel().then((channel) => {
      channel.on("error", () => {}); // the rejected call reports it
      return channel;
    });
    const channel = await this.#channel;
    try {
      return await work(channel);
    } catch (error) {
      this.#channel = undefined;
      await channel.close().catch(() => {});
      throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel) await (await channel).close().catch(() => {});
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
  await using declarations = new DeclarationChannel(model);
  const queueArguments: Record<string, unknown> = {};
  if (topology.deadLetterExchange) {
    await ensureDeadLetterExchange(declarations, topology, log);
    queueArguments["x-dead-letter-exchange"] = topology.deadLetterExchange;
  }
  if (topology.queueType === "quorum") queueArguments["x-queue-type"] = "quorum";
  const durable = topology.durable || topology.queueType === "quorum";

  try {
    await declarations.run((channel) =>
      channel.assertQueue(topology.requestQueue, {
        durable,
        exclusive: false,
        autoDelete: false,
        arguments: queueArguments,
      })
    );
  } catch (error) {
    if (replyCode(error) !== PRECONDITION_FAILED) throw error;
    log.warn("Request queue exists with other settings; using it as it is", {
      queue: topology.requestQueue,
      error: errorMessage(error),
    });
    await declarations.run((channel) => channel.checkQueue(topology.requestQueue));
  }
  await ensureExchange(declarations, topology.cancellationExchange, {
    type: "direct",
    durable: topology.durable,
    log,
  });
  await ensureExchange(declarations, topology.responseExchange, {
    type: "direct",
    durable: topology.durable,
    log,
  });
}

/**
 * Makes sure an exchange exists: checked first, declared only when missing; one declared
 * meanwhile by someone else with other flags is used as it is.
 *
 * @param declarations where to run the declarations
 * @param name the exchange
 * @param options its type and durability if it has to be declared
 */
export async function ensureExchange(
  declarations: DeclarationChannel,
  name: string,
  options: { type: string; durable: boolean; log?: Logger },
): Promise<void> {
  if (await exchangeExistsOn(declarations, name)) return;
  options.log?.info("Exchange missing; declaring it", { exchange: name });
  try {
    const flags: Options.AssertExchange = { durable: options.durable, autoDelete: false };
    await declarations.run((channel) => channel.assertExchange(name, options.type, flags));
  } catch (error) {
    if (replyCode(error) !== PRECONDITION_FAILED) throw error;
    options.log?.warn("Exchange exists with other settings; using it as it is", {
      exchange: name,
      error: errorMessage(error),
    });
  }
}

/** Whether an exchange exists, by a passive check on a channel of its own. */
export async function exchangeExists(
  broker: { current: ChannelModel | undefined },
  name: string,
): Promise<boolean> {
  const model = broker.current;
  if (!model) throw new Error("Not connected to the broker");
  await using declarations = new DeclarationChannel(model);
  return await exchangeExistsOn(declarations, name);
}

async function exchangeExistsOn(declarations: DeclarationChannel, name: string): Promise<boolean> {
  try {
    await declarations.run((channel) => channel.checkExchange(name));
    return true;
  } catch (error) {
    if (replyCode(error) === NOT_FOUND) return false;
    throw error;
  }
}

// Dead-lettered messages need a queue to land in, or the broker drops them.
async function ensureDeadLetterExchange(
  declarations: DeclarationChannel,
  topology: Topology,
  log: Logger,
): Promise<void> {
  if (await exchangeExistsOn(declarations, topology.deadLetterExchange)) return;
  const queue = `${topology.requestQueue}.dead-letter`;
  log.info("Declaring dead-letter exchange and queue", {
    exchange: topology.deadLetterExchange,
    queue,
  });
  await declarations.run(async (channel) => {
    await channel.assertExchange(topology.deadLetterExchange, "fanout", {
      durable: true,
      autoDelete: false,
    });
    await channel.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false });
    await channel.bindQueue(queue, topology.deadLetterExchange, "");
  });
}
