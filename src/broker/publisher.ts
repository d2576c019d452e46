import type { ConfirmChannel, Message } from "amqplib";
import { Buffer } from "node:buffer";
import type { Logger } from "../observability/log.ts";
import { RepeatedWarning, RepeatedWarnings } from "../observability/repeated_warning.ts";
import { errorMessage } from "../util/async.ts";
import { type Backoff, backoffDelay, type BrokerConnection } from "./connection.ts";
import { ManagedChannel } from "./managed_channel.ts";
import { RouteHolds } from "./route_holds.ts";
import { exchangeExists } from "./topology.ts";
import type { PublisherObserver, RefusalReason } from "../observability/observers.ts";
import type { ResponseSink } from "../protocol/ports.ts";
import {
  PublisherClosedError,
  ResponseTooLargeError,
  UnroutableResponseError,
} from "../protocol/publish_errors.ts";

export type { PublisherObserver, RefusalReason };
export { PublisherClosedError, ResponseTooLargeError, UnroutableResponseError };

/**
 * How long a response the broker did not deliver is kept and tried again before it is given up:
 * 5 minutes. Long enough for a broker restart and the hmi-server's reconnection (seconds), short
 * enough that responses of a server process that is gone (each process binds a routing key of
 * its own, which never comes back) do not pile up in memory.
 */
export const RESPONSE_HOLD_MS = 5 * 60_000;

/**
 * Bytes of held responses past which a response that must be held no longer lets its caller
 * go: it waits, holding its task slot, until it is delivered or given up. Without it, a server
 * gone for good while its backlog runs would have its outputs kept in memory without bound.
 */
export const MAX_HELD_BYTES = 256 * 1024 * 1024;

/** Backoff of publication after the broker refused the runner write access to the exchange. */
const ACCESS_REFUSED_BACKOFF: Backoff = { initialMs: 500, maxMs: 5_000 };

/** Why a response is held instead of delivered. */
export type HoldReason = "unrouted" | "nack" | "access_refused";

/** How a published response ended for its publisher's caller. */
export type PublishOutcome =
  /** Confirmed by the broker and taken by a queue. */
  | "routed"
  /** Not delivered now (see {@linkcode HoldReason}): kept and tried again, up to its limit. */
  | "held";

/** What a response is, for the list of held responses. */
export interface ResponseInfo {
  taskId?: string;
  /** The task's script, for the operator's list of held responses. */
  script?: string;
  status?: string;
}

/** One response held, as {@linkcode ResponsePublisher.held} lists it. */
export interface HeldResponse {
  taskId: string | undefined;
  script: string | undefined;
  status: string | undefined;
  routingKey: string;
  reason: HoldReason;
  /** When it was first held (epoch ms). */
  heldSince: number;
  /** When it is given up unless delivered before (epoch ms). */
  giveUpAt: number;
}

/** Write access refused: nothing is sent but one probe after each backoff. */
interface Refusal {
  error: string;
  tries: number;
  /** When the next probe may go (the timer also opens the gate). */
  until: number;
  probe: Outgoing | undefined;
  timer?: ReturnType<typeof setTimeout>;
}

interface Outgoing {
  /** Message id of its publications, to match the broker's returns to it. */
  id: string;
  routingKey: string;
  content: Buffer;
  info: ResponseInfo;
  /** Settles its `publish` (once: a held response settles before it is delivered). */
  settle(outcome: PublishOutcome): void;
  fail(error: unknown): void;
  settled: boolean;
  /** The channel it was last sent on, until confirmed or sent again. */
  sentOn: ConfirmChannel | undefined;
  /** The broker returned it from its last publication: no queue took it. */
  returned: boolean;
  enqueuedAt: number;
  /** Set while held: why, since when (epoch ms), and its give-up timer. */
  hold: { reason: HoldReason; since: number; timer: ReturnType<typeof setTimeout> } | undefined;
  /** Its time limit passed while it was out: given up when it comes back undelivered. */
  expired: boolean;
}

/** Options of {@linkcode ResponsePublisher}. */
export interface ResponsePublisherOptions {
  exchange: string;
  logger: Logger;
  observer?: PublisherObserver;
  /** Delays between tries of a held response's routing key. */
  unroutedBackoff?: Backoff;
  /** How long a response may be held before it is given up; {@linkcode RESPONSE_HOLD_MS}. */
  holdMs?: number;
  /** Held bytes past which a held response's caller waits; {@linkcode MAX_HELD_BYTES}. */
  maxHeldBytes?: number;
}

/**
 * Publishes responses to one exchange, each confirmed by the broker and taken by a queue, in
 * order per routing key. Responses survive channel and connection loss: what is not confirmed
 * is sent again, in the same order, once a channel is back. A missing exchange is logged and
 * retried, never fatal.
 *
 * What the broker does not deliver is held, per response: returned (published `mandatory`, no
 * queue bound for its routing key, as when the server has not reconnected after a broker
 * restart), nacked (a full `reject-publish` queue), or refused for want of write access to the
 * exchange. A held response settles its `publish` as `"held"` at once (its caller need not
 * wait), keeps the later ones of its routing key behind it, is tried again after a backoff,
 * and is given up after its own time limit. A response larger than the broker's
 * `max_message_size` rejects with {@linkcode ResponseTooLargeError}; the broker closes the
 * channel for the first one, and the publisher refuses larger ones itself from then on. No
 * refusal makes the publisher send anything but the refused response again.
 */
export class ResponsePublisher implements ResponseSink, AsyncDisposable {
  readonly #exchange: string;
  readonly #log: Logger;
  readonly #channel: ManagedChannel<ConfirmChannel>;
  readonly #observer: PublisherObserver;
  readonly #holdMs: number;
  readonly #maxHeldBytes: number;
  #heldBytes = 0;
  #queue: Outgoing[] = [];
  /** Sent and not yet confirmed, by message id. */
  #inFlight = new Map<string, Outgoing>();
  readonly #holds: RouteHolds<Outgoing>;
  #nextId = 0;
  #pumping = false;
  #idleWaiters: Array<{ held: boolean; resolve: () => void }> = [];
  #closed = false;
  /** The broker's `max_message_size`, once a refusal told it. */
  #maxMessageSize: number | undefined;
  /** Write access refused: nothing is sent but one probe after each backoff. */
  #refusal: Refusal | undefined;
  #exchangeMissing = false;
  /** Responses with a hold: counted as they start and end, not by a scan (there may be many). */
  #heldCount = 0;
  readonly #warnings: {
    unrouted: RepeatedWarnings;
    nacked: RepeatedWarnings;
    tooLarge: RepeatedWarning;
    accessRefused: RepeatedWarning;
    abandoned: RepeatedWarning;
    kept: RepeatedWarning;
  };

  constructor(broker: BrokerConnection, options: ResponsePublisherOptions) {
    this.#exchange = options.exchange;
    this.#log = options.logger;
    this.#observer = options.observer ?? {};
    this.#holdMs = options.holdMs ?? RESPONSE_HOLD_MS;
    this.#maxHeldBytes = options.maxHeldBytes ?? MAX_HELD_BYTES;
    const log = options.logger;
    this.#warnings = {
      unrouted: new RepeatedWarnings(
        log,
        "Response not routed: no queue is bound for its routing key; held and retried",
      ),
      nacked: new RepeatedWarnings(
        log,
        "Response refused by the broker (nack: a queue for its routing key refused it); held and retried",
      ),
      tooLarge: new RepeatedWarning(
        log,
        "Response larger than the broker's max_message_size; not published",
      ),
      accessRefused: new RepeatedWarning(
        log,
        "Cannot publish responses: the broker refused write access to the response exchange; responses are held",
        { level: "error" },
      ),
      abandoned: new RepeatedWarning(
        log,
        "Response given up: not delivered within its time limit",
        { level: "error" },
      ),
      kept: new RepeatedWarning(log, "Responses kept for when the broker channel is back"),
    };
    this.#holds = new RouteHolds<Outgoing>({
      release: (_routingKey, items) => this.#retry(items),
    }, options.unroutedBackoff ? { backoff: options.unroutedBackoff } : {});
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
            this.#exchangeMissing = true;
            throw new Error(
              `Response exchange "${this.#exchange}" does not exist; waiting for the hmi-server to declare it, ${this.pending} responses kept until it does`,
            );
          }
          this.#exchangeMissing = false;
          channel.on("drain", () => void this.#pump());
          channel.on("return", (message: Message) => this.#returned(channel, message));
        },
        opened: () => {
          this.#warnings.kept.recovered("Broker channel back; publishing kept responses");
          this.#pump();
        },
        closed: (channel, error) => this.#channelClosed(channel, error),
      },
    });
  }

  /** Responses not yet delivered or given up: queued, out, or held. */
  get pending(): number {
    return this.#queue.length + this.#inFlight.size + this.#holds.size;
  }

  /** Responses held now (see {@linkcode HoldReason}). */
  get heldCount(): number {
    return this.#heldCount;
  }

  /**
   * Why no response can be published now, for readiness: the response exchange is missing, or
   * the broker refuses write access to it; `undefined` when publishing works.
   */
  get problem(): string | undefined {
    if (this.#refusal) return `cannot publish responses: ${this.#refusal.error}`;
    if (this.#exchangeMissing) {
      return `cannot publish responses: response exchange "${this.#exchange}" does not exist`;
    }
    return undefined;
  }

  /** A snapshot of the responses held now, oldest first (read-only, for the operator). */
  held(): HeldResponse[] {
    return this.#held().map((item) => ({
      taskId: item.info.taskId,
      script: item.info.script,
      status: item.info.status,
      routingKey: item.routingKey,
      reason: item.hold!.reason,
      heldSince: item.hold!.since,
      giveUpAt: item.hold!.since + this.#holdMs,
    })).sort((a, b) => a.heldSince - b.heldSince);
  }

  #held(): Outgoing[] {
    return [...this.#holds.items(), ...this.#queue, ...this.#inFlight.values()].filter((item) =>
      item.hold !== undefined
    );
  }

  /**
   * Queues a response.
   *
   * @param routingKey the request's routing key
   * @param content the message body
   * @param info what it is (task id, status), for the list of held responses and the log
   * @returns `"routed"` once the broker confirmed it and a queue took it; `"held"` once the
   * broker did not deliver it now (kept and tried again up to the time limit); rejects with
   * {@linkcode ResponseTooLargeError}, {@linkcode PublisherClosedError}, or an error of the
   * message itself (a routing key too long for AMQP)
   */
  publish(
    routingKey: string,
    content: Uint8Array,
    info: ResponseInfo = {},
  ): Promise<PublishOutcome> {
    if (this.#closed) return Promise.reject(new PublisherClosedError());
    return new Promise((resolve, reject) => {
      const item: Outgoing = {
        id: String(this.#nextId++),
        routingKey,
        content: Buffer.from(content.buffer, content.byteOffset, content.byteLength),
        info,
        settle: (outcome) => {
          if (item.settled) return;
          item.settled = true;
          resolve(outcome);
        },
        fail: (error) => {
          if (item.settled) return;
          item.settled = true;
          reject(error);
        },
        settled: false,
        sentOn: undefined,
        returned: false,
        enqueuedAt: performance.now(),
        hold: undefined,
        expired: false,
      };
      this.#queue.push(item);
      // While write access is refused, a new response is held from the start: it does not
      // keep its caller (a task slot) waiting.
      if (this.#refusal) this.#startHold(item, "access_refused");
      void this.#pump();
    });
  }

  /**
   * Resolves once no response is pending (delivered or given up); with `held: false`, once
   * none is pending but held ones, which only time or a server coming back delivers (a
   * shutdown need not wait for them).
   */
  idle(options: { held?: boolean } = {}): Promise<void> {
    const held = options.held ?? true;
    if (this.#pendingCounting(held) === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push({ held, resolve }));
  }

  #pendingCounting(held: boolean): number {
    return held ? this.pending : this.pending - this.#heldCount;
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const channel = this.#channel.current;
        if (!channel) return;
        const refusal = this.#refusal;
        if (refusal && (refusal.probe !== undefined || performance.now() < refusal.until)) return;
        const item = this.#queue[0]!;
        if (this.#holds.waits(item.routingKey, item)) {
          // Its routing key has responses held: it waits behind them, in order.
          this.#queue.shift();
          this.#holdBehind(item);
          continue;
        }
        if (this.#maxMessageSize !== undefined && item.content.length > this.#maxMessageSize) {
          this.#queue.shift();
          this.#tooLarge(item, this.#maxMessageSize);
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
          this.#holds.dropProbe(item.routingKey, item);
          this.#endHold(item);
          item.fail(error);
          this.#settledOne();
          continue;
        }
        this.#queue.shift();
        item.sentOn = channel;
        item.returned = false;
        this.#inFlight.set(item.id, item);
        if (refusal) {
          // One probe while access is refused: the rest wait for its confirm.
          refusal.probe = item;
          return;
        }
        if (!writable) return; // wait for "drain"
      }
    } finally {
      this.#pumping = false;
    }
  }

  #confirmed(item: Outgoing, channel: ConfirmChannel, error: unknown): void {
    if (item.sentOn !== channel) return; // already requeued after that channel closed
    // The broker took the probe (even a nack or a return is no refusal of access).
    if (this.#refusal?.probe === item && (!error || errorMessage(error) === "message nacked")) {
      this.#accessBack();
    }
    if (error) {
      // amqplib fails every callback of a channel that closes: its close handler requeues
      // them (or refuses the one that closed it). Only a nack is about this message alone.
      if (!this.#channel.isCurrent(channel) || errorMessage(error) !== "message nacked") return;
      this.#inFlight.delete(item.id);
      item.sentOn = undefined;
      this.#observer.refused?.("nack");
      this.#warnings.nacked.report(item.routingKey, {
        exchange: this.#exchange,
        routingKey: item.routingKey,
        taskId: item.info.taskId,
      });
      this.#undelivered(item, "nack");
      return;
    }
    this.#inFlight.delete(item.id);
    item.sentOn = undefined;
    if (item.returned) {
      // The return came before this ack: the broker took it, but no queue did.
      this.#warnings.unrouted.report(item.routingKey, {
        exchange: this.#exchange,
        routingKey: item.routingKey,
        taskId: item.info.taskId,
      });
      this.#undelivered(item, "unrouted");
      return;
    }
    this.#delivered(item);
  }

  #delivered(item: Outgoing): void {
    if (this.#holds.routed(item.routingKey, item)) {
      this.#warnings.unrouted.recovered(item.routingKey, "Responses routed again", {
        routingKey: item.routingKey,
      });
      this.#warnings.nacked.recovered(item.routingKey, "Responses taken by a queue again", {
        routingKey: item.routingKey,
      });
    }
    this.#endHold(item);
    this.#observer.confirmed?.(performance.now() - item.enqueuedAt, item.content.length);
    item.settle("routed");
    this.#settledOne();
  }

  // amqplib hands a `basic.return` over before the confirm of the same publication.
  #returned(channel: ConfirmChannel, message: Message): void {
    const id = message.properties.messageId;
    const item = typeof id === "string" ? this.#inFlight.get(id) : undefined;
    if (item && item.sentOn === channel) item.returned = true;
  }

  // Returned or nacked: held at the front of its key, or given up if its time is over.
  #undelivered(item: Outgoing, reason: HoldReason): void {
    if (item.expired) {
      this.#abandon(item);
      return;
    }
    this.#startHold(item, reason);
    this.#holds.hold(item.routingKey, item);
    this.#observer.unrouted?.(this.heldCount);
  }

  // Behind held responses of its key: held too, in order, without being tried.
  #holdBehind(item: Outgoing): void {
    this.#startHold(item, this.#holds.oldest(item.routingKey)?.hold?.reason ?? "unrouted");
    this.#holds.hold(item.routingKey, item);
    this.#observer.unrouted?.(this.heldCount);
  }

  // Starts a response's hold (once: its limit runs from the first time it was not delivered),
  // and lets its caller go.
  #startHold(item: Outgoing, reason: HoldReason): void {
    if (item.hold) {
      item.hold.reason = reason;
    } else {
      const timer = setTimeout(() => this.#expire(item), this.#holdMs);
      item.hold = { reason, since: Date.now(), timer };
      this.#heldCount++;
      this.#heldBytes += item.content.length;
      this.#settledOne();
    }
    // Over the bound, its caller waits (its request keeps its slot) until it is delivered or
    // given up, as every caller did before holds let them go.
    if (this.#heldBytes <= this.#maxHeldBytes) item.settle("held");
  }

  #endHold(item: Outgoing): void {
    if (!item.hold) return;
    clearTimeout(item.hold.timer);
    item.hold = undefined;
    this.#heldCount--;
    this.#heldBytes -= item.content.length;
    this.#observer.unrouted?.(this.heldCount);
  }

  // Its time limit is over: given up wherever it waits; one out is given up when it comes back.
  #expire(item: Outgoing): void {
    if (item.sentOn !== undefined) {
      item.expired = true;
      return;
    }
    if (!this.#holds.remove(item.routingKey, item)) {
      const index = this.#queue.indexOf(item);
      if (index < 0) return;
      this.#queue.splice(index, 1);
    }
    this.#abandon(item);
  }

  #abandon(item: Outgoing): void {
    // A probe given up anywhere (queued, or out on a channel that closed) must not leave its
    // key waiting behind a message that no longer exists: later responses get their try.
    this.#holds.dropProbe(item.routingKey, item);
    const reason = item.hold?.reason;
    const heldMs = item.hold ? Date.now() - item.hold.since : 0;
    this.#endHold(item);
    this.#observer.abandoned?.(1);
    this.#warnings.abandoned.report({
      exchange: this.#exchange,
      routingKey: item.routingKey,
      taskId: item.info.taskId,
      script: item.info.script,
      status: item.info.status,
      reason,
      heldSeconds: Math.round(heldMs / 1000),
    });
    item.fail(
      new UnroutableResponseError("Response given up: not delivered within its time limit"),
    );
    this.#settledOne();
  }

  #tooLarge(item: Outgoing, limit: number | undefined): void {
    this.#holds.dropProbe(item.routingKey, item);
    this.#endHold(item);
    this.#observer.refused?.("too_large");
    this.#warnings.tooLarge.report({
      exchange: this.#exchange,
      routingKey: item.routingKey,
      taskId: item.info.taskId,
      script: item.info.script,
      status: item.info.status,
      bytes: item.content.length,
      limit,
    });
    item.fail(new ResponseTooLargeError(item.content.length, limit));
    this.#settledOne();
  }

  #retry(items: Outgoing[]): void {
    this.#observer.unrouted?.(this.heldCount);
    // First in line: they are older than anything of their key queued since.
    this.#queue = [...items, ...this.#queue];
    this.#pump();
  }

  // The channel closed: what was out on it goes back, first in line, but a refusal of the
  // broker is about one message (too large) or about the exchange (access): neither is sent
  // again at once.
  #channelClosed(channel: ConfirmChannel, error: unknown): void {
    const unconfirmed = [...this.#inFlight.values()].filter((item) => item.sentOn === channel);
    const returned = new Set(unconfirmed.filter((item) => item.returned));
    for (const item of unconfirmed) {
      this.#inFlight.delete(item.id);
      item.sentOn = undefined;
      item.returned = false;
    }
    const probe = this.#refusal?.probe;
    if (this.#refusal) this.#refusal.probe = undefined;
    const tooLarge = sizeRefusal(error);
    if (tooLarge) {
      this.#maxMessageSize = tooLarge.limit;
      // The broker names the size of the message it refused: that one, else the largest.
      const culprit = unconfirmed.find((item) => item.content.length === tooLarge.bytes) ??
        unconfirmed.filter((item) => item.content.length > tooLarge.limit)
          .sort((a, b) => b.content.length - a.content.length)[0];
      if (culprit) {
        // The broker handles a channel's publications in order: those sent before the culprit
        // were routed (a return would have come before the close), only their confirms were
        // lost with the channel. Sent again, each would reach its queue twice.
        const before = unconfirmed.splice(0, unconfirmed.indexOf(culprit) + 1);
        before.pop();
        if (probe === culprit) this.#refusal!.until = performance.now();
        this.#tooLarge(culprit, tooLarge.limit);
        for (const item of before) {
          if (returned.has(item)) this.#undelivered(item, "unrouted");
          else this.#delivered(item);
        }
      }
    }
    const expired = unconfirmed.filter((item) => item.expired);
    this.#queue = [...unconfirmed.filter((item) => !item.expired), ...this.#queue];
    for (const item of expired) this.#abandon(item);
    if (isAccessRefused(error)) {
      this.#accessRefused(errorMessage(error));
    } else if (unconfirmed.length > 0 && !tooLarge) {
      this.#warnings.kept.report({ count: this.#queue.length });
    }
  }

  #accessRefused(error: string): void {
    this.#observer.refused?.("access_refused");
    const tries = (this.#refusal?.tries ?? 0) + 1;
    clearTimeout(this.#refusal?.timer);
    const waitMs = backoffDelay(tries - 1, ACCESS_REFUSED_BACKOFF);
    const refusal: Refusal = {
      error: error.replace(
        /^Channel closed by server: \d+ \(ACCESS-REFUSED\) with message "(.*)"$/,
        "$1",
      ),
      tries,
      until: performance.now() + waitMs,
      probe: undefined,
    };
    // The timer opens the gate itself: a timer may fire a little before the clock says the
    // wait is over, and a pump that found it closed then would leave it closed for good.
    refusal.timer = setTimeout(() => {
      refusal.until = -Infinity;
      this.#pump();
    }, waitMs);
    this.#refusal = refusal;
    this.#warnings.accessRefused.report({
      exchange: this.#exchange,
      error,
      retryInMs: Math.round(waitMs),
    });
    // Everything waiting is held: its callers (task slots) do not wait for the access.
    for (const item of this.#queue) this.#startHold(item, "access_refused");
    this.#observer.unrouted?.(this.heldCount);
  }

  #accessBack(): void {
    clearTimeout(this.#refusal?.timer);
    this.#refusal = undefined;
    this.#warnings.accessRefused.recovered("Responses are published again: write access granted", {
      exchange: this.#exchange,
    });
    for (const item of this.#queue) {
      if (item.hold?.reason === "access_refused" && !this.#holds.waits(item.routingKey, item)) {
        this.#endHold(item);
      }
    }
    queueMicrotask(() => this.#pump());
  }

  #settledOne(): void {
    if (this.#idleWaiters.length === 0) return;
    const waiting = this.#idleWaiters.filter((waiter) => this.#pendingCounting(waiter.held) > 0);
    if (waiting.length === this.#idleWaiters.length) return;
    for (const waiter of this.#idleWaiters) {
      if (!waiting.includes(waiter)) waiter.resolve();
    }
    this.#idleWaiters = waiting;
  }

  /** Stops publishing; what is still queued or held is rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refusal?.timer);
    await this.#channel.close();
    const error = new PublisherClosedError();
    const held = this.#holds.clear();
    const left = [...this.#queue, ...this.#inFlight.values(), ...held];
    const dropped = left.filter((item) => item.hold !== undefined);
    if (dropped.length > 0) {
      this.#log.error("Held responses dropped: the runner stops", {
        count: dropped.length,
        taskIds: [...new Set(dropped.map((item) => item.info.taskId ?? "?"))].slice(0, 20),
      });
    }
    for (const item of left) {
      this.#endHold(item);
      item.fail(error);
    }
    this.#queue = [];
    this.#inFlight.clear();
    this.#observer.unrouted?.(0);
    for (const waiter of this.#idleWaiters.splice(0)) waiter.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// RabbitMQ closes the channel with 406 PRECONDITION_FAILED - "message size 17825792 is larger
// than configured max size 16777216" (or "... than max size ..." at its hard limit).
function sizeRefusal(error: unknown): { bytes: number; limit: number } | undefined {
  const match = /message size (\d+) is larger than (?:configured )?max size (\d+)/.exec(
    errorMessage(error),
  );
  return match ? { bytes: Number(match[1]), limit: Number(match[2]) } : undefined;
}

// 403 ACCESS_REFUSED: the user may not write to the exchange.
function isAccessRefused(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 403 ||
    /ACCESS[-_]REFUSED/.test(errorMessage(error));
}
