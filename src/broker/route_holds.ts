import { type Backoff, backoffDelay } from "./connection.ts";

/** Retry delays of unroutable responses: short, so that a server that is back gets them soon. */
export const UNROUTED_BACKOFF: Backoff = { initialMs: 200, maxMs: 5_000 };

interface Hold<T> {
  items: T[];
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Messages the broker returned as unroutable (no queue bound for their routing key), kept per
 * routing key, in order, and handed back for another try after a backoff that grows with each
 * failed try of that key. Keys are independent: a routing key no one listens on any more
 * holds up only its own messages.
 */
export class RouteHolds<T> implements Disposable {
  readonly #held = new Map<string, Hold<T>>();
  // Failed tries per routing key, for the backoff; forgotten once one of its messages routes.
  readonly #attempts = new Map<string, number>();
  readonly #release: (routingKey: string, items: T[]) => void;
  readonly #backoff: Backoff;
  #size = 0;

  /**
   * @param release takes back the messages of a key when its delay is over, oldest first
   * @param options `backoff` the delays between tries of one key
   */
  constructor(
    release: (routingKey: string, items: T[]) => void,
    options: { backoff?: Backoff } = {},
  ) {
    this.#release = release;
    this.#backoff = options.backoff ?? UNROUTED_BACKOFF;
  }

  /** Messages held, over all keys. */
  get size(): number {
    return this.#size;
  }

  /** Whether messages of `routingKey` are held: later ones must wait behind them. */
  has(routingKey: string): boolean {
    return this.#held.has(routingKey);
  }

  /**
   * Holds a message after the ones of its key already held.
   *
   * @returns the delay before the key's next try when this began a hold, else undefined
   */
  hold(routingKey: string, item: T): number | undefined {
    this.#size++;
    const held = this.#held.get(routingKey);
    if (held) {
      held.items.push(item);
      return undefined;
    }
    const attempt = this.#attempts.get(routingKey) ?? 0;
    this.#attempts.set(routingKey, attempt + 1);
    const delayMs = backoffDelay(attempt, this.#backoff);
    const timer = setTimeout(() => {
      const hold = this.#held.get(routingKey);
      if (!hold) return;
      this.#held.delete(routingKey);
      this.#size -= hold.items.length;
      this.#release(routingKey, hold.items);
    }, delayMs);
    this.#held.set(routingKey, { items: [item], timer });
    return delayMs;
  }

  /**
   * Notes that a message of `routingKey` was routed.
   *
   * @returns whether the key had failed before (its messages now go through again)
   */
  routed(routingKey: string): boolean {
    return this.#attempts.delete(routingKey);
  }

  /** Stops every retry and gives back every message held, for the caller to settle. */
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
