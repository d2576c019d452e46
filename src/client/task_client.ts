import amqp from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import { Buffer } from "node:buffer";
import { connectFirst } from "../broker/connect.ts";
import { connectionSettings } from "../config/connection_settings.ts";
import { DeclarationChannel, ensureExchange } from "../broker/topology.ts";
import { type BrokerConfig, requestQueueName } from "../config/settings.ts";
import type { Logger } from "../observability/log.ts";
import type { TaskResponse } from "../protocol/mod.ts";
import { errorMessage } from "../util/async.ts";
import { VERSION } from "../version.ts";
import type { ClientNames } from "./names.ts";
import { type ClientRequest, encodeClientRequest } from "./request.ts";
import { ResponseStream } from "./response_stream.ts";

/**
 * Durability of the response exchange as the hmi-server declares it: its own setting
 * `terarium.taskrunner.durable-queues`, true in its `application.properties`, not the
 * `terarium.durableQueues` (`TERARIUM_DURABLE_QUEUES`) of everything else.
 */
export const SERVER_RESPONSE_EXCHANGE_DURABLE = true;

/** The queue and exchanges the server's side uses, and how durable it declares them. */
export interface ClientTopology {
  /** The full request queue name, `<base>-<type>`. */
  requestQueue: string;
  responseExchange: string;
  cancellationExchange: string;
  /** The server's `durableQueues`: of the request queue and the cancellation exchange and queues. */
  durable: boolean;
}

/** The topology of a runner's broker settings, as the server configured alike sees it. */
export function brokerTopology(config: BrokerConfig): ClientTopology {
  return {
    requestQueue: requestQueueName(config),
    responseExchange: config.responseExchange,
    cancellationExchange: config.cancellationExchange,
    durable: config.durableQueues,
  };
}

/** The topology of private names (tests, benchmark): nothing durable, the server's default. */
export function namesTopology(names: ClientNames): ClientTopology {
  return {
    requestQueue: names.fullRequestQueue,
    responseExchange: names.responseExchange,
    cancellationExchange: names.cancellationExchange,
    durable: false,
  };
}

/** A private queue taking the responses published with one routing key. */
export interface ResponseSubscription {
  /** The queue's server-generated name. */
  readonly queue: string;
  /** Binds the queue to the response exchange (which must exist) with the routing key. */
  bind(): Promise<void>;
  /** Stops taking responses; the queue goes with its channel. */
  close(): Promise<void>;
}

/** Called with each response, and when it arrived (`performance.now()`, before parsing). */
export type ResponseHandler = (response: TaskResponse, arrivedAt: number) => void;

// Spring's CachingConnectionFactory keeps 25 channels by default; 16 is what runs at once here.
const QUEUE_DECLARATION_CHANNELS = 16;

/**
 * The hmi-server's side of the broker, for operators, tests and the benchmark: declares what
 * the server declares with its flags, submits requests, follows their responses, and cancels
 * tasks. One connection, no reconnects: a client reports a lost connection and stops.
 */
export class TaskClient implements AsyncDisposable {
  /** The names and flags this client declares and publishes with. */
  readonly topology: ClientTopology;
  /** Resolves with the reason when the connection is lost (not when closed). */
  readonly lost: Promise<Error>;
  readonly #model: ChannelModel;
  readonly #log: Logger | undefined;
  // One channel for the shared declarations, as the server's cached channel: a declaration
  // per request costs its round trips only (a failed one makes the next get a new channel).
  readonly #declarations: DeclarationChannel;
  // Requests sent at once declare their cancellation queues side by side, as the server's
  // threads do on channels of its cache: on one channel each would wait for the others' round
  // trips (that capped the benchmark's throughput at ~170 tasks/s, with a core idle).
  readonly #queueDeclarations: DeclarationChannel[];
  #nextQueueDeclarations = 0;
  #publisher: ConfirmChannel | undefined;
  #opening: Promise<ConfirmChannel> | undefined;
  #closing = false;

  private constructor(model: ChannelModel, topology: ClientTopology, log: Logger | undefined) {
    this.#model = model;
    this.topology = topology;
    this.#log = log;
    this.#declarations = new DeclarationChannel(model);
    // Each opens its channel on first use only.
    this.#queueDeclarations = Array.from(
      { length: QUEUE_DECLARATION_CHANNELS },
      () => new DeclarationChannel(model),
    );
    this.lost = new Promise((resolve) => {
      model.on("error", () => {}); // the close event follows and carries the reason
      model.on("close", (error?: Error) => {
        if (!this.#closing) {
          resolve(new Error(`Broker connection lost: ${errorMessage(error ?? "closed")}`));
        }
      });
    });
  }

  /**
   * Connects to the broker of `config`, as the server configured with the same settings.
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
    return await new TaskClient(model, brokerTopology(config), options.logger).#ready();
  }

  /**
   * Connects to `url` (tests, benchmark).
   *
   * @param url an `amqp://` URL with its credentials
   * @param topology what to declare and publish to, e.g. {@linkcode namesTopology}
   * @param options `noDelay` disables Nagle's algorithm, as the server's Java client does
   */
  static async open(
    url: string,
    topology: ClientTopology,
    options: { noDelay?: boolean; logger?: Logger } = {},
  ): Promise<TaskClient> {
    const model = await amqp.connect(url, options.noDelay ? { noDelay: true } : {});
    return await new TaskClient(model, topology, options.logger).#ready();
  }

  async #ready(): Promise<this> {
    try {
      await this.#openPublisher();
      return this;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Declares the request queue as the server does: `new Queue(name, durableQueues, false, false)`. */
  async declareRequestQueue(): Promise<void> {
    const { requestQueue, durable } = this.topology;
    await this.#declare((channel) =>
      channel.assertQueue(requestQueue, { durable, exclusive: false, autoDelete: false })
    );
  }

  /**
   * Declares the response exchange, direct, with the server's own durability
   * ({@linkcode SERVER_RESPONSE_EXCHANGE_DURABLE}), when it is missing.
   */
  async declareResponseExchange(): Promise<void> {
    await this.#ensureExchange(this.topology.responseExchange, SERVER_RESPONSE_EXCHANGE_DURABLE);
  }

  /** Declares the cancellation exchange, direct, with the server's durability, when missing. */
  async declareCancellationExchange(): Promise<void> {
    await this.#ensureExchange(this.topology.cancellationExchange, this.topology.durable);
  }

  /**
   * Declares a task's cancellation queue bound to the cancellation exchange (declared first
   * when missing), as the server does before it sends the request (`new Queue(id,
   * durableQueues, false, true)` bound with the id), so that a cancellation sent before the
   * runner has seen the request waits for it.
   */
  async declareCancellationQueue(taskId: string): Promise<void> {
    const { cancellationExchange, durable } = this.topology;
    await this.declareCancellationExchange();
    const lane = this.#nextQueueDeclarations++ % this.#queueDeclarations.length;
    await this.#queueDeclarations[lane]!.run(async (channel) => {
      await channel.assertQueue(taskId, { durable, exclusive: false, autoDelete: true });
      await channel.bindQueue(taskId, cancellationExchange, taskId);
    });
  }

  /**
   * Publishes a request (or any bytes) on the request queue through the default exchange, as
   * JSON and persistent like the server's `RabbitTemplate`; resolves once it may publish more
   * (not once the broker has confirmed: see {@linkcode TaskClient.confirmed}).
   */
  publishRequest(request: ClientRequest | Uint8Array): Promise<void> {
    const channel = this.#publisher;
    if (!channel) return this.#openPublisher().then(() => this.publishRequest(request));
    const body = request instanceof Uint8Array ? request : encodeClientRequest(request);
    // A view of the bytes, not a copy: a request may be large.
    const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const writable = channel.sendToQueue(this.topology.requestQueue, content, {
      contentType: "application/json",
      persistent: true,
    });
    return writable ? Promise.resolve() : new Promise((resolve) => channel.once("drain", resolve));
  }

  /**
   * Publishes a task's cancellation as the server does: an empty message on the cancellation
   * exchange with the task id as routing key.
   */
  async publishCancellation(taskId: string): Promise<void> {
    const channel = this.#publisher ?? await this.#openPublisher();
    channel.publish(this.topology.cancellationExchange, taskId, Buffer.alloc(0));
  }

  /** Resolves once the broker has confirmed everything published so far. */
  async confirmed(): Promise<void> {
    await (this.#publisher ?? await this.#openPublisher()).waitForConfirms();
  }

  /**
   * Declares what the server declares before it sends a request (the request queue, the
   * cancellation exchange, the task's cancellation queue bound to it), publishes `request`
   * and resolves once the broker has confirmed it.
   */
  async submit(request: ClientRequest): Promise<void> {
    await this.declareRequestQueue();
    await this.declareCancellationQueue(request.id);
    await this.publishRequest(request);
    await this.confirmed();
    this.#log?.debug("Request published", {
      taskId: request.id,
      queue: this.topology.requestQueue,
    });
  }

  /**
   * Publishes a cancellation for a task, mandatory, and resolves once the broker has confirmed
   * it, with whether a queue received it: the task's cancellation queue exists while a runner
   * runs the task, and from the server's submission until a runner has taken it. The exchange
   * is declared (direct) only when missing.
   */
  async cancel(taskId: string): Promise<{ received: boolean }> {
    await this.declareCancellationExchange();
    const exchange = this.topology.cancellationExchange;
    const channel = this.#publisher ?? await this.#openPublisher();
    let received = true;
    // The broker returns an unroutable mandatory message before it confirms it.
    const onReturn = (message: { fields: { exchange: string; routingKey: string } }) => {
      if (message.fields.exchange === exchange && message.fields.routingKey === taskId) {
        received = false;
      }
    };
    channel.on("return", onReturn);
    try {
      channel.publish(exchange, taskId, Buffer.alloc(0), { mandatory: true });
      await channel.waitForConfirms();
    } finally {
      channel.off("return", onReturn);
    }
    this.#log?.debug("Cancellation published", { taskId, exchange, received });
    return { received };
  }

  /**
   * Takes the responses published with `routingKey` from a private queue (exclusive,
   * auto-delete) and hands each to `onResponse`; a message that is not JSON is skipped.
   *
   * @param options `bind: false` leaves the queue unbound until
   *   {@linkcode ResponseSubscription.bind} (for a response exchange that does not exist yet)
   */
  async subscribe(
    routingKey: string,
    onResponse: ResponseHandler,
    options: { bind?: boolean } = {},
  ): Promise<ResponseSubscription> {
    const channel = await this.#model.createChannel();
    channel.on("error", () => {}); // reported through the connection or the calls
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    const exchange = this.topology.responseExchange;
    const subscription: ResponseSubscription = {
      queue,
      bind: async () => void await channel.bindQueue(queue, exchange, routingKey),
      close: () => channel.close().catch(() => {}),
    };
    if (options.bind ?? true) await subscription.bind();
    await channel.consume(queue, (message) => {
      if (!message) return;
      const arrivedAt = performance.now();
      const response = parseResponse(message.content);
      if (response) onResponse(response, arrivedAt);
    }, { noAck: true });
    return subscription;
  }

  /**
   * Declares a named queue that keeps the responses published with `routingKey` until someone
   * reads them, bound to the response exchange (declared if missing), so that a runner's
   * responses are routed even when nobody follows them now. The queue is deleted after
   * `expiresMs` unused (`x-expires`), so that a forgotten one does not stay.
   */
  async keepResponses(
    routingKey: string,
    options: { queue: string; expiresMs: number },
  ): Promise<void> {
    await this.declareResponseExchange();
    const exchange = this.topology.responseExchange;
    await this.#declare(async (channel) => {
      await channel.assertQueue(options.queue, {
        durable: true,
        exclusive: false,
        autoDelete: false,
        arguments: { "x-expires": options.expiresMs },
      });
      await channel.bindQueue(options.queue, exchange, routingKey);
    });
  }

  /**
   * Starts collecting the responses published with `routingKey`, after declaring the response
   * exchange if missing. Call it before {@linkcode TaskClient.submit}, so that no response is
   * missed.
   */
  async follow(routingKey: string): Promise<ResponseStream> {
    await this.declareResponseExchange();
    const stream = new ResponseStream(this.lost);
    stream.attach(await this.subscribe(routingKey, (response) => stream.push(response)));
    return stream;
  }

  /**
   * Collects the responses a queue of {@linkcode TaskClient.keepResponses} holds, and those
   * still to come. They are acknowledged only when the queue is deleted: a reader that stops
   * early leaves them all to the next.
   *
   * @returns undefined when the queue does not exist
   */
  async followKept(queue: string): Promise<ResponseStream | undefined> {
    const exists = await this.checkQueue(queue).then(() => true, () => false);
    if (!exists) return undefined;
    const channel = await this.#model.createChannel();
    channel.on("error", () => {}); // reported through the connection or the calls
    const stream = new ResponseStream(this.lost);
    stream.attach({ close: () => channel.close().catch(() => {}) });
    await channel.consume(queue, (message) => {
      const response = message ? parseResponse(message.content) : undefined;
      if (response) stream.push(response);
    }, { noAck: false });
    return stream;
  }

  /** Messages and consumers of a queue; throws (404) when it does not exist. */
  checkQueue(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
    return this.useChannel((channel) => channel.checkQueue(queue));
  }

  /** Runs `work` on a channel of its own, closed afterwards (for what a caller adds). */
  async useChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await this.#model.createChannel();
    channel.on("error", () => {}); // the rejected call reports it
    try {
      return await work(channel);
    } finally {
      await channel.close().catch(() => {});
    }
  }

  /** Deletes queues and exchanges, ignoring those already gone (clean-up of private names). */
  async deleteAll(
    names: { queues: readonly string[]; exchanges: readonly string[] },
  ): Promise<void> {
    await this.useChannel(async (channel) => {
      for (const queue of names.queues) await channel.deleteQueue(queue).catch(() => {});
      for (const exchange of names.exchanges) {
        await channel.deleteExchange(exchange).catch(() => {});
      }
    });
  }

  // One confirm channel for every publication, open from the start so that a publication is
  // sent at once, in call order; opened again after a channel error (a cancellation to a
  // missing exchange closes it).
  #openPublisher(): Promise<ConfirmChannel> {
    this.#opening ??= this.#model.createConfirmChannel().then((channel) => {
      channel.on("error", () => {}); // the close event follows
      channel.on("close", () => {
        this.#publisher = undefined;
        this.#opening = undefined;
      });
      this.#publisher = channel;
      return channel;
    }, (error) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  async #declare(work: (channel: Channel) => Promise<unknown>): Promise<void> {
    await this.#declarations.run(work);
  }

  // Direct exchanges, declared as the server does when they are missing.
  async #ensureExchange(name: string, durable: boolean): Promise<void> {
    await ensureExchange(this.#declarations, name, {
      type: "direct",
      durable,
      ...(this.#log ? { log: this.#log } : {}),
    });
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

function parseResponse(body: Uint8Array): TaskResponse | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(body)) as TaskResponse;
  } catch {
    return undefined;
  }
}
