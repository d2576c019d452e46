/**
 * Why the broker refused a connection during its AMQP handshake. amqplib names only the frame
 * when the broker closes the connection in answer to `connection.open` (`Expected
 * ConnectionOpenOk; got <ConnectionClose channel:0>`), which is how RabbitMQ says that a vhost
 * does not exist or that the user may not use it; the reason it sends is lost. This asks again
 * with a bare handshake of its own and returns that reason.
 *
 * @module
 */
import type { BrokerEndpoint } from "../config/amqp_url.ts";

const PROTOCOL_HEADER = new Uint8Array([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]); // "AMQP" 0-9-1
const FRAME_METHOD = 1;
const FRAME_END = 0xce;
const CONNECTION = 10;
const START = 10;
const START_OK = 11;
const TUNE = 30;
const TUNE_OK = 31;
const OPEN = 40;
const OPEN_OK = 41;
const CLOSE = 50;

/**
 * Runs a bare AMQP handshake with `endpoint`'s credentials and vhost and returns the reply
 * text of the broker's `connection.close` (`NOT_ALLOWED - vhost x not found`), or undefined
 * when the broker accepted it this time or said nothing.
 *
 * @param endpoint the address, credentials and vhost that were refused
 * @param options time limit of the whole exchange, CA certificates for `amqps://`
 */
export async function handshakeRefusal(
  endpoint: BrokerEndpoint,
  options: { timeoutMs: number; ca?: string[] | undefined },
): Promise<string | undefined> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const address = { hostname: endpoint.hostname, port: endpoint.port, signal };
  let conn: Deno.Conn;
  try {
    conn = endpoint.protocol === "amqps"
      ? await Deno.connectTls({ ...address, ...(options.ca ? { caCerts: options.ca } : {}) })
      : await Deno.connect(address);
  } catch {
    return undefined;
  }
  const onAbort = () => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const frames = readMethods(conn);
    await writeAll(conn, PROTOCOL_HEADER);
    let method = await frames.next();
    if (method.done || method.value.method !== START) return closeReason(method.value);
    const credentials = new TextEncoder().encode(
      `\0${endpoint.username}\0${endpoint.password}`,
    );
    await writeAll(
      conn,
      methodFrame(START_OK, [
        table(),
        shortString("PLAIN"),
        longString(credentials),
        shortString("en_US"),
      ]),
    );
    method = await frames.next();
    if (method.done || method.value.method !== TUNE) return closeReason(method.value);
    const tune = method.value.args;
    // channel-max, frame-max and heartbeat as the broker proposes them, heartbeats off.
    await writeAll(conn, methodFrame(TUNE_OK, [tune.subarray(0, 6), new Uint8Array(2)]));
    await writeAll(
      conn,
      methodFrame(OPEN, [shortString(endpoint.vhost), shortString(""), new Uint8Array(1)]),
    );
    method = await frames.next();
    if (!method.done && method.value.method === OPEN_OK) return undefined;
    return closeReason(method.done ? undefined : method.value);
  } catch {
    return undefined;
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn.close();
    } catch {
      // closed by the time limit
    }
  }
}

interface Method {
  method: number;
  args: Uint8Array;
}

// The reply text of a connection.close; undefined for anything else.
function closeReason(method: Method | undefined): string | undefined {
  if (method?.method !== CLOSE || method.args.length < 3) return undefined;
  const length = method.args[2]!;
  return new TextDecoder().decode(method.args.subarray(3, 3 + length));
}

// The connection-class method frames of channel 0, in order; other frames are skipped.
async function* readMethods(conn: Deno.Conn): AsyncGenerator<Method> {
  let buffer = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  while (true) {
    while (buffer.length >= 7) {
      const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      const size = view.getUint32(3);
      if (buffer.length < 7 + size + 1) break;
      const payload = buffer.subarray(7, 7 + size);
      if (buffer[7 + size] !== FRAME_END) return;
      buffer = buffer.slice(8 + size);
      if (buffer.length === 0) buffer = new Uint8Array(0);
      if (view.getUint8(0) !== FRAME_METHOD || payload.length < 4) continue;
      const ids = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      if (ids.getUint16(0) !== CONNECTION) continue;
      yield { method: ids.getUint16(2), args: payload.subarray(4) };
    }
    const read = await conn.read(chunk);
    if (read === null) return;
    const next = new Uint8Array(buffer.length + read);
    next.set(buffer);
    next.set(chunk.subarray(0, read), buffer.length);
    buffer = next;
  }
}

function methodFrame(method: number, args: Uint8Array[]): Uint8Array {
  const size = 4 + args.reduce((sum, arg) => sum + arg.length, 0);
  const frame = new Uint8Array(7 + size + 1);
  const view = new DataView(frame.buffer);
  view.setUint8(0, FRAME_METHOD);
  view.setUint16(1, 0);
  view.setUint32(3, size);
  view.setUint16(7, CONNECTION);
  view.setUint16(9, method);
  let offset = 11;
  for (const arg of args) {
    frame.set(arg, offset);
    offset += arg.length;
  }
  frame[offset] = FRAME_END;
  return frame;
}

function shortString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text).subarray(0, 255);
  return new Uint8Array([bytes.length, ...bytes]);
}

function longString(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

// An empty field table (the client properties).
function table(): Uint8Array {
  return new Uint8Array(4);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}
