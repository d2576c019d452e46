import type { ConfirmChannel } from "amqplib";
import { Buffer } from "node:buffer";
import type { Logger } from "../observability/log.ts";
import { errorMessage } from "../util/async.ts";
import type { BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";
import { exchangeExists } from "./topology.ts";

interface Outgoing {
  routingKey: string;
  content: Buffer;
  resolve(): void;
  reject(error: unknown): void;
  /** The channel it was last sent on, until confirmed or sent again. */
  sentOn: ConfirmChannel | undefined;
  enqueuedAt: number;
}

/** Observer of publisher activity, for metrics. */
export interface PublisherObserver {
  confirmed?(latencyMs: number, bytes: number): void;
}

/**
 * Publishes responses to one exchange, in order, each confirmed by the broker. Responses
 * survive channel and connection loss: what is not confirmed is sent again, in the same
 * order, once a channel is back. A missing exchange is logged and retried, never fatal.
 */
export class ResponsePublisher implements AsyncDisposable {
  readonly #exchange: string;
  readonly #log: Logger;
  readonly #channel: ManagedChannel<ConfirmChannel>;
  readonly #observer: PublisherObserver;
  #queue: Outgoing[] = [];
  #inFlight = new Set<Outgoing>();
  #pumping = false;
  #idleWaiters: Array<() => void> = [];
  #closed = false;

  constructor(
    broker: BrokerConnection,
    options: { exchange: string; durable: boolean; logger: Logger; observer?: PublisherObserver },
  ) {
    this.#exchange = options.exchange;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
    this.#channel = new ManagedChannel<ConfirmChannel>(broker, {
      name: "publisher",
      confirm: true,
      logger: options.logger,
      handler: {
        setup: async (channel) => {
          // Only checked here: the exchange belongs to the server, and a response published
          // to one re-created by the runner would reach no queue. The topology declares it
          // when missing at connection time.
          if (!await exchangeExists(broker, this.#exchange)) {
            throw new Error(
              `Response exchange "${this.#exchange}" does not exist; ${this.pending} responses kept until it does`,
            );
          }
          channel.on("drain", () => void this.#pump());
        },
        opened: () => this.#pump(),
        closed: (channel) => this.#requeueSentOn(channel),
      },
    });
  }

  /** Responses not yet confirmed. */
  get pending(): number {
    return this.#queue.length + this.#inFlight.size;
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
        routingKey,
        content: Buffer.from(content.buffer, content.byteOffset, content.byteLength),
        resolve,
        reject,
        sentOn: undefined,
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
        let writable: boolean;
        try {
          writable = channel.publish(
            this.#exchange,
            item.routingKey,
            item.content,
            { contentType: "text/plain", contentEncoding: "UTF-8", persistent: true },
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
        this.#inFlight.add(item);
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
    this.#inFlight.delete(item);
    item.sentOn = undefined;
    this.#observer.confirmed?.(performance.now() - item.enqueuedAt, item.content.length);
    item.resolve();
    if (this.pending === 0) { for (const waiter of this.#idleWaiters.splice(0)) waiter(); }
  }

  #requeueSentOn(channel: ConfirmChannel): void {
    const unconfirmed = [...this.#inFlight].filter((item) => item.sentOn === channel);
    if (unconfirmed.length === 0) return;
    for (const item of unconfirmed) {
      this.#inFlight.delete(item);
      item.sentOn = undefined;
    }
    this.#queue = [...unconfirmed, ...this.#queue];
    this.#log.info("Responses kept for when the broker is back", { count: this.#queue.length });
  }

  /** Stops publishing; what is still queued is rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#channel.close();
    const error = new Error("Publisher closed before the broker confirmed the response");
    for (const item of [...this.#queue, ...this.#inFlight]) item.reject(error);
    this.#queue = [];
    this.#inFlight.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
