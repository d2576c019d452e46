import amqp from "amqplib";
import type { Channel, ChannelModel } from "amqplib";
import { Buffer } from "node:buffer";
import type { TaskResponse } from "../../src/protocol/response.ts";
import { isTerminalStatus } from "../../src/protocol/status.ts";

/** The local test broker. */
export const AMQP_URL = Deno.env.get("TEST_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";

/**
 * The response exchange's flags as the hmi-server declares it (`TaskService`: `new
 * DirectExchange(name, terarium.taskrunner.durable-queues = true, false)`).
 */
export const SERVER_RESPONSE_EXCHANGE = { durable: true, autoDelete: false } as const;

/** Queue and exchange names private to one test. */
export interface TestNames {
  requestType: string;
  requestQueue: string;
  /** `<requestQueue>-<requestType>`. */
  fullRequestQueue: string;
  responseExchange: string;
  cancellationExchange: string;
  routingKey: string;
}

/** Fresh names, so that tests never see each other's messages. */
export function testNames(label = "t"): TestNames {
  const suffix = crypto.randomUUID().slice(0, 8);
  const requestQueue = `test-request-${label}-${suffix}`;
  return {
    requestType: "fixture",
    requestQueue,
    fullRequestQueue: `${requestQueue}-fixture`,
    responseExchange: `test-response-${label}-${suffix}`,
    cancellationExchange: `test-cancel-${label}-${suffix}`,
    routingKey: `test-rk-${suffix}`,
  };
}

/** A request as the hmi-server sends it, with defaults for what a test does not care about. */
export function makeRequest(
  fields: { script: string; input?: Uint8Array | string | null } & Record<string, unknown>,
  routingKey: string,
): Record<string, unknown> & { id: string } {
  const { input, ...rest } = fields;
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  return {
    id: crypto.randomUUID(),
    timeoutMinutes: 1,
    routingKey,
    type: "fixture",
    ...rest,
    input: bytes ? bytes.toBase64() : null,
  };
}

/**
 * The hmi-server's side of the broker, for tests: publishes requests and cancellations, and
 * collects responses from a private queue bound to the response exchange.
 */
export class ServerSide implements AsyncDisposable {
  readonly names: TestNames;
  readonly #model: ChannelModel;
  readonly #channel: Channel;
  readonly #responseQueue: string;
  readonly #responses = new Map<string, TaskResponse[]>();
  readonly #waiters = new Set<() => void>();
  /** Every response, in arrival order. */
  readonly all: TaskResponse[] = [];

  private constructor(
    names: TestNames,
    model: ChannelModel,
    channel: Channel,
    responseQueue: string,
  ) {
    this.names = names;
    this.#model = model;
    this.#channel = channel;
    this.#responseQueue = responseQueue;
  }

  /** Connects, declares the response exchange and a queue for the responses. */
  static async open(
    names: TestNames,
    options: { declareResponseExchange?: boolean; url?: string } = {},
  ): Promise<ServerSide> {
    const model = await amqp.connect(options.url ?? AMQP_URL);
    model.on("error", () => {}); // a broker stopped by a test: the calls report it
    const channel = await model.createChannel();
    if (options.declareResponseExchange ?? true) {
      await channel.assertExchange(names.responseExchange, "direct", SERVER_RESPONSE_EXCHANGE);
    }
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    const side = new ServerSide(names, model, channel, queue);
    if (options.declareResponseExchange ?? true) await side.bindResponses();
    await channel.consume(queue, (message) => {
      if (!message) return;
      side.#record(JSON.parse(message.content.toString("utf8")));
    }, { noAck: true });
    return side;
  }

  /** Declares the response exchange as the server does, without binding anything to it. */
  async declareResponseExchange(): Promise<void> {
    await this.#channel.assertExchange(
      this.names.responseExchange,
      "direct",
      SERVER_RESPONSE_EXCHANGE,
    );
  }

  /** Closes the connection and leaves everything on the broker, as a server that goes away. */
  async disconnect(): Promise<void> {
    await this.#model.close().catch(() => {});
  }

  /** Binds the response queue (after the exchange exists). */
  async bindResponses(): Promise<void> {
    await this.#channel.bindQueue(
      this.#responseQueue,
      this.names.responseExchange,
      this.names.routingKey,
    );
  }

  #record(response: TaskResponse): void {
    this.all.push(response);
    const id = response.id ?? "";
    const list = this.#responses.get(id) ?? [];
    list.push(response);
    this.#responses.set(id, list);
    for (const waiter of this.#waiters) waiter();
  }

  /** Deletes the response exchange, as an operator's mistake or a broker reset would. */
  async deleteResponseExchange(): Promise<void> {
    await this.#channel.deleteExchange(this.names.responseExchange);
  }

  /** Deletes any exchange (for test clean-up). */
  async deleteExchange(name: string): Promise<void> {
    const channel = await this.#model.createChannel();
    channel.on("error", () => {});
    await channel.deleteExchange(name).catch(() => {});
    await channel.close().catch(() => {});
  }

  /** Declares the response exchange again and binds the response queue to it. */
  async restoreResponseExchange(): Promise<void> {
    await this.#channel.assertExchange(
      this.names.responseExchange,
      "direct",
      SERVER_RESPONSE_EXCHANGE,
    );
    await this.bindResponses();
  }

  /** Declares the request queue the way the server does (not durable, not auto-delete). */
  async declareRequestQueue(): Promise<void> {
    await this.#channel.assertQueue(this.names.fullRequestQueue, {
      durable: false,
      autoDelete: false,
      exclusive: false,
    });
  }

  /** Publishes a request through the default exchange. */
  publishRequest(request: unknown): void {
    this.publishRaw(new TextEncoder().encode(JSON.stringify(request)));
  }

  /** Publishes any bytes on the request queue. */
  publishRaw(body: Uint8Array): void {
    this.#channel.sendToQueue(this.names.fullRequestQueue, Buffer.from(body), {
      contentType: "application/json",
    });
  }

  /** Publishes a cancellation (an empty message) for a task. */
  async cancel(id: string, options: { declareQueue?: boolean } = {}): Promise<void> {
    if (options.declareQueue) {
      // What the server does when it may cancel before the runner has seen the request.
      await this.#channel.assertExchange(this.names.cancellationExchange, "direct", {
        durable: false,
        autoDelete: false,
      });
      await this.#channel.assertQueue(id, { durable: false, exclusive: false, autoDelete: true });
      await this.#channel.bindQueue(id, this.names.cancellationExchange, id);
    }
    this.#channel.publish(this.names.cancellationExchange, id, Buffer.alloc(0));
  }

  /** The responses of one request so far. */
  responses(id: string): TaskResponse[] {
    return this.#responses.get(id) ?? [];
  }

  /** The statuses of one request so far. */
  statuses(id: string): string[] {
    return this.responses(id).map((response) => response.status);
  }

  /** Waits until `predicate` holds (checked on every response), or fails after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 20_000, what = "condition"): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`Timed out waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** Waits for the terminal response of a request and returns all its responses. */
  async terminal(id: string, timeoutMs = 20_000): Promise<TaskResponse[]> {
    await this.waitFor(
      () => this.responses(id).some((response) => isTerminalStatus(response.status)),
      timeoutMs,
      `the terminal response of ${id}`,
    );
    return this.responses(id);
  }

  /** Waits for a response of `id` with `status`. */
  async status(id: string, status: string, timeoutMs = 20_000): Promise<TaskResponse> {
    await this.waitFor(() => this.statuses(id).includes(status), timeoutMs, `${status} for ${id}`);
    return this.responses(id).find((response) => response.status === status)!;
  }

  /** Messages waiting in a queue (the request queue by default). */
  async queueDepth(queue = this.names.fullRequestQueue): Promise<number> {
    return (await this.#checkQueue(queue)).messageCount;
  }

  /** Consumers on a queue (the request queue by default). */
  async consumers(queue = this.names.fullRequestQueue): Promise<number> {
    return (await this.#checkQueue(queue)).consumerCount;
  }

  async #checkQueue(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
    const channel = await this.#model.createChannel();
    try {
      return await channel.checkQueue(queue);
    } finally {
      await channel.close().catch(() => {});
    }
  }

  /** Whether a queue exists. */
  async queueExists(queue: string): Promise<boolean> {
    const channel = await this.#model.createChannel();
    channel.on("error", () => {});
    try {
      await channel.checkQueue(queue);
      return true;
    } catch {
      return false;
    } finally {
      await channel.close().catch(() => {});
    }
  }

  /** Deletes the test's queues and exchanges and disconnects. */
  async [Symbol.asyncDispose](): Promise<void> {
    const channel = await this.#model.createChannel();
    channel.on("error", () => {});
    for (
      const queue of [this.names.fullRequestQueue, `${this.names.fullRequestQueue}.dead-letter`]
    ) {
      await channel.deleteQueue(queue).catch(() => {});
    }
    for (const exchange of [this.names.responseExchange, this.names.cancellationExchange]) {
      await channel.deleteExchange(exchange).catch(() => {});
    }
    await channel.close().catch(() => {});
    await this.#model.close().catch(() => {});
  }
}

/** Decodes a response's base64 output as text. */
export function outputText(response: TaskResponse | undefined): string {
  if (!response?.output) return "";
  return new TextDecoder().decode(Uint8Array.fromBase64(response.output));
}
