import { type Backoff, backoffDelay } from "./connection.ts";

/** Retry delays of unroutable responses: short, so that a server that is back gets them soon. */
export const UNROUTED_BACKOFF: Backoff = { initialMs: 200, maxMs: 5_000 };

/** What {@linkcode RouteHolds} hands back. */
export interface RouteHoldHandlers<T> {
  /** Messages of a key to publish again, oldest first: a probe alone, or those behind it. */
  release(routingKey: string, items: T[]): void;
}

interface Hold<T> {
  items: T[];
  /** The one message out on a try, the others waiting behind it. */
  probe: T | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Messages the broker did not deliver (returned as unroutable: no queue bound for their routing
 * key; or nacked: a queue refused it, as a full `reject-publish` queue does), kept per routing
 * key, in order. After a backoff that grows with each failed try, the oldest goes out alone as
 * a probe; once it is routed the others follow, and if it comes back it waits at the front
 * again. Keys are independent: a routing key no one listens on any more holds up only its own
 * messages, and costs one publication per try. How long a message may be held is its owner's
 * business: {@linkcode RouteHolds.remove} takes one out.
 */
export class RouteHolds<T> implements Disposable {
  readonly #held = new Map<string, Hold<T>>();
  // Failed tries per routing key, for the backoff; forgotten once one of its messages routes.
  readonly #attempts = new Map<string, number>();
  readonly #handlers: RouteHoldHandlers<T>;
  readonly #backoff: Backoff;
  #size = 0;

  /**
   * @param handlers take back messages to publish again
   * @param options `backoff` the delays between tries of one key
   */
  constructor(handlers: RouteHoldHandlers<T>, options: { backoff?: Backoff } = {}) {
    this.#handlers = handlers;
    this.#backoff = options.backoff ?? UNROUTED_BACKOFF;
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
      held.probe = held.items.shift();
      if (held.probe === undefined) {
        // Every message of the key was taken out meanwhile: nothing to try.
        this.#held.delete(routingKey);
        return;
      }
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
    const held = this.#held.get(routingKey);
    if (held && held.probe === item) {
      this.#held.delete(routingKey);
      this.#size -= held.items.length;
      if (held.items.length > 0) this.#handlers.release(routingKey, held.items);
    }
    return this.#attempts.delete(routingKey);
  }

  /**
   * Takes a held message out (given up): the others of its key keep their place and their try.
   *
   * @returns whether it was held (not out as a probe)
   */
  remove(routingKey: string, item: T): boolean {
    const held = this.#held.get(routingKey);
    const index = held?.items.indexOf(item) ?? -1;
    if (!held || index < 0) return false;
    held.items.splice(index, 1);
    this.#size--;
    if (held.items.length === 0 && held.probe === undefined) {
      clearTimeout(held.timer);
      this.#held.delete(routingKey);
      this.#attempts.delete(routingKey);
    }
    return true;
  }

  /**
   * A probe came back and is given up instead of held: the messages behind it get their try.
   */
  dropProbe(routingKey: string, item: T): void {
    const held = this.#held.get(routingKey);
    if (!held || held.probe !== item) return;
    held.probe = undefined;
    if (held.items.length === 0) {
      this.#held.delete(routingKey);
      this.#attempts.delete(routingKey);
      return;
    }
    this.#schedule(routingKey);
  }

  /** The oldest message of a key: its probe out, or the first held. */
  oldest(routingKey: string): T | undefined {
    const held = this.#held.get(routingKey);
    return held?.probe ?? held?.items[0];
  }

  /** Every message held, by key, oldest first (not probes out). */
  items(): T[] {
    return [...this.#held.values()].flatMap((hold) => hold.items);
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
