import {
  buildClientRequest,
  type ClientNames,
  encodeClientRequest,
  namesTopology,
  privateNames,
  type ResponseSubscription,
  SERVER_RESPONSE_EXCHANGE_DURABLE,
  TaskClient,
} from "../../src/client/mod.ts";
import type { TaskResponse } from "../../src/protocol/response.ts";
import { isTerminalStatus } from "../../src/protocol/status.ts";

/** The local test broker. */
export const AMQP_URL = Deno.env.get("TEST_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";

/**
 * The response exchange's flags as the hmi-server declares it (`TaskService`: `new
 * DirectExchange(name, terarium.taskrunner.durable-queues = true, false)`).
 */
export const SERVER_RESPONSE_EXCHANGE = {
  durable: SERVER_RESPONSE_EXCHANGE_DURABLE,
  autoDelete: false,
} as const;

/** Queue and exchange names private to one test. */
export type TestNames = ClientNames;

/** Fresh names, so that tests never see each other's messages. */
export function testNames(label = "t"): TestNames {
  return privateNames("test", { requestType: "fixture", label });
}

/**
 * A request as the hmi-server sends it (its field set and defaults, a one-minute time limit),
 * with any field a test sets, valid or not, put over it.
 */
export function makeRequest(
  fields: { script: string; input?: Uint8Array | string | null } & Record<string, unknown>,
  routingKey: string,
): Record<string, unknown> & { id: string } {
  const { input, ...rest } = fields;
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input ?? null;
  const request = buildClientRequest(
    { script: fields.script, input: bytes, timeoutMs: 60_000, routingKey },
    "fixture",
  );
  return { ...request, ...rest };
}

/**
 * The hmi-server's side of the broker, for tests: the client of `src/client/` on a test's
 * names, with what tests add: every response recorded by task id, waits for a status or a
 * condition, the queues' state, and the faults a test provokes.
 */
export class ServerSide implements AsyncDisposable {
  readonly names: TestNames;
  readonly #client: TaskClient;
  #subscription: ResponseSubscription | undefined;
  readonly #responses = new Map<string, TaskResponse[]>();
  readonly #waiters = new Set<() => void>();
  /** Every response, in arrival order. */
  readonly all: TaskResponse[] = [];

  private constructor(names: TestNames, client: TaskClient) {
    this.names = names;
    this.#client = client;
  }

  /**
   * Connects, declares the response exchange (unless `declareResponseExchange` is false) and
   * collects the responses of the test's routing key.
   */
  static async open(
    names: TestNames,
    options: { declareResponseExchange?: boolean; url?: string } = {},
  ): Promise<ServerSide> {
    const client = await TaskClient.open(options.url ?? AMQP_URL, namesTopology(names));
    const side = new ServerSide(names, client);
    const declare = options.declareResponseExchange ?? true;
    if (declare) await client.declareResponseExchange();
    side.#subscription = await client.subscribe(
      names.routingKey,
      (response) => side.#record(response),
      { bind: declare },
    );
    return side;
  }

  /** Declares the response exchange as the server does, without binding anything to it. */
  async declareResponseExchange(): Promise<void> {
    await this.#client.declareResponseExchange();
  }

  /** Closes the connection and leaves everything on the broker, as a server that goes away. */
  async disconnect(): Promise<void> {
    await this.#client.close();
  }

  /** Binds the response queue (after the exchange exists). */
  async bindResponses(): Promise<void> {
    await this.#subscription?.bind();
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
    await this.#client.useChannel((channel) => channel.deleteExchange(this.names.responseExchange));
  }

  /** Deletes any queue (for test clean-up). */
  async deleteQueue(name: string): Promise<void> {
    await this.#client.deleteAll({ queues: [name], exchanges: [] });
  }

  /** Deletes any exchange (for test clean-up). */
  async deleteExchange(name: string): Promise<void> {
    await this.#client.deleteAll({ queues: [], exchanges: [name] });
  }

  /** Declares the response exchange again and binds the response queue to it. */
  async restoreResponseExchange(): Promise<void> {
    await this.declareResponseExchange();
    await this.bindResponses();
  }

  /** Declares the request queue the way the server does (not durable, not auto-delete). */
  async declareRequestQueue(): Promise<void> {
    await this.#client.declareRequestQueue();
  }

  /** Publishes a request through the default exchange. */
  publishRequest(request: unknown): Promise<void> {
    return this.publishRaw(encodeClientRequest(request));
  }

  /** Publishes any bytes on the request queue. */
  publishRaw(body: Uint8Array): Promise<void> {
    return this.#client.publishRequest(body);
  }

  /** Declares and binds a task's cancellation queue, as the server does before the request. */
  async declareCancellationQueue(id: string): Promise<void> {
    await this.#client.declareCancellationQueue(id);
  }

  /** Publishes a cancellation (an empty message) for a task. */
  async cancel(id: string, options: { declareQueue?: boolean } = {}): Promise<void> {
    // What the server does when it may cancel before the runner has seen the request.
    if (options.declareQueue) await this.#client.declareCancellationQueue(id);
    await this.#client.publishCancellation(id);
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
    return (await this.#client.checkQueue(queue)).messageCount;
  }

  /** Consumers on a queue (the request queue by default). */
  async consumers(queue = this.names.fullRequestQueue): Promise<number> {
    return (await this.#client.checkQueue(queue)).consumerCount;
  }

  /** Whether a queue exists. */
  async queueExists(queue: string): Promise<boolean> {
    return await this.#client.checkQueue(queue).then(() => true, () => false);
  }

  /** Deletes the test's queues and exchanges and disconnects. */
  async [Symbol.asyncDispose](): Promise<void> {
    const { fullRequestQueue, responseExchange, cancellationExchange } = this.names;
    await this.#client.deleteAll({
      queues: [fullRequestQueue, `${fullRequestQueue}.dead-letter`],
      exchanges: [responseExchange, cancellationExchange],
    }).catch(() => {});
    await this.#client.close();
  }
}

/** Decodes a response's base64 output as text. */
export function outputText(response: TaskResponse | undefined): string {
  if (!response?.output) return "";
  return new TextDecoder().decode(Uint8Array.fromBase64(response.output));
}
