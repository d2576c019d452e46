/**
 * How publishing a response can fail, as the runner must tell the cases apart: declared below
 * the broker and the runner, which both use them (the broker's `ResponsePublisher` throws them
 * through the runner's `ResponseSink` port).
 *
 * @module
 */

/**
 * A response given up: held (undelivered) longer than the publisher's time limit, or not
 * publishable at all. No one will read it.
 */
export class UnroutableResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnroutableResponseError";
  }
}

/** A response larger than the broker accepts (its `max_message_size`). */
export class ResponseTooLargeError extends Error {
  /** The response's size in bytes. */
  readonly bytes: number;
  /** The broker's limit in bytes, when it said. */
  readonly limit: number | undefined;

  constructor(bytes: number, limit: number | undefined) {
    super(
      `Response of ${bytes} bytes is larger than the broker's limit${
        limit === undefined ? "" : ` of ${limit} bytes`
      } (max_message_size)`,
    );
    this.name = "ResponseTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** The publisher was closed before the response reached the broker. */
export class PublisherClosedError extends Error {
  constructor() {
    super("Publisher closed before the broker confirmed the response");
    this.name = "PublisherClosedError";
  }
}
