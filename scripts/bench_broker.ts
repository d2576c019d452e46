/**
 * The hmi-server's side of the broker, for the benchmark: publishes requests on the request
 * queue and takes responses from a private queue bound to the response exchange, stamping
 * each on arrival before anything parses it.
 *
 * @module
 */
import amqp from "amqplib";
import type { Channel, ChannelModel } from "amqplib";
import { Buffer } from "node:buffer";
import type { BenchNames } from "./bench_runner.ts";

/** A response as the benchmark sees it. */
export interface BenchResponse {
  id: string;
  status: string;
  output: string | null;
  /** `performance.now()` when the message arrived, before it was parsed. */
  arrivedAt: number;
  /** `performance.now()` when its request was published (after its cancellation queue). */
  publishedAt: number;
}

const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED"]);

interface Tracked {
  responses: BenchResponse[] | undefined;
  publishedAt: number;
  resolve(terminal: BenchResponse): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

/** A request as the hmi-server publishes it. */
export function makeRequest(
  script: string,
  input: Uint8Array,
  routingKey: string,
): { id: string; body: Buffer } {
  const id = crypto.randomUUID();
  const request = {
    id,
    script,
    input: input.length > 0 ? input.toBase64() : null,
    timeoutMinutes: 5,
    additionalProperties: { bench: true },
    userId: "bench",
    projectId: null,
    requestSHA256: null,
    routingKey,
    useCache: false,
    type: "bench",
  };
  return { id, body: Buffer.from(JSON.stringify(request)) };
}

/** The server's connection: requests out, responses in. */
export class ServerSide implements AsyncDisposable {
  readonly names: BenchNames;
  readonly #model: ChannelModel;
  readonly #channel: Channel;
  readonly #tracked = new Map<string, Tracked>();
  #failure: Error | undefined;

  private constructor(names: BenchNames, model: ChannelModel, channel: Channel) {
    this.names = names;
    this.#model = model;
    this.#channel = channel;
  }

  /**
   * Connects, declares the request queue and the response exchange as the server does, and
   * starts taking responses.
   */
  static async open(url: string, names: BenchNames): Promise<ServerSide> {
    // The hmi-server's Java client disables Nagle's algorithm too.
    const model = await amqp.connect(url, { noDelay: true });
    const channel = await model.createChannel();
    const side = new ServerSide(names, model, channel);
    channel.on("error", (error: Error) => side.#fail(error));
    model.on("error", (error: Error) => side.#fail(error));
    await channel.assertExchange(names.responseExchange, "direct", {
      durable: false,
      autoDelete: false,
    });
    await channel.assertExchange(names.cancellationExchange, "direct", {
      durable: false,
      autoDelete: false,
    });
    await channel.assertQueue(names.fullRequestQueue, {
      durable: false,
      exclusive: false,
      autoDelete: false,
    });
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, names.responseExchange, names.routingKey);
    await channel.consume(queue, (message) => {
      if (message) side.#receive(message.content, performance.now());
    }, { noAck: true });
    return side;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const [id, tracked] of this.#tracked) {
      clearTimeout(tracked.timer);
      tracked.reject(error);
      this.#tracked.delete(id);
    }
  }

  #receive(content: Buffer, arrivedAt: number): void {
    const json = JSON.parse(content.toString("utf8"));
    const tracked = this.#tracked.get(json.id);
    if (!tracked) return;
    const response: BenchResponse = {
      id: json.id,
      status: json.status,
      output: json.output,
      arrivedAt,
      publishedAt: tracked.publishedAt,
    };
    tracked.responses?.push(response);
    if (TERMINAL.has(response.status)) {
      clearTimeout(tracked.timer);
      this.#tracked.delete(response.id);
      tracked.resolve(response);
    }
  }

  /**
   * Publishes a request and resolves with its terminal response.
   *
   * @param request from {@linkcode makeRequest}
   * @param options `keep` collects every response of the request in that array; `timeoutMs`
   *   fails the wait
   */
  async send(
    request: { id: string; body: Buffer },
    options: { keep?: BenchResponse[]; timeoutMs?: number } = {},
  ): Promise<BenchResponse> {
    if (this.#failure) throw this.#failure;
    const terminal = new Promise<BenchResponse>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 60_000;
      const timer = setTimeout(() => {
        this.#tracked.delete(request.id);
        reject(new Error(`No terminal response for ${request.id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#tracked.set(request.id, {
        responses: options.keep,
        publishedAt: 0,
        resolve,
        reject,
        timer,
      });
    });
    // As the hmi-server does (TaskService.runTaskAsync): the task's cancellation queue is
    // declared and bound before the request is sent, so that an early cancellation is kept.
    await this.#channel.assertQueue(request.id, {
      durable: false,
      exclusive: false,
      autoDelete: true,
    });
    await this.#channel.bindQueue(request.id, this.names.cancellationExchange, request.id);
    this.#tracked.get(request.id)!.publishedAt = performance.now();
    const writable = this.#channel.sendToQueue(this.names.fullRequestQueue, request.body, {
      contentType: "application/json",
    });
    if (!writable) await new Promise((resolve) => this.#channel.once("drain", resolve));
    return await terminal;
  }

  /** Drops every request still queued (after a failed figure). */
  async purgeRequests(): Promise<void> {
    await this.#channel.purgeQueue(this.names.fullRequestQueue);
  }

  /** Consumers on the request queue: 1 once the runner consumes. */
  async consumerCount(): Promise<number> {
    return (await this.#channel.checkQueue(this.names.fullRequestQueue)).consumerCount;
  }

  /** Deletes the benchmark's queues and exchanges and disconnects. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const timer of [...this.#tracked.values()].map((tracked) => tracked.timer)) {
      clearTimeout(timer);
    }
    this.#tracked.clear();
    try {
      const channel = await this.#model.createChannel();
      channel.on("error", () => {});
      await channel.deleteQueue(this.names.fullRequestQueue).catch(() => {});
      for (const exchange of [this.names.responseExchange, this.names.cancellationExchange]) {
        await channel.deleteExchange(exchange).catch(() => {});
      }
      await channel.close().catch(() => {});
    } finally {
      await this.#model.close().catch(() => {});
    }
  }
}

/**
 * The broker's own floor for a large payload: one message of `requestBytes` and one of
 * `responseBytes`, raw bytes (no JSON, no base64, no runner), each published and consumed
 * through the same RabbitMQ by amqplib, from one connection to another (as the server and
 * the runner each have their own). Returns the seconds of both.
 */
export async function brokerFloor(
  url: string,
  requestBytes: number,
  responseBytes: number,
): Promise<number> {
  const model = await amqp.connect(url);
  const consumerModel = await amqp.connect(url);
  try {
    const channel = await model.createChannel();
    const consumer = await consumerModel.createChannel();
    const { queue } = await consumer.assertQueue("", { exclusive: true, autoDelete: true });
    const received: Array<(size: number) => void> = [];
    await consumer.consume(queue, (message) => {
      if (message) received.shift()?.(message.content.length);
    }, { noAck: true });
    const roundTrip = async (bytes: number) => {
      const body = Buffer.alloc(bytes, 0x41);
      const arrived = new Promise<number>((resolve) => received.push(resolve));
      if (!channel.sendToQueue(queue, body)) {
        await new Promise((resolve) => channel.once("drain", resolve));
      }
      if (await arrived !== bytes) throw new Error("Broker floor: a message arrived truncated");
    };
    const start = performance.now();
    await roundTrip(requestBytes);
    await roundTrip(responseBytes);
    const seconds = (performance.now() - start) / 1_000;
    await channel.close();
    await consumer.close();
    return seconds;
  } finally {
    await model.close().catch(() => {});
    await consumerModel.close().catch(() => {});
  }
}
