import type { ChannelModel } from "amqplib";
import { DeclarationChannel, replyCode } from "./topology.ts";

const NOT_FOUND = 404;
// After a queue was not found, this long without probing: a publisher that does not declare
// the queues first would otherwise cost a closed channel per task.
const DEFAULT_PAUSE_MS = 30_000;

/**
 * Looks up queues passively, on channels of its own: a missing queue makes the broker close
 * the channel that asked (404), and none of these carries a consumer. After a miss it pauses
 * (answers "unknown" at once) for a while, so that queues nobody declares cost nothing more.
 */
export class QueueProbe implements AsyncDisposable {
  readonly #broker: { current: ChannelModel | undefined };
  readonly #pauseMs: number;
  readonly #lanes: number;
  #model: ChannelModel | undefined;
  #channels: DeclarationChannel[] = [];
  #pausedUntil = 0;

  /**
   * @param broker the connection, read on each probe (it may have been replaced)
   * @param options `lanes`: channels probed side by side (a channel answers one call at a
   * time); `pauseMs`: how long a miss stops probing
   */
  constructor(
    broker: { current: ChannelModel | undefined },
    options: { lanes: number; pauseMs?: number },
  ) {
    this.#broker = broker;
    this.#lanes = options.lanes;
    this.#pauseMs = options.pauseMs ?? DEFAULT_PAUSE_MS;
  }

  /**
   * The messages waiting in `queue` if it exists; undefined when it does not, or cannot be
   * known now (not connected, paused after a miss, any error): the caller declares it then.
   *
   * @param queue the queue's name
   * @param lane which of the channels asks (any number; taken modulo the lanes)
   */
  async messageCount(queue: string, lane: number): Promise<number | undefined> {
    const declarations = this.#channel(lane);
    if (!declarations) return undefined;
    try {
      const { messageCount } = await declarations.run((channel) => channel.checkQueue(queue));
      return messageCount;
    } catch (error) {
      if (replyCode(error) === NOT_FOUND) this.#pausedUntil = performance.now() + this.#pauseMs;
      return undefined;
    }
  }

  #channel(lane: number): DeclarationChannel | undefined {
    if (performance.now() < this.#pausedUntil) return undefined;
    const model = this.#broker.current;
    if (!model) return undefined;
    if (model !== this.#model) {
      // Channels of a connection that is gone: nothing to close on the broker any more.
      void this.#closeAll();
      this.#model = model;
      this.#channels = Array.from({ length: this.#lanes }, () => new DeclarationChannel(model));
    }
    return this.#channels[lane % this.#lanes];
  }

  async #closeAll(): Promise<void> {
    const channels = this.#channels;
    this.#channels = [];
    await Promise.all(channels.map((channel) => channel[Symbol.asyncDispose]()));
  }

  /** Closes its channels. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#model = undefined;
    await this.#closeAll();
  }
}
