import { isTerminalStatus, type TaskResponse } from "../protocol/mod.ts";

/** What a {@linkcode ResponseStream} closes once it ends. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * The responses of one routing key, in order, as an async iterable that ends after the first
 * terminal response. Iteration throws when the connection is lost.
 */
export class ResponseStream implements AsyncIterable<TaskResponse> {
  readonly #lost: Promise<Error>;
  readonly #pending: TaskResponse[] = [];
  #source: Closable | undefined;
  #wake: (() => void) | undefined;

  /**
   * @param lost resolves with the reason when the connection is lost
   */
  constructor(lost: Promise<Error>) {
    this.#lost = lost;
  }

  /** @internal the subscription that feeds the stream, closed when the iteration ends */
  attach(source: Closable): void {
    this.#source = source;
  }

  /** @internal takes one response off the queue */
  push(response: TaskResponse): void {
    this.#pending.push(response);
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TaskResponse> {
    const lost = this.#lost.then((error) => {
      throw error;
    });
    lost.catch(() => {}); // awaited below, when it matters
    try {
      while (true) {
        const next = this.#pending.shift();
        if (next) {
          yield next;
          if (isTerminalStatus(next.status)) return;
          continue;
        }
        await Promise.race([new Promise<void>((resolve) => this.#wake = resolve), lost]);
        this.#wake = undefined;
      }
    } finally {
      await this.#source?.close();
    }
  }
}
