/**
 * Builds the connection URL from the configured address and credentials; the credentials go
 * into the URL encoded, whatever characters they hold.
 *
 * @param address `amqp://host:5672` or `amqp://host:5672/vhost`, as `TERARIUM_MQ_ADDRESSES` holds it
 * @param credentials user and password
 */
export function buildAmqpUrl(
  address: string,
  credentials: { username: string; password: string },
  options: { heartbeatSeconds?: number } = {},
): string {
  const url = new URL(address);
  url.username = encodeURIComponent(credentials.username);
  url.password = encodeURIComponent(credentials.password);
  if (options.heartbeatSeconds !== undefined && !url.searchParams.has("heartbeat")) {
    url.searchParams.set("heartbeat", String(options.heartbeatSeconds));
  }
  return url.toString();
}

/** The URL without its password, for logs and errors. */
export function redactAmqpUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<invalid url>";
  }
}
