import type { Channel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import type { CancellationSource, TaskCancellation } from "../protocol/ports.ts";
import { errorMessage } from "../util/async.ts";
import type { BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";
import { QueueProbe } from "./queue_probe.ts";
import { replyCode } from "./topology.ts";

interface Watch {
  taskId: string;
  controller: AbortController;
  /** Settles once the queue is bound and consumed (or that failed: a new channel retries). */
  subscribed: Promise<void>;
  /** Declared passively: the queue exists with flags other than ours. */
  passive: boolean;
  /** Which of the watcher's channels it lives on. */
  slot: number;
}

const PRECONDITION_FAILED = 406;
// A channel answers one call at a time and a task's watch makes two or four (look-up or
// declaration and binding, consumer, deletion): with fewer channels than tasks running at once,
// under load a look-up waits behind other tasks' calls and deletions fall seconds behind. At
// most 16: each open channel adds about 0.2 MB to the idle runner's RSS.
const MAX_CHANNELS = 16;
const UNWATCH_WAIT_MS = 5_000;

/**
 * Watches the per-task cancellation queues (named by task id, bound to the cancellation
 * exchange with the task id as routing key). The watches share a few channels; after a
 * channel or connection loss, every watch on it is subscribed again. A queue the hmi-server
 * declared and bound before it sent the request (as it always does) is only looked up and
 * consumed: the runner's own declaration and binding would cost the broker a round trip each
 * and change nothing.
 */
export class CancellationWatcher implements CancellationSource, AsyncDisposable {
  readonly #exchange: string;
  readonly #durable: boolean;
  readonly #log: Logger;
  readonly #watches = new Map<string, Watch>();
  readonly #channels: ManagedChannel<Channel>[];
  readonly #probe: QueueProbe;
  readonly #slots: number;
  #nextSlot = 0;

  constructor(
    broker: BrokerConnection,
    options: {
      exchange: string;
      durable: boolean;
      logger: Logger;
      /** Channels shared by the watches (each with a look-up channel): the tasks run at once. */
      channels?: number;
    },
  ) {
    this.#exchange = options.exchange;
    this.#durable = options.durable;
    this.#log = options.logger;
    this.#slots = Math.min(Math.max(1, options.channels ?? MAX_CHANNELS), MAX_CHANNELS);
    this.#probe = new QueueProbe(broker, { lanes: this.#slots });
    this.#channels = Array.from(
      { length: this.#slots },
      (_, slot) =>
        new ManagedChannel<Channel>(broker, {
          name: `cancellations-${slot}`,
          confirm: false,
          logger: options.logger,
          // As many as tasks run at once, but opened as tasks come: not all at start-up.
          lazy: true,
          handler: {
            setup: async (channel) => {
              for (const watch of this.#inSlot(slot)) {
                // A task may end while the others are subscribed again: not it, then.
                if (this.#watches.get(watch.taskId) === watch) {
                  await this.#subscribe(channel, watch);
                }
              }
            },
          },
        }),
    );
  }

  #inSlot(slot: number): Watch[] {
    return [...this.#watches.values()].filter((watch) => watch.slot === slot);
  }

  /**
   * Looks up the task's cancellation queue (declaring it when missing) and checks it for a
   * cancellation already sent; resolves then, while the queue is consumed (and bound, if the
   * runner declared it) in the background: the task may start meanwhile, as a cancellation
   * that comes before the consumer waits in the queue, and is delivered when it starts.
   * Listens until disposed.
   *
   * @param taskId the request id
   * @param options `signal` gives up waiting for the broker
   */
  async watch(taskId: string, options: { signal?: AbortSignal } = {}): Promise<TaskCancellation> {
    const watch: Watch = {
      taskId,
      controller: new AbortController(),
      subscribed: Promise.resolve(),
      passive: false,
      slot: this.#nextSlot++ % this.#slots,
    };
    // Declared and bound by the server before it sent the request: used as it is.
    const found = await this.#probe.messageCount(taskId, watch.slot);
    let cancelledBeforeStart = false;
    for (let attempt = 0;; attempt++) {
      const channel = await this.#channels[watch.slot]!.ready(options);
      try {
        // A cancellation sent before the request reached us waits in the queue.
        const waiting = found ?? await this.#declare(channel, watch);
        cancelledBeforeStart = waiting > 0;
        this.#log.debug("Cancellation queue looked up", {
          taskId,
          queue: found === undefined ? "declared" : "found",
          waiting,
        });
        if (!cancelledBeforeStart) {
          this.#watches.set(taskId, watch);
          watch.subscribed = this.#bindAndConsume(channel, watch, { bind: found === undefined });
        }
        break;
      } catch (error) {
        if (replyCode(error) === PRECONDITION_FAILED) watch.passive = true;
        if (attempt >= 5) {
          this.#log.warn("Cannot watch for cancellation", { taskId, error: errorMessage(error) });
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
    await this.#bind(channel, watch);
    await this.#consume(channel, watch);
  }

  // Never rejects: when the channel closes meanwhile, the next one subscribes the watch again
  // (declared and bound by the runner then, whoever did it first).
  async #bindAndConsume(channel: Channel, watch: Watch, options: { bind: boolean }): Promise<void> {
    try {
      if (options.bind) await this.#bind(channel, watch);
      await this.#consume(channel, watch);
      this.#log.debug("Cancellation queue consumed", { taskId: watch.taskId });
    } catch (error) {
      this.#log.debug("Cancellation queue not subscribed on this channel", {
        taskId: watch.taskId,
        error: errorMessage(error),
      });
    }
  }

  /** Declares the task's queue; returns how many messages wait in it. */
  async #declare(channel: Channel, watch: Watch): Promise<number> {
    const { messageCount } = watch.passive
      ? await channel.checkQueue(watch.taskId)
      : await channel.assertQueue(watch.taskId, {
        durable: this.#durable,
        exclusive: false,
        autoDelete: true,
      });
    return messageCount;
  }

  async #bind(channel: Channel, watch: Watch): Promise<void> {
    await channel.bindQueue(watch.taskId, this.#exchange, watch.taskId);
  }

  async #consume(channel: Channel, watch: Watch): Promise<void> {
    await channel.consume(watch.taskId, (message) => {
      if (message === null) return;
      this.#log.info("Cancellation received", { taskId: watch.taskId });
      watch.controller.abort("cancelled");
    }, { noAck: true });
  }

  async #unwatch(watch: Watch): Promise<void> {
    this.#watches.delete(watch.taskId);
    // A consume still on its way to a deleted queue would close the channel (404).
    await watch.subscribed;
    // While its channel is being reopened, wait a little for it: the queue is to go either way.
    const channel = this.#channels[watch.slot]!.current ??
      await this.#channels[watch.slot]!.ready({ signal: AbortSignal.timeout(UNWATCH_WAIT_MS) })
        .catch(() => undefined);
    if (!channel) return;
    try {
      // Deleting the queue also ends its consumer (the broker tells amqplib, which hands the
      // consumer a null message), and removes a queue that never had one: one round trip.
      await channel.deleteQueue(watch.taskId);
      this.#log.debug("Cancellation queue deleted", { taskId: watch.taskId });
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
    await Promise.all(this.#channels.map((channel) => channel.close()));
    await this.#probe[Symbol.asyncDispose]();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
