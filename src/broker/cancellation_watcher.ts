import type { Channel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { errorMessage } from "../util/async.ts";
import type { BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";
import { replyCode } from "./topology.ts";

/** The cancellation queue of one task. */
export interface TaskCancellation extends AsyncDisposable {
  /** A cancellation was already waiting when the watch began: the task must not start. */
  readonly cancelledBeforeStart: boolean;
  /** Aborts when a cancellation arrives. */
  readonly signal: AbortSignal;
}

interface Watch {
  taskId: string;
  controller: AbortController;
  consumerTag: string | undefined;
  /** Declared passively: the queue exists with flags other than ours. */
  passive: boolean;
}

const PRECONDITION_FAILED = 406;

/**
 * Watches the per-task cancellation queues (named by task id, bound to the cancellation
 * exchange with the task id as routing key). All of them share one channel; after a channel
 * or connection loss, every watch is subscribed again.
 */
export class CancellationWatcher implements AsyncDisposable {
  readonly #exchange: string;
  readonly #durable: boolean;
  readonly #log: Logger;
  readonly #watches = new Map<string, Watch>();
  readonly #channel: ManagedChannel<Channel>;

  constructor(
    broker: BrokerConnection,
    options: { exchange: string; durable: boolean; logger: Logger },
  ) {
    this.#exchange = options.exchange;
    this.#durable = options.durable;
    this.#log = options.logger;
    this.#channel = new ManagedChannel<Channel>(broker, {
      name: "cancellations",
      confirm: false,
      logger: options.logger,
      handler: {
        setup: async (channel) => {
          for (const watch of this.#watches.values()) await this.#subscribe(channel, watch);
        },
        closed: () => {
          for (const watch of this.#watches.values()) watch.consumerTag = undefined;
        },
      },
    });
  }

  /** How many tasks are watched. */
  get size(): number {
    return this.#watches.size;
  }

  /**
   * Declares the task's cancellation queue, checks it for a cancellation already sent, and
   * listens for one until disposed.
   *
   * @param taskId the request id
   * @param options `signal` gives up waiting for the broker
   */
  async watch(taskId: string, options: { signal?: AbortSignal } = {}): Promise<TaskCancellation> {
    const watch: Watch = {
      taskId,
      controller: new AbortController(),
      consumerTag: undefined,
      passive: false,
    };
    let cancelledBeforeStart = false;
    for (let attempt = 0;; attempt++) {
      const channel = await this.#channel.ready(options);
      try {
        // A cancellation sent before the request reached us waits in the queue.
        cancelledBeforeStart = await this.#declare(channel, watch) > 0;
        if (!cancelledBeforeStart) {
          this.#watches.set(taskId, watch);
          await this.#consume(channel, watch);
        }
        break;
      } catch (error) {
        if (replyCode(error) === PRECONDITION_FAILED) watch.passive = true;
        // The channel closed under us; the next one subscribes every watch, this one included.
        if (this.#watches.has(taskId) || attempt >= 5) {
          if (attempt >= 5) {
            this.#log.warn("Cannot watch for cancellation", { taskId, error: errorMessage(error) });
          }
          break;
        }
      }
    }
    return {
      cancelledBeforeStart,
      signal: watch.controller.signal,
      [Symbol.asyncDispose]: () => this.#unwatch(watch),
    };
  }

  async #subscribe(channel: Channel, watch: Watch): Promise<void> {
    await this.#declare(channel, watch);
    await this.#consume(channel, watch);
  }

  /** Declares and binds the task's queue; returns how many messages wait in it. */
  async #declare(channel: Channel, watch: Watch): Promise<number> {
    const { messageCount } = watch.passive
      ? await channel.checkQueue(watch.taskId)
      : await channel.assertQueue(watch.taskId, {
        durable: this.#durable,
        exclusive: false,
        autoDelete: true,
      });
    await channel.bindQueue(watch.taskId, this.#exchange, watch.taskId);
    return messageCount;
  }

  async #consume(channel: Channel, watch: Watch): Promise<void> {
    const { consumerTag } = await channel.consume(watch.taskId, (message) => {
      if (message === null) return;
      this.#log.info("Cancellation received", { taskId: watch.taskId });
      watch.controller.abort("cancelled");
    }, { noAck: true });
    watch.consumerTag = consumerTag;
  }

  async #unwatch(watch: Watch): Promise<void> {
    this.#watches.delete(watch.taskId);
    const channel = this.#channel.current;
    if (!channel) return;
    try {
      if (watch.consumerTag) await channel.cancel(watch.consumerTag);
      // Also removes a queue that never had a consumer (auto-delete needs one to have been).
      await channel.deleteQueue(watch.taskId);
    } catch (error) {
      this.#log.debug("Cannot remove cancellation queue", {
        taskId: watch.taskId,
        error: errorMessage(error),
      });
    }
  }

  /** Stops watching everything and closes the channel. */
  async close(): Promise<void> {
    this.#watches.clear();
    await this.#channel.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
