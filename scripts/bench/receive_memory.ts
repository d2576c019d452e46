/**
 * What amqplib itself needs in memory to receive one large message: the benchmark publishes
 * one raw message of the request's size to a private queue, and this script, run as a
 * process of its own (so that nothing else is in its RSS), connects afresh, consumes it and
 * reports its RSS growth: the peak (VmHWM, reset before consuming) after the message arrived,
 * less the RSS before consuming.
 *
 * Usage (from `main.ts`, with `BENCH_AMQP_URL` set):
 *
 *     deno run <perms> scripts/bench/receive_memory.ts <queue>
 *
 * Prints one JSON line: `{ "bytes": <received>, "rssBefore": <bytes>, "peak": <bytes> }`.
 *
 * @module
 */
import amqp from "amqplib";
import { Buffer } from "node:buffer";
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { readMemory, resetPeakRss } from "./proc.ts";

/** What receiving one message cost amqplib, in bytes. */
export interface ReceiveMemory {
  /** The message's size. */
  bytes: number;
  /** RSS before consuming, the connection and channel open. */
  rssBefore: number;
  /** Peak RSS once the message was received (since just before consuming). */
  peak: number;
}

const RECEIVE_TIMEOUT_MS = 120_000;

/**
 * Publishes one message of `bytes` to a private queue, has a fresh process receive it with
 * amqplib, and returns that process's memory figures.
 *
 * @param url the broker
 * @param bytes the message's size (the request's: `makeRequest(...).body.length`)
 */
export async function receiveMemory(url: string, bytes: number): Promise<ReceiveMemory> {
  const model = await amqp.connect(url);
  const queue = `bench-receive-${crypto.randomUUID().slice(0, 8)}`;
  const channel = await model.createConfirmChannel();
  try {
    // Not exclusive: the receiving process has a connection of its own.
    await channel.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });
    channel.sendToQueue(queue, Buffer.alloc(bytes, 0x41));
    await channel.waitForConfirms();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_PERMISSIONS, new URL(import.meta.url).pathname, queue],
      env: { BENCH_AMQP_URL: url },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(RECEIVE_TIMEOUT_MS),
    });
    const { success, stdout } = await child.output();
    if (!success) throw new Error("Receiving the raw message with amqplib failed");
    const result: ReceiveMemory = JSON.parse(new TextDecoder().decode(stdout));
    if (result.bytes !== bytes) throw new Error("The raw message arrived truncated");
    return result;
  } finally {
    await channel.deleteQueue(queue).catch(() => {});
    await model.close().catch(() => {});
  }
}

/** The receiving process: consumes one message from `queue` and prints its memory figures. */
async function receive(queue: string): Promise<ReceiveMemory> {
  const url = Deno.env.get("BENCH_AMQP_URL");
  if (!url) throw new TypeError("BENCH_AMQP_URL is not set");
  const model = await amqp.connect(url);
  try {
    const channel = await model.createChannel();
    await channel.prefetch(1);
    // The peak from here on: not the start-up's.
    if (!await resetPeakRss(Deno.pid)) throw new Error("Cannot reset the peak RSS");
    const { rss: rssBefore } = await readMemory(Deno.pid);
    const content = await new Promise<Buffer>((resolve) => {
      channel.consume(queue, (message) => {
        if (message) resolve(message.content);
      }, { noAck: true });
    });
    const { hwm: peak } = await readMemory(Deno.pid);
    return { bytes: content.length, rssBefore, peak };
  } finally {
    await model.close().catch(() => {});
  }
}

if (import.meta.main) {
  try {
    const [queue] = Deno.args;
    if (!queue) throw new TypeError("Usage: receive_memory.ts <queue>");
    console.log(JSON.stringify(await receive(queue)));
  } catch (error) {
    console.error(`receive_memory: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
