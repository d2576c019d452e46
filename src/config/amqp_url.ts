/**
 * `TERARIUM_MQ_ADDRESSES`, read as Spring Boot reads `spring.rabbitmq.addresses`: a
 * comma-separated list of addresses, each `amqp://` or `amqps://` or bare, with optional
 * `user:password@`, `:port` and `/vhost`. What an address leaves out it takes from the first
 * address (Spring applies the first address's scheme, credentials and vhost to all), then from
 * the settings. Percent-encoding is decoded, as the AMQP URI specification says.
 *
 * @module
 */

/** One address of the list, as written: what it leaves out is `undefined`. */
export interface BrokerAddress {
  /** `true` for `amqps://`, `false` for `amqp://`, `undefined` when bare. */
  tls?: boolean;
  hostname: string;
  port?: number;
  username?: string;
  password?: string;
  vhost?: string;
  /** Connection parameters of the URL query (`heartbeat`, `frameMax`, `channelMax`, `locale`). */
  query: Record<string, string>;
}

/** Where and how to connect: one address with everything filled in. */
export interface BrokerEndpoint {
  protocol: "amqp" | "amqps";
  hostname: string;
  port: number;
  username: string;
  password: string;
  vhost: string;
  heartbeat?: number;
  frameMax?: number;
  channelMax?: number;
  locale?: string;
  /** The address for logs and errors: `amqps://u***:***@host:5671/vhost`. */
  label: string;
}

/** A broker address that cannot be read; the message never holds its password. */
export class BrokerAddressError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "BrokerAddressError";
  }
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const NUMERIC_QUERY = ["heartbeat", "frameMax", "channelMax"] as const;

/**
 * Hides the credentials of every address in a list, whatever they hold (`@`, spaces, quotes).
 *
 * @param text a value of `TERARIUM_MQ_ADDRESSES`, valid or not
 */
export function redactBrokerAddresses(text: string): string {
  return text.split(",").map((entry) =>
    // Greedy: up to the last "@" of the entry, as a password may hold "@" itself.
    entry.replace(/^(\s*(?:[a-z][a-z0-9+.-]*:\/\/)?)([^]*)@/i, (_, start: string, userinfo) => {
      const colon = userinfo.indexOf(":");
      const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
      return `${start}${maskUsername(decodeOrRaw(user))}${colon < 0 ? "" : ":***"}@`;
    })
  ).join(",");
}

/**
 * A broker user's name as every log line and error shows it: its first character, then
 * `***` (`guest` is `g***`), enough to tell configured users apart without writing a name that
 * may also be the password.
 */
export function maskUsername(name: string): string {
  const first = [...name][0];
  return first === undefined ? "***" : `${first}***`;
}

function decodeOrRaw(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Reads a list of broker addresses.
 *
 * @param text `amqp://host:5672`, `amqps://user:pw@host/vhost`, `host1:5672,host2:5672`, ...
 * @throws {BrokerAddressError} naming the address (credentials hidden) and what is wrong
 */
export function parseBrokerAddresses(text: string): BrokerAddress[] {
  const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  if (entries.length === 0) throw new BrokerAddressError("No broker address given");
  return entries.map(parseAddress);
}

function parseAddress(entry: string): BrokerAddress {
  const fail = (why: string) =>
    new BrokerAddressError(
      `Invalid broker address ${JSON.stringify(redactBrokerAddresses(entry))}: ${why}`,
    );
  const scheme = SCHEME.exec(entry)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "amqp" && scheme !== "amqps") {
    throw fail("must be an amqp:// or amqps:// URL, or host[:port]");
  }
  let url: URL;
  try {
    url = new URL(scheme === undefined ? `amqp://${entry}` : entry);
  } catch {
    throw fail("not a URL nor host[:port]");
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") throw fail("no host");
  const address: BrokerAddress = { hostname, query: {} };
  if (scheme !== undefined) address.tls = scheme === "amqps";
  if (url.port !== "") address.port = Number(url.port);
  if (url.username !== "") address.username = decode(url.username, fail);
  if (url.password !== "") address.password = decode(url.password, fail);
  // Spring: `host/` is the vhost "/"; the AMQP URI: `host/%2F` is "/" too.
  if (url.pathname.length > 1) address.vhost = decode(url.pathname.slice(1), fail);
  else if (url.pathname === "/") address.vhost = "/";
  for (const [key, value] of url.searchParams) {
    if ((NUMERIC_QUERY as readonly string[]).includes(key) && !/^\d+$/.test(value)) {
      throw fail(`query parameter ${key} must be a whole number`);
    }
    if ((NUMERIC_QUERY as readonly string[]).includes(key) || key === "locale") {
      address.query[key] ??= value;
    }
  }
  return address;
}

function decode(text: string, fail: (why: string) => Error): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw fail("malformed percent-encoding");
  }
}

/**
 * Every address of the list, completed: an address takes what it leaves out (TLS, user,
 * password, vhost) from the first address, then from `defaults`; the port defaults to 5671
 * with TLS, 5672 without. Tried in order, as Spring does.
 *
 * @param text the value of `TERARIUM_MQ_ADDRESSES`
 * @param defaults the user and password of `TERARIUM_MQ_USERNAME` / `TERARIUM_MQ_PASSWORD`
 * @param options `heartbeatSeconds` for addresses whose query sets none
 * @throws {BrokerAddressError} when an address cannot be read
 */
export function brokerEndpoints(
  text: string,
  defaults: { username: string; password: string },
  options: { heartbeatSeconds?: number } = {},
): BrokerEndpoint[] {
  const addresses = parseBrokerAddresses(text);
  const first = addresses[0]!;
  return addresses.map((address) => {
    const tls = address.tls ?? first.tls ?? false;
    const endpoint: BrokerEndpoint = {
      protocol: tls ? "amqps" : "amqp",
      hostname: address.hostname,
      port: address.port ?? (tls ? 5671 : 5672),
      username: address.username ?? first.username ?? defaults.username,
      password: address.password ?? first.password ?? defaults.password,
      vhost: address.vhost ?? first.vhost ?? "/",
      label: "",
    };
    const heartbeat = address.query.heartbeat ?? options.heartbeatSeconds;
    if (heartbeat !== undefined) endpoint.heartbeat = Number(heartbeat);
    if (address.query.frameMax) endpoint.frameMax = Number(address.query.frameMax);
    if (address.query.channelMax) endpoint.channelMax = Number(address.query.channelMax);
    if (address.query.locale) endpoint.locale = address.query.locale;
    endpoint.label = endpointLabel(endpoint);
    return endpoint;
  });
}

function endpointLabel(endpoint: BrokerEndpoint): string {
  const host = endpoint.hostname.includes(":") ? `[${endpoint.hostname}]` : endpoint.hostname;
  const user = `${encodeURIComponent(maskUsername(endpoint.username))}${
    endpoint.password ? ":***" : ""
  }@`;
  const vhost = endpoint.vhost === "/" ? "" : `/${encodeURIComponent(endpoint.vhost)}`;
  return `${endpoint.protocol}://${user}${host}:${endpoint.port}${vhost}`;
}

/**
 * What amqplib's `connect` takes for an endpoint. The vhost is encoded because amqplib decodes
 * it; the credentials go as they are, never through a URL.
 */
export function connectOptions(endpoint: BrokerEndpoint): Omit<BrokerEndpoint, "label"> {
  const { label: _label, vhost, ...rest } = endpoint;
  return { ...rest, vhost: encodeURIComponent(vhost) };
}
