import amqp from "amqplib";
import type { ChannelModel } from "amqplib";
import { whenAborted } from "../util/abort.ts";
import { errorMessage } from "../util/async.ts";
import { type BrokerEndpoint, connectOptions, maskUsername } from "../config/amqp_url.ts";
import { corkMuxerPasses } from "./corked_writes.ts";
import { handshakeRefusal } from "./handshake_refusal.ts";

/** How a connection is opened. */
export interface ConnectOptions {
  /** Limit of one attempt on one address, socket and AMQP handshake together. */
  timeoutMs: number;
  /** PEM certificates trusted for `amqps://` instead of the default roots. */
  ca?: string[];
  /** The `connection_name` shown by the broker. */
  connectionName: string;
  /** Gives up at once (the attempt in flight is closed when it ends). */
  signal?: AbortSignal;
  /** Hears of each address that failed before the next is tried. */
  onFailure?: (endpoint: BrokerEndpoint, error: unknown) => void;
}

/** No address of the list took a connection. */
export class BrokerUnreachableError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = "BrokerUnreachableError";
  }
}

/**
 * Opens a connection to one address: rejects when the socket or the AMQP handshake takes
 * longer than `timeoutMs` (a black-holed network accepts TCP and then answers nothing).
 *
 * @param endpoint the address
 * @param options time limit, CA, name, signal
 */
export async function connectEndpoint(
  endpoint: BrokerEndpoint,
  options: ConnectOptions,
): Promise<ChannelModel> {
  const attempt = amqp.connect(connectOptions(endpoint), {
    clientProperties: { connection_name: options.connectionName },
    // amqplib's own socket timeout ends a silent socket; the deadline below covers the rest.
    timeout: options.timeoutMs,
    // Without it, a small frame written while the previous one is unacknowledged waits for the
    // broker's delayed ACK: 40 ms spikes in a task's latency.
    noDelay: true,
    ...(options.ca ? { ca: options.ca } : {}),
  });
  const deadline = AbortSignal.timeout(options.timeoutMs);
  using stopped = whenAborted(
    options.signal ? AbortSignal.any([deadline, options.signal]) : deadline,
  );
  const aborted = stopped.promise.then(() => {
    throw options.signal?.aborted ? options.signal.reason : new Error(
      `No answer to the connection or the AMQP handshake within ${options.timeoutMs} ms`,
    );
  });
  try {
    const model = await Promise.race([attempt, aborted]);
    corkMuxerPasses(model);
    return model;
  } catch (error) {
    // A connection that comes up after all is not wanted any more.
    attempt.then((model) => model.close().catch(() => {}), () => {});
    throw await refusalOf(error, endpoint, options) ?? error;
  }
}

/**
 * The broker refused the login: wrong credentials, a vhost that does not exist or that the
 * user may not use. Retrying will not help until an operator acts.
 */
export class BrokerRefusedError extends Error {
  /** The broker's reason, the user's name masked in it. */
  readonly reason: string;
  constructor(endpoint: BrokerEndpoint, reason: string, options: { cause: unknown }) {
    const user = maskUsername(endpoint.username);
    const masked = endpoint.username.length > 0
      ? reason.replaceAll(endpoint.username, user)
      : reason;
    super(
      `Broker refused user "${user}" on vhost ${JSON.stringify(endpoint.vhost)}: ${masked}`,
      options,
    );
    this.name = "BrokerRefusedError";
    this.reason = masked;
  }
}

// amqplib's words for a refusal: a wrong password is said in full; a missing or forbidden
// vhost only as the frame, whose reason is asked for again.
const LOGIN_REFUSED = /^Handshake terminated by server: \d+ \([A-Z-]+\) with message "(.*)"$/s;
const OPEN_REFUSED = /^Expected ConnectionOpenOk; got <ConnectionClose/;

async function refusalOf(
  error: unknown,
  endpoint: BrokerEndpoint,
  options: ConnectOptions,
): Promise<BrokerRefusedError | undefined> {
  const message = error instanceof Error ? error.message : "";
  const login = LOGIN_REFUSED.exec(message);
  if (login) return new BrokerRefusedError(endpoint, login[1]!, { cause: error });
  if (!OPEN_REFUSED.test(message)) return undefined;
  const reason = await handshakeRefusal(endpoint, { timeoutMs: options.timeoutMs, ca: options.ca });
  return new BrokerRefusedError(
    endpoint,
    reason ?? "the vhost does not exist or the user has no permission on it",
    { cause: error },
  );
}

/**
 * Tries each address in order and returns the first connection made, as Spring does with a
 * list of addresses.
 *
 * @param endpoints the addresses, in order
 * @param options time limit per address, CA, name, signal
 * @throws {BrokerUnreachableError} when no address took a connection (the last error as cause)
 */
export async function connectFirst(
  endpoints: readonly BrokerEndpoint[],
  options: ConnectOptions,
): Promise<{ model: ChannelModel; endpoint: BrokerEndpoint }> {
  let last: unknown = new Error("No broker address given");
  for (const endpoint of endpoints) {
    if (options.signal?.aborted) throw options.signal.reason;
    try {
      return { model: await connectEndpoint(endpoint, options), endpoint };
    } catch (error) {
      if (options.signal?.aborted) throw error;
      last = error;
      options.onFailure?.(endpoint, error);
    }
  }
  const where = endpoints.length === 1
    ? endpoints[0]!.label
    : `any of ${endpoints.map((endpoint) => endpoint.label).join(", ")}`;
  throw new BrokerUnreachableError(`Cannot connect to broker ${where}: ${errorMessage(last)}`, {
    cause: last,
  });
}
