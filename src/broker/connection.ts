import amqp from "amqplib";
import type { ChannelModel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { delay, errorMessage } from "../util/async.ts";
import { redactAmqpUrl } from "./amqp_url.ts";

/** Reconnect delays: exponential from `initialMs`, capped at `maxMs`, with jitter. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** Default reconnect delays. */
export const DEFAULT_BACKOFF: Backoff = { initialMs: 100, maxMs: 15_000 };

/** The delay before attempt `attempt` (0-based): half fixed, half random, so runners spread out. */
export function backoffDelay(attempt: number, backoff: Backoff): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + Math.random() * ceiling / 2;
}

/** Listener of connection changes. */
export interface ConnectionListener {
  /** A connection is up (first or after a reconnect). */
  up?(model: ChannelModel): void;
  /** The connection was lost. */
  down?(error: unknown): void;
}

/**
 * One AMQP connection, kept up: reconnects with capped exponential backoff and jitter until
 * closed, and tells its listeners each time it comes up or goes down.
 */
export class BrokerConnection implements AsyncDisposable {
  readonly #url: string;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #name: string;
  readonly #listeners = new Set<ConnectionListener>();
  readonly #closing = new AbortController();
  #model: ChannelModel | undefined;
  #loop: Promise<void> | undefined;
  #reconnects = 0;
  readonly #prepare: ((model: ChannelModel) => Promise<void>) | undefined;

  constructor(
    url: string,
    options: {
      logger: Logger;
      backoff?: Backoff;
      connectionName?: string;
      /** Runs on each new connection before listeners hear of it (e.g. declare the topology). */
      prepare?: (model: ChannelModel) => Promise<void>;
    },
  ) {
    this.#prepare = options.prepare;
    this.#url = url;
    this.#log = options.logger;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#name = options.connectionName ?? "taskrunner";
  }

  /** The open connection, if any. */
  get current(): ChannelModel | undefined {
    return this.#model;
  }

  /** How many times the connection was re-established after a loss. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Adds a listener; `up` is called at once when the connection is already up. */
  listen(listener: ConnectionListener): void {
    this.#listeners.add(listener);
    if (this.#model) listener.up?.(this.#model);
  }

  /** Starts connecting in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves when a connection is up (now or later), or rejects when `signal` aborts. */
  async connected(options: { signal?: AbortSignal } = {}): Promise<ChannelModel> {
    if (this.#model) return this.#model;
    return await new Promise((resolve, reject) => {
      const listener: ConnectionListener = {
        up: (model) => {
          this.#listeners.delete(listener);
          options.signal?.removeEventListener("abort", onAbort);
          resolve(model);
        },
      };
      const onAbort = () => {
        this.#listeners.delete(listener);
        reject(options.signal?.reason);
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#listeners.add(listener);
    });
  }

  async #run(): Promise<void> {
    let attempt = 0;
    let everConnected = false;
    while (!this.#closing.signal.aborted) {
      try {
        const model = await amqp.connect(this.#url, {
          clientProperties: { connection_name: this.#name },
          // Without it, a small frame written while the previous one is unacknowledged waits
          // for the broker's delayed ACK: 40 ms spikes in a task's latency.
          noDelay: true,
        });
        if (this.#closing.signal.aborted) {
          await model.close().catch(() => {});
          return;
        }
        const lost = new Promise<unknown>((resolve) => {
          model.on("close", (error?: Error) => resolve(error));
          model.on("error", () => {}); // the close event follows and carries the reason
          model.on(
            "blocked",
            (reason: string) => this.#log.warn("Broker blocked publishing", { reason }),
          );
          model.on("unblocked", () => this.#log.info("Broker unblocked publishing"));
        });
        try {
          await this.#prepare?.(model);
        } catch (error) {
          await model.close().catch(() => {});
          throw error;
        }
        if (everConnected) this.#reconnects++;
        everConnected = true;
        attempt = 0;
        this.#model = model;
        this.#log.info("Connected to broker", { url: redactAmqpUrl(this.#url) });
        for (const listener of [...this.#listeners]) listener.up?.(model);
        const error = await lost;
        this.#model = undefined;
        for (const listener of [...this.#listeners]) listener.down?.(error);
        if (this.#closing.signal.aborted) return;
        this.#log.warn("Broker connection lost", { error: errorMessage(error ?? "closed") });
      } catch (error) {
        if (this.#closing.signal.aborted) return;
        this.#log.warn("Cannot connect to broker or prepare the connection", {
          url: redactAmqpUrl(this.#url),
          attempt: attempt + 1,
          error: errorMessage(error),
        });
      }
      const wait = backoffDelay(attempt++, this.#backoff);
      this.#log.debug("Reconnecting to broker", { inMs: Math.round(wait) });
      await delay(wait, { signal: this.#closing.signal }).catch(() => {});
    }
  }

  /** Closes the connection and stops reconnecting. */
  async close(): Promise<void> {
    this.#closing.abort();
    const model = this.#model;
    this.#model = undefined;
    if (model) await model.close().catch(() => {});
    await this.#loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
