import type { Channel, ConsumeMessage } from "amqplib";
import { Buffer } from "node:buffer";
import type { Logger } from "../observability/log.ts";
import type { BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";

const EMPTY_BODY = Buffer.alloc(0);

/**
 * One message from the request queue. Settling it is safe at any time: when the channel it
 * came on has closed meanwhile, the broker has already put it back in the queue, and settling
 * does nothing.
 */
export class RequestDelivery {
  readonly #channel: Channel;
  #message: ConsumeMessage;
  readonly #isCurrent: (channel: Channel) => boolean;
  #settled = false;

  constructor(channel: Channel, message: ConsumeMessage, isCurrent: (channel: Channel) => boolean) {
    this.#channel = channel;
    this.#message = message;
    this.#isCurrent = isCurrent;
  }

  /** The message body. */
  get body(): Uint8Array {
    return this.#message.content;
  }

  /**
   * Lets go of the body once it has been read, so that a large request is not held in
   * memory until it is acknowledged (settling needs only the delivery tag).
   */
  releaseBody(): void {
    this.#message = { ...this.#message, content: EMPTY_BODY };
  }

  /** Whether the broker delivered it before (to this runner or another). */
  get redelivered(): boolean {
    return this.#message.fields.redelivered;
  }

  /** Whether it can still be settled on the channel it came on. */
  get live(): boolean {
    return !this.#settled && this.#isCurrent(this.#channel);
  }

  /** Acknowledges it: the request is done. @returns false if it could not be (channel gone) */
  ack(): boolean {
    return this.#settle(() => this.#channel.ack(this.#message));
  }

  /** Rejects it; without requeue it goes to the queue's dead-letter exchange, if any. */
  reject(requeue: boolean): boolean {
    return this.#settle(() => this.#channel.reject(this.#message, requeue));
  }

  #settle(action: () => void): boolean {
    if (!this.live) return false;
    this.#settled = true;
    try {
      action();
    } catch {
      return false; // the channel is closing: the broker requeues the message
    }
    return true;
  }
}

/**
 * Consumes the request queue with manual acknowledgement and a prefetch of `prefetch`, on a
 * channel that is reopened after any loss.
 */
export class RequestConsumer implements AsyncDisposable {
  readonly #channel: ManagedChannel<Channel>;
  #consumerTag: string | undefined;
  #paused = false;

  constructor(
    broker: BrokerConnection,
    options: {
      queue: string;
      prefetch: number;
      logger: Logger;
      onDelivery: (delivery: RequestDelivery) => void;
      /** Runs before each subscription, e.g. to declare the topology. */
      setup?: () => Promise<void>;
      onConsuming?: (consuming: boolean) => void;
    },
  ) {
    this.#channel = new ManagedChannel<Channel>(broker, {
      name: "consumer",
      confirm: false,
      logger: options.logger,
      handler: {
        setup: async (channel) => {
          if (this.#paused) return;
          await options.setup?.();
          await channel.prefetch(options.prefetch);
          const isCurrent = (c: Channel) => this.#channel.isCurrent(c);
          const { consumerTag } = await channel.consume(options.queue, (message) => {
            if (message === null) {
              // The queue was deleted or the broker cancelled us: resubscribe on a new channel.
              options.logger.warn("Request consumer cancelled by the broker", {
                queue: options.queue,
              });
              channel.close().catch(() => {});
              return;
            }
            if (this.#paused) {
              // Delivered before the broker saw our cancel: leave it to another runner.
              channel.reject(message, true);
              return;
            }
            options.onDelivery(new RequestDelivery(channel, message, isCurrent));
          }, { noAck: false });
          this.#consumerTag = consumerTag;
        },
        opened: () => options.onConsuming?.(true),
        closed: (_channel, error) => {
          this.#consumerTag = undefined;
          options.onConsuming?.(false);
          if (isConsumerTimeout(error)) {
            options.logger.warn(
              "The broker closed the consumer channel: a task ran longer than its consumer_timeout. " +
                "Running tasks go on and their requests are taken back when redelivered; raise " +
                "consumer_timeout above the longest task (see README, Delivery guarantees)",
            );
          }
        },
      },
    });
  }

  /** Whether a consumer is active on the request queue. */
  get consuming(): boolean {
    return this.#consumerTag !== undefined && this.#channel.current !== undefined;
  }

  /** Stops taking new requests; unsettled deliveries stay valid. */
  async pause(): Promise<void> {
    this.#paused = true;
    const channel = this.#channel.current;
    const tag = this.#consumerTag;
    this.#consumerTag = undefined;
    if (channel && tag) await channel.cancel(tag).catch(() => {});
  }

  /** Closes the channel: the broker requeues every unsettled delivery. */
  async close(): Promise<void> {
    await this.#channel.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Whether a channel error is RabbitMQ's delivery acknowledgement timeout. */
export function isConsumerTimeout(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error ?? "");
  return /PRECONDITION_FAILED/.test(message) && /acknowledgement.*timed out/i.test(message);
}
