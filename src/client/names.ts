import { requestQueueName } from "../config/settings.ts";

/**
 * The names the hmi-server and a runner share, seen from the server's side, and the routing
 * key its responses come back with.
 */
export interface ClientNames {
  /** The task family, e.g. `gollm`. */
  requestType: string;
  /** The request queue's base name. */
  requestQueue: string;
  /** `<requestQueue>-<requestType>`: the queue the runner consumes. */
  fullRequestQueue: string;
  responseExchange: string;
  cancellationExchange: string;
  routingKey: string;
}

/**
 * Fresh names, so that a test or a benchmark never meets another run's messages:
 * `<prefix>-request-<label>-<suffix>`, `<prefix>-response-…`, `<prefix>-cancel-…` and
 * `<prefix>-rk-<suffix>`.
 *
 * @param prefix what the names start with, e.g. `test`
 * @param options the request type, and a label put before the random suffix
 */
export function privateNames(
  prefix: string,
  options: { requestType: string; label?: string },
): ClientNames {
  const suffix = crypto.randomUUID().slice(0, 8);
  const tag = options.label === undefined ? suffix : `${options.label}-${suffix}`;
  const requestQueue = `${prefix}-request-${tag}`;
  return {
    requestType: options.requestType,
    requestQueue,
    fullRequestQueue: requestQueueName({ requestQueue, requestType: options.requestType }),
    responseExchange: `${prefix}-response-${tag}`,
    cancellationExchange: `${prefix}-cancel-${tag}`,
    routingKey: `${prefix}-rk-${suffix}`,
  };
}
