import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { RepeatedWarning } from "../observability/repeated_warning.ts";
import { delay, errorMessage } from "../util/async.ts";
import { backoffDelay, type BrokerConnection, DEFAULT_BACKOFF } from "./connection.ts";

/** What a {@linkcode ManagedChannel} does with each channel it opens. */
export interface ChannelHandler<C extends Channel> {
  /** Prepares a fresh channel (prefetch, consumers, ...); a throw closes it and retries later. */
  setup(channel: C): Promise<void>;
  /** The channel is set up and is now `current`. */
  opened?(channel: C): void;
  /** The channel closed (error, broker close, connection loss); state tied to it is void. */
  closed?(channel: C, error: unknown): void;
}

/**
 * Keeps one channel open on a {@linkcode BrokerConnection}: a channel closed by an error (a
 * missing exchange, a consumer timeout, ...) is reopened and set up again, with backoff.
 */
export class ManagedChannel<C extends Channel> implements AsyncDisposable {
  readonly #broker: BrokerConnection;
  readonly #name: string;
  readonly #confirm: boolean;
  readonly #handler: ChannelHandler<C>;
  // A channel that keeps failing (a missing exchange at start-up, a refused publish) would
  // write a line per try: once, then once a minute with a count, then once when it works.
  readonly #setupFailing: RepeatedWarning;
  readonly #closedByError: RepeatedWarning;
  readonly #closing = new AbortController();
  #channel: C | undefined;
  #failures = 0;
  #opening = false;
  // Deliveries may arrive while setup still runs: they belong to this channel already.
  #settingUp: C | undefined;
  #waiters: Array<(channel: C) => void> = [];
  /** Opened (and reopened) whenever connected: from the start, or once first asked for. */
  #wanted: boolean;

  constructor(
    broker: BrokerConnection,
    options: {
      name: string;
      confirm: C extends ConfirmChannel ? true : false;
      handler: ChannelHandler<C>;
      logger: Logger;
      /** Opened only once `ready()` is first called, not at connection (spares the start-up). */
      lazy?: boolean;
    },
  ) {
    this.#broker = broker;
    this.#name = options.name;
    this.#confirm = options.confirm;
    this.#handler = options.handler;

    this.#wanted = !options.lazy;
    this.#setupFailing = new RepeatedWarning(options.logger, "Cannot set up broker channel");
    this.#closedByError = new RepeatedWarning(options.logger, "Broker channel closed");
    broker.listen({
      up: () => {
        if (this.#wanted) void this.#open();
      },
    });
  }

  /** The open and set-up channel, if any. */
  get current(): C | undefined {
    return this.#channel;
  }

  /** Whether `channel` is this one's open channel (or the one being set up). */
  isCurrent(channel: Channel): boolean {
    return this.#channel === channel || this.#settingUp === channel;
  }

  /** Resolves with the channel once it is open and set up. */
  ready(options: { signal?: AbortSignal } = {}): Promise<C> {
    if (this.#channel) return Promise.resolve(this.#channel);
    if (!this.#wanted) {
      this.#wanted = true;
      void this.#open(); // at once if connected; otherwise when the connection is up
    }
    return new Promise((resolve, reject) => {
      const waiter = (channel: C) => {
        options.signal?.removeEventListener("abort", onAbort);
        resolve(channel);
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(options.signal?.reason);
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  async #open(): Promise<void> {
    if (this.#opening || this.#channel || this.#closing.signal.aborted) return;
    this.#opening = true;
    try {
      // Read the connection each round: it may have been replaced while this loop waited.
      for (
        let model = this.#broker.current;
        model && !this.#closing.signal.aborted;
        model = this.#broker.current
      ) {
        let channel: C | undefined;
        // A call on a connection that dies meanwhile may never settle (amqplib leaves e.g. a
        // channel close waiting for its answer): give up on it with the connection.
        using gone = connectionGone(model, () => this.#broker.current !== model);
        try {
          channel = await Promise.race([
            (this.#confirm ? model.createConfirmChannel() : model.createChannel()) as Promise<C>,
            gone.promise,
          ]);
          const closed = this.#watch(channel);
          this.#settingUp = channel;
          await Promise.race([this.#handler.setup(channel), gone.promise]);
          if (closed.value) throw closed.value.error ?? new Error("Channel closed during setup");
          // Current before it stops being the one set up: a delivery settled in between is kept.
          this.#channel = channel;
          this.#settingUp = undefined;
          this.#failures = 0;
          this.#setupFailing.recovered("Broker channel set up", { channel: this.#name });
          this.#handler.opened?.(channel);
          for (const waiter of this.#waiters.splice(0)) waiter(channel);
          return;
        } catch (error) {
          this.#settingUp = undefined;
          this.#setupFailing.report({ channel: this.#name, error: errorMessage(error) });
          await channel?.close().catch(() => {});
          await delay(backoffDelay(this.#failures++, DEFAULT_BACKOFF), {
            signal: this.#closing.signal,
          })
            .catch(() => {});
        }
      }
    } finally {
      this.#opening = false;
    }
  }

  #watch(channel: C): { value?: { error: unknown } } {
    const state: { value?: { error: unknown } } = {};
    let lastError: unknown;
    channel.on("error", (error: Error) => {
      lastError = error;
    });
    channel.on("close", () => {
      state.value = { error: lastError };
      if (this.#channel !== channel) return;
      this.#channel = undefined;
      if (lastError !== undefined) {
        this.#closedByError.report({ channel: this.#name, error: errorMessage(lastError) });
      }
      this.#handler.closed?.(channel, lastError);
      if (this.#closing.signal.aborted) return;
      // Reopen after a pause, so that a repeating error does not spin; after a connection loss
      // there is no connection by then, and the next one reopens the channel.
      delay(backoffDelay(this.#failures++, DEFAULT_BACKOFF), { signal: this.#closing.signal }).then(
        () => this.#open(),
        () => {},
      );
    });
    return state;
  }

  /** Closes the channel for good. */
  async close(): Promise<void> {
    this.#closing.abort();
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel) await channel.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * A promise that rejects once `model` has closed (or already has, as `isGone` tells), with a
 * listener removed on dispose.
 */
function connectionGone(
  model: ChannelModel,
  isGone: () => boolean,
): Disposable & { promise: Promise<never> } {
  let onClose = () => {};
  const promise = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error("Broker connection closed while the channel was set up"));
  });
  promise.catch(() => {}); // only ever raced
  model.once("close", onClose);
  if (isGone()) onClose();
  return { promise, [Symbol.dispose]: () => void model.off("close", onClose) };
}
