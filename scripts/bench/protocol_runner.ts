/**
 * The runner's side of the protocol loop (`protocol_floor.ts`), in a process of its own so that
 * its CPU can be read apart from the benchmark's: plain amqplib doing, for each request, what a
 * runner of this protocol must do with the broker and nothing else (no process is run). Its CPU
 * per task is the broker client's floor: no runner built on amqplib can spend less on a task's
 * broker calls.
 *
 * Usage (from `protocol_floor.ts`):
 *
 *     deno run <perms> scripts/bench/protocol_runner.ts <amqp url> <names as JSON> <concurrency>
 *                                                       [<hold ms>]
 *
 * `hold ms` keeps each request that long between its `RUNNING` and its `SUCCESS`, as a task
 * would: the loop then runs at a runner's pace, which changes what the broker spends per task
 * (its schedulers spin a while after each burst of work).
 * Prints `ready` once it consumes, then works until its standard input closes; a failed broker
 * operation is printed to stderr and ends it with exit code 1.
 *
 * @module
 */
import amqp from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";
import { Buffer } from "node:buffer";
import {
  buildTaskResponse,
  encodeTaskResponse,
  type ResponseEcho,
} from "../../src/protocol/mod.ts";
import type { BenchNames } from "./broker.ts";

/** The runner's side of the protocol, with no task: its broker operations only. */
class ProtocolRunner implements AsyncDisposable {
  /** Rejects with the first failed broker operation. */
  readonly failed: Promise<never>;
  #fail: (error: unknown) => void = () => {};
  readonly #model: ChannelModel;
  readonly #names: BenchNames;
  readonly #requests: Channel;
  readonly #publisher: ConfirmChannel;
  // A channel answers one call at a time: one per task running at once, as the runner has.
  readonly #watches: Channel[];
  #nextWatch = 0;
  /** How long each request is held between its `RUNNING` and its `SUCCESS`, in ms. */
  readonly #holdMs: number;

  private constructor(
    model: ChannelModel,
    names: BenchNames,
    channels: { requests: Channel; publisher: ConfirmChannel; watches: Channel[] },
    holdMs: number,
  ) {
    this.#model = model;
    this.#holdMs = holdMs;
    this.#names = names;
    this.#requests = channels.requests;
    this.#publisher = channels.publisher;
    this.#watches = channels.watches;
    this.failed = new Promise((_, reject) => this.#fail = reject);
    this.failed.catch(() => {}); // reported when awaited
  }

  static async open(
    url: string,
    names: BenchNames,
    options: { concurrency: number; holdMs: number },
  ): Promise<ProtocolRunner> {
    const { concurrency, holdMs } = options;
    const model = await amqp.connect(url);
    try {
      const requests = await model.createChannel();
      const publisher = await model.createConfirmChannel();
      const watches = await Promise.all(
        Array.from({ length: concurrency }, () => model.createChannel()),
      );
      const runner = new ProtocolRunner(model, names, { requests, publisher, watches }, holdMs);
      await requests.prefetch(concurrency);
      await requests.consume(names.fullRequestQueue, (message) => {
        if (message) runner.#run(message).catch((error) => runner.#fail(error));
      }, { noAck: false });
      return runner;
    } catch (error) {
      await model.close().catch(() => {});
      throw error;
    }
  }

  async #run(message: ConsumeMessage): Promise<void> {
    const request = JSON.parse(message.content.toString("utf8")) as ResponseEcho & { id: string };
    const watch = this.#watches[this.#nextWatch++ % this.#watches.length]!;
    await watch.checkQueue(request.id);
    const consumed = watch.consume(request.id, () => {}, { noAck: true });
    const running = this.#publish(request, "RUNNING");
    if (this.#holdMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#holdMs));
    await this.#publish(request, "SUCCESS");
    await running;
    this.#requests.ack(message);
    await consumed;
    await watch.deleteQueue(request.id);
  }

  #publish(request: ResponseEcho, status: "RUNNING" | "SUCCESS"): Promise<void> {
    const body = encodeTaskResponse(buildTaskResponse(request, { status }));
    return new Promise((resolve, reject) => {
      this.#publisher.publish(
        this.#names.responseExchange,
        this.#names.routingKey,
        Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        {
          contentType: "text/plain",
          contentEncoding: "UTF-8",
          persistent: true,
          mandatory: true,
        },
        (error: unknown) => error ? reject(error) : resolve(),
      );
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#model.close().catch(() => {});
  }
}

async function main(): Promise<void> {
  const [url, namesJson, concurrency, holdMs] = Deno.args;
  if (!url || !namesJson || !concurrency) {
    throw new TypeError("Usage: protocol_runner.ts <amqp url> <names as JSON> <concurrency>");
  }
  await using runner = await ProtocolRunner.open(url, JSON.parse(namesJson), {
    concurrency: Number(concurrency),
    holdMs: Number(holdMs ?? 0),
  });
  console.log("ready");
  // Until the benchmark closes our standard input.
  const stdinClosed = (async () => {
    for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
  })();
  await Promise.race([stdinClosed, runner.failed]);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`protocol_runner: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
