import type { ConfirmChannel, Message } from "amqplib";
import { Buffer } from "node:buffer";
import type { Logger } from "../observability/log.ts";
import { errorMessage } from "../util/async.ts";
import type { Backoff, BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";
import { RouteHolds, UNROUTED_ABANDON_MS } from "./route_holds.ts";
import { exchangeExists } from "./topology.ts";

interface Outgoing {
  /** Message id of its publications, to match the broker's returns to it. */
  id: string;
  routingKey: string;
  content: Buffer;
  resolve(): void;
  reject(error: unknown): void;
  /** The channel it was last sent on, until confirmed or sent again. */
  sentOn: ConfirmChannel | undefined;
  /** The broker returned it from its last publication: no queue took it. */
  returned: boolean;
  enqueuedAt: number;
}

/**
 * A response given up: its routing key had no queue long after other keys were routed again,
 * so the server process that sent the request is gone and no one will ever read it.
 */
export class UnroutableResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnroutableResponseError";
  }
}

/** Observer of publisher activity, for metrics. */
export interface PublisherObserver {
  confirmed?(latencyMs: number, bytes: number): void;
  /** The number of responses kept because no queue was bound for them changed. */
  unrouted?(count: number): void;
  /** Responses were given up (see {@linkcode UnroutableResponseError}). */
  abandoned?(count: number): void;
}

/**
 * Publishes responses to one exchange, in order, each confirmed by the broker and taken by a
 * queue. Responses survive channel and connection loss: what is not confirmed is sent again,
 * in the same order, once a channel is back. A missing exchange is logged and retried, never
 * fatal. Each response is published `mandatory`: one the broker returns (no queue bound for
 * its routing key, as when the server has not reconnected after a broker restart) is kept
 * like an unconfirmed one, with the later ones of its routing key behind it, and sent again
 * after a backoff until a queue takes it; only then does its `publish` resolve.
 */
export class ResponsePublisher implements AsyncDisposable {
  readonly #exchange: string;
  readonly #log: Logger;
  readonly #channel: ManagedChannel<ConfirmChannel>;
  readonly #observer: PublisherObserver;
  #queue: Outgoing[] = [];
  /** Sent and not yet confirmed, by message id. */
  #inFlight = new Map<string, Outgoing>();
  readonly #holds: RouteHolds<Outgoing>;
  #nextId = 0;
  #pumping = false;
  #idleWaiters: Array<() => void> = [];
  #closed = false;

  constructor(
    broker: BrokerConnection,
    options: {
      exchange: string;
      logger: Logger;
      observer?: PublisherObserver;
      /** Delays between tries of an unroutable response. */
      unroutedBackoff?: Backoff;
      /** How long a routing key may stay unroutable while others are routed; 5 minutes. */
      abandonAfterMs?: number;
    },
  ) {
    this.#exchange = options.exchange;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
    this.#holds = new RouteHolds<Outgoing>({
      release: (routingKey, items) => this.#retryUnrouted(routingKey, items),
      abandon: (routingKey, items) => this.#abandon(routingKey, items),
    }, {
      ...(options.unroutedBackoff ? { backoff: options.unroutedBackoff } : {}),
      abandonAfterMs: options.abandonAfterMs ?? UNROUTED_ABANDON_MS,
    });
    this.#channel = new ManagedChannel<ConfirmChannel>(broker, {
      name: "publisher",
      confirm: true,
      logger: options.logger,
      handler: {
        setup: async (channel) => {
          // Only checked, never declared: the exchange belongs to the server, whose own
          // declaration would fail on other flags, and one made by the runner while the server
          // is away would route responses nowhere.
          if (!await exchangeExists(broker, this.#exchange)) {
            throw new Error(
              `Response exchange "${this.#exchange}" does not exist; waiting for the hmi-server to declare it, ${this.pending} responses kept until it does`,
            );
          }
          channel.on("drain", () => void this.#pump());
          channel.on("return", (message: Message) => this.#returned(channel, message));
        },
        opened: () => this.#pump(),
        closed: (channel) => this.#requeueSentOn(channel),
      },
    });
  }

  /** Responses not yet confirmed and routed. */
  get pending(): number {
    return this.#queue.length + this.#inFlight.size + this.#holds.size;
  }

  /**
   * Queues a message; resolves once the broker has confirmed it.
   *
   * @param routingKey the request's routing key
   * @param content the message body
   */
  publish(routingKey: string, content: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Publisher is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({
        id: String(this.#nextId++),
        routingKey,
        content: Buffer.from(content.buffer, content.byteOffset, content.byteLength),
        resolve,
        reject,
        sentOn: undefined,
        returned: false,
        enqueuedAt: performance.now(),
      });
      void this.#pump();
    });
  }

  /** Resolves once every queued message is confirmed. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const channel = this.#channel.current;
        if (!channel) return;
        const item = this.#queue[0]!;
        if (this.#holds.waits(item.routingKey, item)) {
          // Its routing key has responses waiting for a queue: it waits behind them, in order.
          this.#queue.shift();
          this.#hold(item);
          continue;
        }
        let writable: boolean;
        try {
          writable = channel.publish(
            this.#exchange,
            item.routingKey,
            item.content,
            {
              contentType: "text/plain",
              contentEncoding: "UTF-8",
              persistent: true,
              mandatory: true,
              messageId: item.id,
            },
            (error: unknown) => this.#confirmed(item, channel, error),
          );
        } catch (error) {
          // The channel is closing (amqplib refuses to publish until it has closed): the
          // item stays first in line for the channel that replaces it.
          if ((error as Error | null)?.name === "IllegalOperationError") return;
          // The message itself cannot be sent (a routing key too long for AMQP, ...).
          this.#queue.shift();
          item.reject(error);
          continue;
        }
        this.#queue.shift();
        item.sentOn = channel;
        item.returned = false;
        this.#inFlight.set(item.id, item);
        if (!writable) return; // wait for "drain"
      }
    } finally {
      this.#pumping = false;
    }
  }

  #confirmed(item: Outgoing, channel: ConfirmChannel, error: unknown): void {
    if (item.sentOn !== channel) return; // already requeued after that channel closed
    if (error) {
      // A nack, or the channel is closing: closing it (again) puts everything unconfirmed back
      // in order, and the reopened channel sends it again.
      this.#log.warn("Response not confirmed; will publish it again", {
        error: errorMessage(error),
      });
      channel.close().catch(() => {});
      return;
    }
    this.#inFlight.delete(item.id);
    item.sentOn = undefined;
    if (item.returned) {
      // The return came before this ack: the broker took it, but no queue did.
      this.#hold(item);
      return;
    }
    if (this.#holds.routed(item.routingKey, item)) {
      this.#observer.unrouted?.(this.#holds.size);
      this.#log.info("Responses routed again", {
        routingKey: item.routingKey,
        unrouted: this.#holds.size,
      });
    }
    this.#observer.confirmed?.(performance.now() - item.enqueuedAt, item.content.length);
    item.resolve();
    if (this.pending === 0) { for (const waiter of this.#idleWaiters.splice(0)) waiter(); }
  }

  // amqplib hands a `basic.return` over before the confirm of the same publication.
  #returned(channel: ConfirmChannel, message: Message): void {
    const id = message.properties.messageId;
    const item = typeof id === "string" ? this.#inFlight.get(id) : undefined;
    if (item && item.sentOn === channel) item.returned = true;
  }

  #hold(item: Outgoing): void {
    const retry = this.#holds.hold(item.routingKey, item);
    this.#observer.unrouted?.(this.#holds.size);
    if (!retry) return;
    // Said once per hold: a server away for an hour would otherwise fill the log.
    const level = retry.failedBefore === 0 ? "warn" : "debug";
    this.#log[level](
      "Response not routed: no queue is bound for its routing key; kept and retried",
      {
        exchange: this.#exchange,
        routingKey: item.routingKey,
        unrouted: this.#holds.size,
        retryInMs: Math.round(retry.retryInMs),
      },
    );
  }

  #retryUnrouted(_routingKey: string, items: Outgoing[]): void {
    this.#observer.unrouted?.(this.#holds.size);
    // First in line: they are older than anything of their key queued since.
    this.#queue = [...items, ...this.#queue];
    this.#pump();
  }

  #abandon(routingKey: string, items: Outgoing[]): void {
    this.#observer.unrouted?.(this.#holds.size);
    this.#observer.abandoned?.(items.length);
    this.#log.error(
      "Responses given up: no queue for their routing key while others are routed; the server process that sent these requests is gone",
      { exchange: this.#exchange, routingKey, count: items.length },
    );
    const error = new UnroutableResponseError(
      `No queue is bound for routing key "${routingKey}" while other routing keys are routed`,
    );
    for (const item of items) item.reject(error);
    if (this.pending === 0) { for (const waiter of this.#idleWaiters.splice(0)) waiter(); }
  }

  #requeueSentOn(channel: ConfirmChannel): void {
    const unconfirmed = [...this.#inFlight.values()].filter((item) => item.sentOn === channel);
    if (unconfirmed.length === 0) return;
    for (const item of unconfirmed) {
      this.#inFlight.delete(item.id);
      item.sentOn = undefined;
      item.returned = false;
    }
    this.#queue = [...unconfirmed, ...this.#queue];
    this.#log.info("Responses kept for when the broker is back", { count: this.#queue.length });
  }

  /** Stops publishing; what is still queued is rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#channel.close();
    const error = new Error("Publisher closed before the broker confirmed the response");
    const held = this.#holds.clear();
    for (const item of [...this.#queue, ...this.#inFlight.values(), ...held]) item.reject(error);
    this.#queue = [];
    this.#inFlight.clear();
    this.#observer.unrouted?.(0);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
