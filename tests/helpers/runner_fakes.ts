/**
 * Fakes of the broker's side of the {@linkcode Runner} (src/protocol/ports.ts), to test it with no
 * broker: requests handed in by hand, responses and settlements recorded, and each wait an
 * event, never a sleep.
 *
 * @module
 */
import type { TaskResponse } from "../../src/protocol/mod.ts";
import type {
  CancellationSource,
  Delivery,
  ResponseSink,
  TaskCancellation,
} from "../../src/protocol/ports.ts";

/** Things that happen, and promises that resolve once one of them matching a test has. */
export class Events<T> {
  readonly all: T[] = [];
  #waiters: Array<{ match: (event: T) => boolean; resolve: (event: T) => void }> = [];

  /** Records that `event` happened. */
  push(event: T): void {
    this.all.push(event);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.match(event)) return true;
      waiter.resolve(event);
      return false;
    });
  }

  /** Resolves with the first event (past or to come) that matches. */
  when(match: (event: T) => boolean): Promise<T> {
    const past = this.all.find(match);
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }
}

/** One response handed to the sink, and what it answers the runner. */
export interface Sent {
  response: TaskResponse;
  /** Confirms it: the runner's `publish` resolves (as routed, or as held by the sink). */
  confirm(outcome?: "routed" | "held"): void;
  /** Fails it: the runner's `publish` rejects. */
  fail(error: Error): void;
}

/**
 * A response sink that records every response. Each one is confirmed at once, but those whose
 * status `hold` names, which wait for the test to confirm or fail them.
 */
export class FakeSink implements ResponseSink {
  readonly sent = new Events<Sent>();
  readonly #hold: ReadonlySet<string>;

  constructor(options: { hold?: readonly string[] } = {}) {
    this.#hold = new Set(options.hold ?? []);
  }

  publish(_routingKey: string, content: Uint8Array): Promise<"routed" | "held"> {
    const response = JSON.parse(new TextDecoder().decode(content)) as TaskResponse;
    return new Promise((resolve, reject) => {
      this.sent.push({ response, confirm: (outcome = "routed") => resolve(outcome), fail: reject });
      if (!this.#hold.has(response.status)) resolve("routed");
    });
  }

  /** The statuses sent for `id`, in order. */
  statuses(id: string): string[] {
    return this.sent.all.filter((sent) => sent.response.id === id).map((sent) =>
      sent.response.status
    );
  }

  /** Resolves once a response of `id` with `status` was sent (the `nth`, from 1). */
  when(id: string, status: string, nth = 1): Promise<Sent> {
    let seen = 0;
    return this.sent.when((sent) =>
      sent.response.id === id && sent.response.status === status && ++seen === nth
    );
  }
}

/** Cancellation queues by hand: `cancel()` sends one; `cancelFirst()` has one wait already. */
export class FakeCancellations implements CancellationSource {
  /** Task ids watched, in order (one entry per watch). */
  readonly watched: string[] = [];
  /** Task ids whose watch was disposed of. */
  readonly unwatched = new Events<string>();
  readonly #waiting = new Set<string>();
  readonly #controllers = new Map<string, AbortController>();

  watch(taskId: string): Promise<TaskCancellation> {
    this.watched.push(taskId);
    const controller = new AbortController();
    this.#controllers.set(taskId, controller);
    return Promise.resolve({
      cancelledBeforeStart: this.#waiting.has(taskId),
      signal: controller.signal,
      [Symbol.asyncDispose]: () => {
        this.unwatched.push(taskId);
        return Promise.resolve();
      },
    });
  }

  /** A cancellation of `taskId` is waiting before its request arrives. */
  cancelFirst(taskId: string): void {
    this.#waiting.add(taskId);
  }

  /** A cancellation of `taskId` arrives now. */
  cancel(taskId: string): void {
    this.#controllers.get(taskId)?.abort();
  }
}

/** How a delivery was settled. */
export type Settlement =
  | { action: "ack" }
  | { action: "reject"; requeue: boolean }
  | { action: "requeue"; lostRuns: number };

/** A request as the consumer hands it over; records how it is settled. */
export class FakeDelivery implements Delivery {
  readonly settled = new Events<Settlement>();
  readonly redelivered: boolean;
  readonly lostRuns: number;
  /** Tries to requeue it, with the count each carried (whether or not they replaced it). */
  readonly requeueTries: number[] = [];
  #body: Uint8Array;
  readonly #copyWorks: boolean;

  /**
   * @param request the request's JSON fields
   * @param options `copyWorks: false` makes every requeue as a copy fail
   */
  constructor(
    request: Record<string, unknown>,
    options: { redelivered?: boolean; lostRuns?: number; copyWorks?: boolean } = {},
  ) {
    this.#body = new TextEncoder().encode(JSON.stringify(request));
    this.redelivered = options.redelivered ?? false;
    this.lostRuns = options.lostRuns ?? 0;
    this.#copyWorks = options.copyWorks ?? true;
  }

  get body(): Uint8Array {
    return this.#body;
  }

  releaseBody(): void {
    this.#body = new Uint8Array(0);
  }

  get live(): boolean {
    return this.settled.all.length === 0;
  }

  ack(): boolean {
    return this.#settle({ action: "ack" });
  }

  reject(requeue: boolean): boolean {
    return this.#settle({ action: "reject", requeue });
  }

  requeue(lostRuns: number): Promise<boolean> {
    this.requeueTries.push(lostRuns);
    if (!this.#copyWorks) return Promise.resolve(false);
    return Promise.resolve(this.#settle({ action: "requeue", lostRuns }));
  }

  /** Resolves with how it was settled, once it is. */
  outcome(): Promise<Settlement> {
    return this.settled.when(() => true);
  }

  #settle(settlement: Settlement): boolean {
    if (!this.live) return false;
    this.settled.push(settlement);
    return true;
  }
}

/** A request's JSON fields, as the hmi-server sends them. */
export function requestFields(
  script: string,
  input: string,
  fields: Record<string, unknown> = {},
): Record<string, unknown> & { id: string } {
  return {
    id: crypto.randomUUID(),
    script,
    input: new TextEncoder().encode(input).toBase64(),
    timeoutMinutes: 1,
    routingKey: "runner-test",
    ...fields,
  };
}
