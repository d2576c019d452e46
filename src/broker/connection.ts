import type { ChannelModel } from "amqplib";
import type { Logger } from "../observability/log.ts";
import { delay, errorMessage } from "../util/async.ts";
import type { BrokerEndpoint } from "../config/amqp_url.ts";
import { BrokerRefusedError, connectFirst } from "./connect.ts";

/** Reconnect delays: exponential from `initialMs`, capped at `maxMs`, with jitter. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** Default limit of one connection attempt on one address (socket and handshake). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

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
 * closed, and tells its listeners each time it comes up or goes down. Each attempt tries the
 * addresses in order, each within a time limit, so that a black-holed network cannot hold it.
 */
export class BrokerConnection implements AsyncDisposable {
  readonly #endpoints: readonly BrokerEndpoint[];
  readonly #connectTimeoutMs: number;
  readonly #ca: string[] | undefined;
  readonly #log: Logger;
  readonly #name: string;
  readonly #listeners = new Set<ConnectionListener>();
  readonly #closing = new AbortController();
  #model: ChannelModel | undefined;
  #loop: Promise<void> | undefined;
  #reconnects = 0;
  // When the connection was last lost (or the first attempt began); undefined while up.
  #downSince: number | undefined;
  readonly #prepare: ((model: ChannelModel) => Promise<void>) | undefined;

  constructor(
    endpoints: readonly BrokerEndpoint[],
    options: {
      logger: Logger;
      connectionName?: string;
      /** Limit of one attempt on one address; default {@linkcode DEFAULT_CONNECT_TIMEOUT_MS}. */
      connectTimeoutMs?: number;
      /** PEM certificates trusted for `amqps://` instead of the default roots. */
      ca?: string[];
      /** Runs on each new connection before listeners hear of it (e.g. declare the topology). */
      prepare?: (model: ChannelModel) => Promise<void>;
    },
  ) {
    if (endpoints.length === 0) throw new TypeError("No broker address given");
    this.#prepare = options.prepare;
    this.#endpoints = endpoints;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#ca = options.ca;
    this.#log = options.logger;
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

  /** How long the runner has been without a connection since started; 0 while connected. */
  get disconnectedForMs(): number {
    return this.#downSince === undefined ? 0 : Date.now() - this.#downSince;
  }

  /** Adds a listener; `up` is called at once when the connection is already up. */
  listen(listener: ConnectionListener): void {
    this.#listeners.add(listener);
    if (this.#model) listener.up?.(this.#model);
  }

  /** Starts connecting in the background. */
  start(): void {
    if (this.#loop) return;
    this.#downSince = Date.now();
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    let attempt = 0;
    let everConnected = false;
    while (!this.#closing.signal.aborted) {
      try {
        const { model, endpoint } = await this.#connect();
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
          // A call on a connection that dies meanwhile may never settle: give up with it.
          await Promise.race([
            this.#prepare?.(model),
            lost.then((error) => {
              throw new Error(
                `Connection closed while it was prepared: ${errorMessage(error ?? "closed")}`,
              );
            }),
          ]);
        } catch (error) {
          await model.close().catch(() => {});
          throw error;
        }
        if (everConnected) this.#reconnects++;
        everConnected = true;
        attempt = 0;
        this.#model = model;
        this.#downSince = undefined;
        this.#log.info("Connected to broker", { url: endpoint.label });
        // Each listener's channel waits for the connection's close while it opens: more close
        // listeners at once than Node's default of 10 are expected here, not a leak.
        model.setMaxListeners(this.#listeners.size + 10);
        for (const listener of [...this.#listeners]) listener.up?.(model);
        const error = await lost;
        this.#model = undefined;
        this.#downSince = Date.now();
        for (const listener of [...this.#listeners]) listener.down?.(error);
        if (this.#closing.signal.aborted) return;
        this.#log.warn("Broker connection lost", { error: errorMessage(error ?? "closed") });
      } catch (error) {
        if (this.#closing.signal.aborted) return;
        const refused = refusalIn(error);
        if (refused) {
          // An operator must act (password, vhost, permissions): an error, not a passing fault.
          this.#log.error("Broker refused the login", {
            url: this.#endpoints.map((endpoint) => endpoint.label).join(","),
            attempt: attempt + 1,
            reason: refused.reason,
          });
        } else {
          this.#log.warn("Cannot connect to broker or prepare the connection", {
            url: this.#endpoints.map((endpoint) => endpoint.label).join(","),
            attempt: attempt + 1,
            error: errorMessage(error),
          });
        }
      }
      const wait = backoffDelay(attempt++, DEFAULT_BACKOFF);
      this.#log.debug("Reconnecting to broker", { inMs: Math.round(wait) });
      await delay(wait, { signal: this.#closing.signal }).catch(() => {});
    }
  }

  #connect(): ReturnType<typeof connectFirst> {
    return connectFirst(this.#endpoints, {
      timeoutMs: this.#connectTimeoutMs,
      connectionName: this.#name,
      signal: this.#closing.signal,
      ...(this.#ca ? { ca: this.#ca } : {}),
      onFailure: (endpoint, error) => {
        // The last address's failure is reported with the attempt.
        if (endpoint === this.#endpoints.at(-1)) return;
        const refused = refusalIn(error);
        if (refused) {
          this.#log.error("Broker refused the login, trying the next address", {
            url: endpoint.label,
            reason: refused.reason,
          });
          return;
        }
        this.#log.warn("Cannot connect to broker address, trying the next", {
          url: endpoint.label,
          error: errorMessage(error),
        });
      },
    });
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

// The refusal behind a failed attempt, as connectFirst wraps the last address's error.
function refusalIn(error: unknown): BrokerRefusedError | undefined {
  if (error instanceof BrokerRefusedError) return error;
  if (error instanceof Error && error.cause instanceof BrokerRefusedError) return error.cause;
  return undefined;
}
