import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import { Buffer } from "node:buffer";
import { connectFirst } from "../broker/connect.ts";
import { connectionSettings } from "../broker/connection_settings.ts";
import { DeclarationChannel, ensureExchange } from "../broker/topology.ts";
import { type BrokerConfig, requestQueueName } from "../config.ts";
import type { Logger } from "../observability/log.ts";
import { isTerminalStatus, type TaskResponse } from "../protocol/mod.ts";
import { errorMessage } from "../util/async.ts";
import { VERSION } from "../version.ts";

/**
 * Durability of the response exchange as the hmi-server declares it: its own setting
 * `terarium.taskrunner.durable-queues`, true in its `application.properties`, not the
 * `terarium.durableQueues` (`TERARIUM_DURABLE_QUEUES`) of everything else.
 */
export const SERVER_RESPONSE_EXCHANGE_DURABLE = true;

/** A request as the hmi-server publishes it: every field it sends, in its order. */
export interface ClientRequest {
  id: string;
  script: string;
  /** Base64 of the input bytes. */
  input: string;
  timeoutMinutes: number;
  routingKey: string;
  additionalProperties: null;
  userId: null;
  projectId: null;
  requestSHA256: null;
  useCache: boolean;
  /** The request type (task family), as the server sets it; the runner ignores it. */
  type: string;
}

/**
 * Builds a request the way the hmi-server does.
 *
 * @param task what to run, its input, its time limit and where responses go
 * @param requestType the task family, e.g. `gollm`
 */
export function buildClientRequest(
  task: { script: string; input: Uint8Array; timeoutMs: number; routingKey: string; id?: string },
  requestType: string,
): ClientRequest {
  return {
    id: task.id ?? crypto.randomUUID(),
    script: task.script,
    input: task.input.toBase64(),
    timeoutMinutes: task.timeoutMs / 60_000,
    routingKey: task.routingKey,
    additionalProperties: null,
    userId: null,
    projectId: null,
    requestSHA256: null,
    useCache: true,
    type: requestType,
  };
}

/**
 * The hmi-server's side of the broker, for operators and tests: submits requests, follows
 * their responses, and cancels tasks. One connection, no reconnects: a command-line client
 * reports a lost connection and stops.
 */
export class TaskClient implements AsyncDisposable {
  readonly #model: ChannelModel;
  readonly #config: BrokerConfig;
  readonly #log: Logger;
  readonly #lost: Promise<Error>;
  #closing = false;

  private constructor(model: ChannelModel, config: BrokerConfig, log: Logger) {
    this.#model = model;
    this.#config = config;
    this.#log = log;
    this.#lost = new Promise((resolve) => {
      model.on("error", () => {}); // the close event follows and carries the reason
      model.on("close", (error?: Error) => {
        if (!this.#closing) {
          resolve(new Error(`Broker connection lost: ${errorMessage(error ?? "closed")}`));
        }
      });
    });
  }

  /**
   * Connects to the broker of `config`.
   *
   * @throws {BrokerUnreachableError} naming the addresses (without password) when none can be
   *   reached
   */
  static async connect(config: BrokerConfig, options: { logger: Logger }): Promise<TaskClient> {
    const settings = connectionSettings(config);
    const { model } = await connectFirst(settings.endpoints, {
      timeoutMs: settings.connectTimeoutMs,
      connectionName: `taskrunner ${VERSION} client`,
      ...(settings.ca ? { ca: settings.ca } : {}),
    });
    return new TaskClient(model, config, options.logger);
  }

  /**
   * Declares what the server declares before it sends a request (the request queue, the
   * cancellation exchange, the task's cancellation queue bound to it), with its flags, and
   * publishes `request` on the request queue through the default exchange; resolves once the
   * broker has confirmed it.
   */
  async submit(request: ClientRequest): Promise<void> {
    const queue = requestQueueName(this.#config);
    const durable = this.#config.durableQueues;
    const exchange = this.#config.cancellationExchange;
    await this.#ensureExchange(exchange, durable);
    await using declarations = new DeclarationChannel(this.#model);
    // `TaskService`: new Queue(name, durableQueues, false, false) and, so that a cancellation
    // sent before the runner has seen the request waits for it, new Queue(id, durableQueues,
    // false, true) bound with the id.
    await declarations.run(async (channel) => {
      await channel.assertQueue(queue, { durable, exclusive: false, autoDelete: false });
      await channel.assertQueue(request.id, { durable, exclusive: false, autoDelete: true });
      await channel.bindQueue(request.id, exchange, request.id);
    });
    await this.#confirmed((channel) =>
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(request)), {
        contentType: "application/json",
        persistent: true,
      })
    );
    this.#log.debug("Request published", { taskId: request.id, queue });
  }

  /**
   * Starts collecting the responses published with `routingKey`: a private queue (exclusive,
   * auto-delete) bound to the response exchange, which is declared first if missing. Call it
   * before {@linkcode TaskClient.submit}, so that no response is missed.
   */
  async follow(routingKey: string): Promise<ResponseStream> {
    await this.#ensureExchange(this.#config.responseExchange, SERVER_RESPONSE_EXCHANGE_DURABLE);
    const channel = await this.#model.createChannel();
    channel.on("error", () => {}); // reported through the connection or the calls
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.#config.responseExchange, routingKey);
    const stream = new ResponseStream(channel, this.#lost);
    await channel.consume(queue, (message) => {
      if (message) stream.push(message.content);
    }, { noAck: true });
    return stream;
  }

  /**
   * Publishes a cancellation for a task: an empty message on the cancellation exchange with
   * the task id as routing key. The exchange is declared (direct) only when missing.
   */
  async cancel(taskId: string): Promise<void> {
    const exchange = this.#config.cancellationExchange;
    await this.#ensureExchange(exchange, this.#config.durableQueues);
    await this.#confirmed((channel) => channel.publish(exchange, taskId, Buffer.alloc(0)));
    this.#log.debug("Cancellation published", { taskId, exchange });
  }

  async #confirmed(publish: (channel: ConfirmChannel) => void): Promise<void> {
    const channel = await this.#model.createConfirmChannel();
    channel.on("error", () => {});
    try {
      publish(channel);
      await channel.waitForConfirms();
    } finally {
      await channel.close().catch(() => {});
    }
  }

  // Direct exchanges, declared as the server does when they are missing.
  async #ensureExchange(name: string, durable: boolean): Promise<void> {
    await using declarations = new DeclarationChannel(this.#model);
    await ensureExchange(declarations, name, { type: "direct", durable, log: this.#log });
  }

  /** Closes the connection (and with it any private response queue). */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#model.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The responses arriving on a private queue, in order, as an async iterable that ends after
 * the first terminal response. Iteration throws when the connection is lost.
 */
export class ResponseStream implements AsyncIterable<TaskResponse> {
  readonly #channel: Channel;
  readonly #lost: Promise<Error>;
  readonly #pending: TaskResponse[] = [];
  #wake: (() => void) | undefined;

  /** @internal made by {@linkcode TaskClient.follow} */
  constructor(channel: Channel, lost: Promise<Error>) {
    this.#channel = channel;
    this.#lost = lost;
  }

  /** @internal takes one message off the queue; one that is not a response is skipped */
  push(body: Uint8Array): void {
    try {
      this.#pending.push(JSON.parse(new TextDecoder().decode(body)) as TaskResponse);
    } catch {
      return;
    }
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TaskResponse> {
    const lost = this.#lost.then((error) => {
      throw error;
    });
    lost.catch(() => {}); // awaited below, when it matters
    try {
      while (true) {
        const next = this.#pending.shift();
        if (next) {
          yield next;
          if (isTerminalStatus(next.status)) return;
          continue;
        }
        await Promise.race([new Promise<void>((resolve) => this.#wake = resolve), lost]);
        this.#wake = undefined;
      }
    } finally {
      await this.#channel.close().catch(() => {});
    }
  }
}
