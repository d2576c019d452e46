import { type Backoff, backoffDelay } from "./connection.ts";

/** Retry delays of unroutable responses: short, so that a server that is back gets them soon. */
export const UNROUTED_BACKOFF: Backoff = { initialMs: 200, maxMs: 5_000 };

/**
 * How long a routing key may stay without a queue while other keys are routed before its
 * messages are given up. The hmi-server binds its queue with a routing key made afresh by each
 * of its processes: once another key is routed, the server is back, and a key still unbound
 * this long after belongs to a server process that is gone and will never read it.
 */
export const UNROUTED_ABANDON_MS = 5 * 60_000;

/** What {@linkcode RouteHolds} hands back. */
export interface RouteHoldHandlers<T> {
  /** Messages of a key to publish again, oldest first: a probe alone, or those behind it. */
  release(routingKey: string, items: T[]): void;
  /** Messages of a key given up: no queue for it while others were routed (see above). */
  abandon(routingKey: string, items: T[]): void;
}

interface Hold<T> {
  /** When the key's first message came back. */
  since: number;
  items: T[];
  /** The one message out on a try, the others waiting behind it. */
  probe: T | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Messages the broker returned as unroutable (no queue bound for their routing key), kept per
 * routing key, in order. After a backoff that grows with each failed try, the oldest goes out
 * alone as a probe; once it is routed the others follow, and if it comes back it waits at the
 * front again. Keys are independent: a routing key no one listens on any more holds up only
 * its own messages, and costs one publication per try. While nothing at all is routed (the
 * server is away) a key is held however long; once other keys are routed, a key still without
 * a queue after `abandonAfterMs` is given up.
 */
export class RouteHolds<T> implements Disposable {
  readonly #held = new Map<string, Hold<T>>();
  // Failed tries per routing key, for the backoff; forgotten once one of its messages routes.
  readonly #attempts = new Map<string, number>();
  readonly #handlers: RouteHoldHandlers<T>;
  readonly #backoff: Backoff;
  readonly #abandonAfterMs: number;
  #lastRoutedAt = -Infinity;
  #size = 0;

  /**
   * @param handlers take back messages to publish again, or to give up
   * @param options `backoff` the delays between tries of one key; `abandonAfterMs` how long a
   * key may stay unroutable while others are routed
   */
  constructor(
    handlers: RouteHoldHandlers<T>,
    options: { backoff?: Backoff; abandonAfterMs?: number } = {},
  ) {
    this.#handlers = handlers;
    this.#backoff = options.backoff ?? UNROUTED_BACKOFF;
    this.#abandonAfterMs = options.abandonAfterMs ?? UNROUTED_ABANDON_MS;
  }

  /** Messages held, over all keys (not a probe while it is out on a try). */
  get size(): number {
    return this.#size;
  }

  /** Whether `item` must wait: messages of its key are held, and it is not their probe. */
  waits(routingKey: string, item: T): boolean {
    const held = this.#held.get(routingKey);
    return held !== undefined && held.probe !== item;
  }

  /**
   * Holds a message: a returned probe goes back to the front and waits for the next try,
   * any other message waits after those of its key.
   *
   * @returns when this scheduled a try: its delay, and how many tries of the key failed before
   */
  hold(routingKey: string, item: T): { retryInMs: number; failedBefore: number } | undefined {
    const held = this.#held.get(routingKey);
    this.#size++;
    if (held && held.probe !== item) {
      held.items.push(item);
      return undefined;
    }
    if (held) {
      held.probe = undefined;
      held.items.unshift(item);
    } else {
      this.#held.set(routingKey, {
        since: performance.now(),
        items: [item],
        probe: undefined,
        timer: undefined,
      });
    }
    return this.#schedule(routingKey);
  }

  #schedule(routingKey: string): { retryInMs: number; failedBefore: number } {
    const failedBefore = this.#attempts.get(routingKey) ?? 0;
    this.#attempts.set(routingKey, failedBefore + 1);
    const retryInMs = backoffDelay(failedBefore, this.#backoff);
    const held = this.#held.get(routingKey)!;
    held.timer = setTimeout(() => {
      held.timer = undefined;
      if (this.#lastRoutedAt - held.since >= this.#abandonAfterMs) {
        this.#held.delete(routingKey);
        this.#attempts.delete(routingKey);
        this.#size -= held.items.length;
        this.#handlers.abandon(routingKey, held.items);
        return;
      }
      held.probe = held.items.shift();
      if (held.probe === undefined) return;
      this.#size--;
      this.#handlers.release(routingKey, [held.probe]);
    }, retryInMs);
    return { retryInMs, failedBefore };
  }

  /**
   * Notes that a message of `routingKey` was routed: after a probe, the messages held behind
   * it are handed back.
   *
   * @returns whether the key had failed before (its messages now go through again)
   */
  routed(routingKey: string, item: T): boolean {
    this.#lastRoutedAt = performance.now();
    const held = this.#held.get(routingKey);
    if (held && held.probe === item) {
      this.#held.delete(routingKey);
      this.#size -= held.items.length;
      if (held.items.length > 0) this.#handlers.release(routingKey, held.items);
    }
    return this.#attempts.delete(routingKey);
  }

  /** Stops every retry and gives back every message held (not probes out), to be settled. */
  clear(): T[] {
    const items = [...this.#held.values()].flatMap((hold) => {
      clearTimeout(hold.timer);
      return hold.items;
    });
    this.#held.clear();
    this.#attempts.clear();
    this.#size = 0;
    return items;
  }

  [Symbol.dispose](): void {
    this.clear();
  }
}
