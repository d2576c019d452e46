/**
 * The hmi-server's side of the broker, for the benchmark: the client of `src/client/` on the
 * benchmark's names, with what the benchmark adds: each response stamped on arrival before
 * anything parses it, and each request followed to its terminal response.
 *
 * @module
 */
import amqp from "amqplib";
import { Buffer } from "node:buffer";
import {
  buildClientRequest,
  type ClientNames,
  encodeClientRequest,
  namesTopology,
  privateNames,
  TaskClient,
} from "../../src/client/mod.ts";
import type { TaskResponse } from "../../src/protocol/response.ts";
import { isTerminalStatus } from "../../src/protocol/status.ts";

/** Names private to one benchmark run. */
export type BenchNames = ClientNames;

/** Fresh names, so that a benchmark never meets another run's messages. */
export function benchNames(): BenchNames {
  return privateNames("bench", { requestType: "bench" });
}

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

interface Tracked {
  responses: BenchResponse[] | undefined;
  publishedAt: number;
  resolve(terminal: BenchResponse): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

/** A request as the hmi-server publishes it, and its bytes. */
export function makeRequest(
  script: string,
  input: Uint8Array,
  routingKey: string,
): { id: string; body: Uint8Array } {
  const request = buildClientRequest({
    script,
    input: input.length > 0 ? input : null,
    timeoutMs: 5 * 60_000,
    routingKey,
    additionalProperties: { bench: true },
    userId: "bench",
    useCache: false,
  }, "bench");
  return { id: request.id, body: encodeClientRequest(request) };
}

/** The server's connection: requests out, responses in. */
export class ServerSide implements AsyncDisposable {
  readonly names: BenchNames;
  readonly #client: TaskClient;
  readonly #tracked = new Map<string, Tracked>();
  #failure: Error | undefined;
  /** Requests published so far (the strace summary counts calls per task with it). */
  sent = 0;

  private constructor(names: BenchNames, client: TaskClient) {
    this.names = names;
    this.#client = client;
  }

  /**
   * Connects, declares the request queue and the exchanges as the server does, and starts
   * taking responses.
   */
  static async open(url: string, names: BenchNames): Promise<ServerSide> {
    // The hmi-server's Java client disables Nagle's algorithm too.
    const client = await TaskClient.open(url, namesTopology(names), { noDelay: true });
    const side = new ServerSide(names, client);
    client.lost.then((error) => side.#fail(error));
    await client.declareResponseExchange();
    await client.declareCancellationExchange();
    await client.declareRequestQueue();
    await client.subscribe(names.routingKey, (response, arrivedAt) => {
      side.#receive(response, arrivedAt);
    });
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

  #receive(json: TaskResponse, arrivedAt: number): void {
    const tracked = this.#tracked.get(json.id ?? "");
    if (!tracked) return;
    const response: BenchResponse = {
      id: json.id!,
      status: json.status,
      output: json.output,
      arrivedAt,
      publishedAt: tracked.publishedAt,
    };
    tracked.responses?.push(response);
    if (isTerminalStatus(json.status)) {
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
    request: { id: string; body: Uint8Array },
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
    await this.#client.declareCancellationQueue(request.id);
    this.#tracked.get(request.id)!.publishedAt = performance.now();
    this.sent++;
    await this.#client.publishRequest(request.body);
    return await terminal;
  }

  /** Drops every request still queued (after a failed figure). */
  async purgeRequests(): Promise<void> {
    await this.#client.useChannel((channel) => channel.purgeQueue(this.names.fullRequestQueue));
  }

  /** Requests waiting in the request queue (e.g. put back by a runner stopped). */
  async queuedRequests(): Promise<number> {
    return (await this.#client.checkQueue(this.names.fullRequestQueue)).messageCount;
  }

  /** Consumers on the request queue: 1 once the runner consumes. */
  async consumerCount(): Promise<number> {
    return (await this.#client.checkQueue(this.names.fullRequestQueue)).consumerCount;
  }

  /** Deletes the benchmark's queues and exchanges and disconnects. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const timer of [...this.#tracked.values()].map((tracked) => tracked.timer)) {
      clearTimeout(timer);
    }
    this.#tracked.clear();
    const { fullRequestQueue, responseExchange, cancellationExchange } = this.names;
    try {
      await this.#client.deleteAll({
        queues: [fullRequestQueue],
        exchanges: [responseExchange, cancellationExchange],
      });
    } finally {
      await this.#client.close();
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
    // Made before the clock starts: the floor is the broker's time, not the allocation's.
    const bodies = new Map(
      [requestBytes, responseBytes].map((bytes) => [bytes, Buffer.alloc(bytes, 0x41)]),
    );
    const roundTrip = async (bytes: number) => {
      const body = bodies.get(bytes)!;
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
