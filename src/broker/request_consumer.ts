import type { Channel, ConfirmChannel, ConsumeMessage, Options } from "amqplib";
import { Buffer } from "node:buffer";
import type { Logger } from "../observability/log.ts";
import type { Delivery } from "../protocol/ports.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage } from "../util/async.ts";
import type { BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";

const EMPTY_BODY = Buffer.alloc(0);

/**
 * Header of a request copy that counts how many times a runner was lost while running it:
 * the broker's `redelivered` flag says only "at least once".
 */
export const LOST_RUNS_HEADER = "x-taskrunner-lost-runs";

// How long a copy may take to be confirmed before the original is requeued as it is instead.
const COPY_TIMEOUT_MS = 10_000;

/** Publishes a copy of a request to the request queue; resolves once the broker confirms it. */
type PublishCopy = (content: Buffer, properties: Options.Publish) => Promise<void>;

/**
 * One message from the request queue. Settling it is safe at any time: when the channel it
 * came on has closed meanwhile, the broker has already put it back in the queue, and settling
 * does nothing.
 */
export class RequestDelivery implements Delivery {
  readonly #channel: Channel;
  #message: ConsumeMessage;
  readonly #isCurrent: (channel: Channel) => boolean;
  readonly #publishCopy: PublishCopy;
  #settled = false;
  #released = false;

  constructor(
    channel: Channel,
    message: ConsumeMessage,
    options: { isCurrent: (channel: Channel) => boolean; publishCopy: PublishCopy },
  ) {
    this.#channel = channel;
    this.#message = message;
    this.#isCurrent = options.isCurrent;
    this.#publishCopy = options.publishCopy;
  }

  /** The message body, as a plain byte array over the broker client's buffer (no copy). */
  get body(): Uint8Array {
    const { content } = this.#message;
    // Not the Buffer itself: Deno implements Buffer's indexOf and includes in JavaScript, where
    // Uint8Array's are native; finding a 90 MB request's input took ~240 ms instead of ~10.
    return new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
  }

  /**
   * Lets go of the body once it has been read, so that a large request is not held in
   * memory until it is acknowledged (settling needs only the delivery tag).
   */
  releaseBody(): void {
    this.#message = { ...this.#message, content: EMPTY_BODY };
    this.#released = true;
  }

  /** Runs of this request lost with their runner before this delivery (its copy's header). */
  get lostRuns(): number {
    const value = Number(this.#message.properties.headers?.[LOST_RUNS_HEADER] ?? 0);
    return Number.isSafeInteger(value) && value > 0 ? value : 0;
  }

  /** When it was delivered to this runner (ms since the epoch). */
  readonly receivedAt: number = Date.now();

  /**
   * When it was published, from its AMQP `timestamp` property (seconds by the spec; a value
   * that can only be milliseconds is taken as such); undefined when its publisher set none,
   * as the hmi-server's RabbitTemplate does not.
   */
  get publishedAt(): number | undefined {
    const timestamp: unknown = this.#message.properties.timestamp;
    if (typeof timestamp !== "number" || !(timestamp > 0)) return undefined;
    return timestamp > 1e11 ? timestamp : timestamp * 1000;
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

  /**
   * Puts the request back in the queue with a count of lost runs: publishes a copy with
   * `lostRuns` in its {@linkcode LOST_RUNS_HEADER} to the back of the queue, then, once the
   * broker has confirmed it, acknowledges this delivery. A plain requeue would come back
   * marked `redelivered` with the old count.
   *
   * @param lostRuns the count the copy carries
   * @returns whether the copy replaced this delivery; if not (body released, channel gone, no
   * copy confirmed in time, no right to publish to the queue), this delivery is left as it was
   */
  async requeue(lostRuns: number): Promise<boolean> {
    if (!this.live || this.#released) return false;
    const { properties, content } = this.#message;
    try {
      await this.#publishCopy(content, copyProperties(properties, lostRuns));
    } catch {
      return false;
    }
    // Acknowledged on a channel that closed meanwhile, the original comes back too: at least once.
    return this.ack();
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
  // Copies of requeued requests go through a confirm channel of their own, so that a copy is
  // known to be in the queue before its original is acknowledged.
  readonly #copies: ManagedChannel<ConfirmChannel>;
  readonly #queue: string;
  #consumerTag: string | undefined;
  #paused = false;

  constructor(
    broker: BrokerConnection,
    options: {
      queue: string;
      prefetch: number;
      logger: Logger;
      onDelivery: (delivery: RequestDelivery) => void;
      onConsuming?: (consuming: boolean) => void;
    },
  ) {
    this.#queue = options.queue;
    this.#copies = new ManagedChannel<ConfirmChannel>(broker, {
      name: "requeue",
      confirm: true,
      logger: options.logger,
      handler: { setup: () => Promise.resolve() },
    });
    const publishCopy = (content: Buffer, properties: Options.Publish) =>
      this.#publishCopy(content, properties);
    this.#channel = new ManagedChannel<Channel>(broker, {
      name: "consumer",
      confirm: false,
      logger: options.logger,
      handler: {
        setup: async (channel) => {
          if (this.#paused) return;
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
            const delivery = new RequestDelivery(channel, message, { isCurrent, publishCopy });
            if (this.#paused) {
              // Delivered before the broker saw our cancel: leave it to another runner. A
              // fresh one goes back as a copy, so that it is not taken for a lost run; a
              // redelivery as it is, so that the next runner counts the loss.
              const requeued = message.fields.redelivered
                ? Promise.resolve(false)
                : delivery.requeue(delivery.lostRuns);
              void requeued.then((copied) => copied || delivery.reject(true));
              return;
            }
            // Handed over once amqplib's frame handler has returned: until then it holds the
            // body's frames (as large as the body again), which the request's parse would keep
            // alive.
            queueMicrotask(() => options.onDelivery(delivery));
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

  async #publishCopy(content: Buffer, properties: Options.Publish): Promise<void> {
    const signal = AbortSignal.timeout(COPY_TIMEOUT_MS);
    const channel = await this.#copies.ready({ signal });
    using timedOut = whenAborted(signal);
    const confirmed = new Promise<void>((resolve, reject) => {
      channel.publish("", this.#queue, content, properties, (error: unknown) => {
        if (error) reject(new Error(`Request copy not confirmed: ${errorMessage(error)}`));
        else resolve();
      });
    });
    await Promise.race([
      confirmed,
      timedOut.promise.then(() => {
        throw new Error("Request copy not confirmed in time");
      }),
    ]);
  }

  /** Closes the channels: the broker requeues every unsettled delivery. */
  async close(): Promise<void> {
    await this.#channel.close();
    await this.#copies.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The properties of a request's copy: the original's, with the count of lost runs. */
function copyProperties(
  properties: ConsumeMessage["properties"],
  lostRuns: number,
): Options.Publish {
  const copy: Options.Publish = {
    headers: { ...properties.headers, [LOST_RUNS_HEADER]: lostRuns },
  };
  // user-id is left out: the broker refuses one that is not the publishing connection's user.
  for (
    const key of [
      "contentType",
      "contentEncoding",
      "deliveryMode",
      "priority",
      "correlationId",
      "replyTo",
      "expiration",
      "messageId",
      "timestamp",
      "type",
      "appId",
    ] as const
  ) {
    if (properties[key] !== undefined) (copy as Record<string, unknown>)[key] = properties[key];
  }
  return copy;
}

/** Whether a channel error is RabbitMQ's delivery acknowledgement timeout. */
export function isConsumerTimeout(error: unknown): boolean {
  // A channel may close without an error: nothing to match then.
  const message = errorMessage(error ?? "");
  return /PRECONDITION_FAILED/.test(message) && /acknowledgement.*timed out/i.test(message);
}
