import type { Channel, ChannelModel, Options } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { errorMessage } from "../util/async.ts";

/** The queues and exchanges the runner uses. */
export interface Topology {
  /** Full request queue name, `<base>-<type>`. */
  requestQueue: string;
  responseExchange: string;
  cancellationExchange: string;
  /** Durability of the request queue and cancellation exchange (the server's `durableQueues`). */
  durable: boolean;
  /**
   * Dead-letter exchange for the request queue, declared with a queue of its own; empty for
   * none. A policy attaches it to the request queue, never a queue argument.
   */
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
  #open: Channel | undefined;

  constructor(model: ChannelModel) {
    this.#model = model;
  }

  /**
   * Runs `work` on the channel; its error is the caller's to handle. On an open channel,
   * `work` is called at once, not after a turn: its request goes out with the caller's.
   */
  run<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    if (this.#open) return this.#attempt(this.#open, work);
    this.#channel ??= this.#model.createChannel().then((channel) => {
      channel.on("error", () => {}); // the rejected call reports it
      this.#open = channel;
      return channel;
    }, (error) => {
      this.#channel = undefined; // the next call tries a new one
      throw error;
    });
    return this.#channel.then((channel) => this.#attempt(channel, work));
  }

  async #attempt<T>(channel: Channel, work: (channel: Channel) => Promise<T>): Promise<T> {
    try {
      return await work(channel);
    } catch (error) {
      if (this.#open === channel) {
        this.#open = undefined;
        this.#channel = undefined;
      }
      await channel.close().catch(() => {});
      throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    this.#open = undefined;
    if (channel) await channel.then((open) => open.close()).catch(() => {});
  }
}

/**
 * Declares what the runner uses, with exactly the flags and arguments of the hmi-server's own
 * declarations (`TaskService`: `new Queue(name, durableQueues, false, false)`, `new
 * DirectExchange(name, durableQueues, false)`), so that neither side's declaration fails on
 * the other's (406). The response exchange belongs to the server, which declares it with a
 * durability setting of its own: it is only checked here, never declared. A dead-letter
 * exchange is declared with its queue but never named in the request queue's arguments (a
 * policy attaches it); a quorum request queue is only declared when missing.
 */
export async function declareTopology(
  model: ChannelModel,
  topology: Topology,
  log: Logger,
): Promise<void> {
  await using declarations = new DeclarationChannel(model);
  if (topology.deadLetterExchange) await ensureDeadLetterExchange(declarations, topology, log);
  await declareRequestQueue(declarations, topology, log);
  await ensureExchange(declarations, topology.cancellationExchange, {
    type: "direct",
    durable: topology.durable,
    log,
  });
  if (!await exchangeExistsOn(declarations, topology.responseExchange)) {
    log.warn("Response exchange missing; waiting for the hmi-server to declare it", {
      exchange: topology.responseExchange,
    });
  }
}

// The server declares the request queue with no arguments: the runner's declaration must be
// the same, or whichever comes second gets a 406 (and the server's RabbitAdmin stops it).
async function declareRequestQueue(
  declarations: DeclarationChannel,
  topology: Topology,
  log: Logger,
): Promise<void> {
  const queue = topology.requestQueue;
  if (topology.queueType === "quorum") {
    // A quorum queue needs `x-queue-type`, which the stock server never sends: it is made by
    // the operator (or by the runner when missing), and used as it is when it exists.
    if (await queueExistsOn(declarations, queue)) return;
    log.info("Request queue missing; declaring it as a quorum queue", { queue });
    await declarations.run((channel) =>
      channel.assertQueue(queue, {
        durable: true,
        exclusive: false,
        autoDelete: false,
        arguments: { "x-queue-type": "quorum" },
      })
    );
    return;
  }
  try {
    await declarations.run((channel) =>
      channel.assertQueue(queue, { durable: topology.durable, exclusive: false, autoDelete: false })
    );
  } catch (error) {
    if (replyCode(error) !== PRECONDITION_FAILED) throw error;
    log.warn("Request queue exists with other settings; using it as it is", {
      queue,
      error: errorMessage(error),
    });
    await declarations.run((channel) => channel.checkQueue(queue));
  }
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

async function queueExistsOn(declarations: DeclarationChannel, name: string): Promise<boolean> {
  try {
    await declarations.run((channel) => channel.checkQueue(name));
    return true;
  } catch (error) {
    if (replyCode(error) === NOT_FOUND) return false;
    throw error;
  }
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
  log.info("Declaring dead-letter exchange and queue; a policy attaches it to the request queue", {
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
