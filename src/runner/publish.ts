/**
 * How the runner hands a response to its sink, for a request it runs and for one it rejects.
 *
 * @module
 */

import type { ResponseSink } from "../protocol/ports.ts";
import {
  PublisherClosedError,
  ResponseTooLargeError,
  UnroutableResponseError,
} from "../protocol/publish_errors.ts";
import {
  type EncodableUpdate,
  encodeResponse,
  type ResponseEcho,
  ResponseEncoder,
} from "../protocol/response.ts";

/**
 * Encodes a response to a request and publishes it to the request's routing key.
 *
 * @param sink where responses go
 * @param request the request's fields the response repeats (id, routing key, script…), or the
 * request's encoder, which writes them once for all its responses
 * @param update the response's status and output
 * @param encoded runs once the response is encoded, before it is published
 */
export async function publishResponse(
  sink: ResponseSink,
  request: ResponseEcho | ResponseEncoder,
  update: EncodableUpdate,
  encoded?: () => Promise<void>,
): Promise<"routed" | "held"> {
  // Async, so that a response that cannot be encoded rejects instead of throwing.
  // A lone response (a request refused before it ran) is encoded as it is: an encoder pays off
  // over a request's many responses only.
  const echo = request instanceof ResponseEncoder ? request.echo : request;
  const routingKey = typeof echo.routingKey === "string" ? echo.routingKey : "";
  const content = request instanceof ResponseEncoder
    ? request.encode(update)
    : encodeResponse(request, update);
  await encoded?.();
  return await sink.publish(routingKey, content, {
    ...(typeof echo.id === "string" ? { taskId: echo.id } : {}),
    ...(typeof echo.script === "string" ? { script: echo.script } : {}),
    status: update.status,
  });
}

/** Whether the publisher has logged `error` itself (with a count when it repeats). */
export function publisherLogged(error: unknown): boolean {
  return error instanceof ResponseTooLargeError || error instanceof UnroutableResponseError ||
    error instanceof PublisherClosedError;
}
