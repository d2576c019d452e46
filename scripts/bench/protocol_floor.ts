/**
 * The benchmark's protocol floor: what RabbitMQ must do per task for any runner of this
 * protocol, measured as the broker's CPU while an in-process loop plays both sides and runs no
 * process. The server's side is the benchmark's own ({@linkcode ServerSide}: the task's
 * cancellation queue declared and bound, the request published persistent); the runner's side
 * is plain amqplib with the runner's flags: the request consumed (manual acknowledgement,
 * prefetch = concurrency), the cancellation queue looked up (passive) and consumed, `RUNNING`
 * and `SUCCESS` published (persistent, mandatory, on a confirm channel) to the response
 * exchange, the request acknowledged once `SUCCESS` is confirmed, and the cancellation queue
 * deleted.
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
import { type BenchNames, benchNames, makeRequest, ServerSide } from "./broker.ts";
import { cpuMs } from "./proc.ts";

/** What the protocol loop measured. */
export interface ProtocolFloor {
  tasks: number;
  /** RabbitMQ's CPU per task, in milliseconds. */
  brokerCpuMsPerTask: number;
}

// Unmeasured tasks first: every channel open, the broker's code paths warm.
const WARM_UP = 16;
const TASK_TIMEOUT_MS = 60_000;

/**
 * Runs `tasks` tasks through the protocol loop, `concurrency` at once, on private names, and
 * returns RabbitMQ's CPU per task.
 *
 * @param url the broker
 * @param beam the pid of the RabbitMQ node's Erlang VM (see `brokerPid`)
 * @param script the script named in the requests (never run)
 * @throws when the broker's CPU cannot be read, or a task gets no `SUCCESS`
 */
export async function protocolFloor(
  url: string,
  beam: number,
  options: { tasks: number; concurrency: number; script: string },
): Promise<ProtocolFloor> {
  const names = benchNames();
  await using server = await ServerSide.open(url, names);
  await using runner = await ProtocolRunner.open(url, names, options.concurrency);
  const run = async (count: number) => {
    const requests = Array.from(
      { length: count },
      () => makeRequest(options.script, new TextEncoder().encode("hello"), names.routingKey),
    );
    const terminals = await Promise.race([
      Promise.all(requests.map((request) => server.send(request, { timeoutMs: TASK_TIMEOUT_MS }))),
      runner.failed,
    ]);
    const failed = terminals.find((terminal) => terminal.status !== "SUCCESS");
    if (failed) throw new Error(`Protocol loop: a task ended in ${failed.status}`);
  };
  await run(WARM_UP);
  const before = await cpuMs(beam);
  await run(options.tasks);
  const after = await cpuMs(beam);
  if (before === undefined || after === undefined) {
    throw new Error(`Protocol loop: cannot read the CPU time of RabbitMQ (pid ${beam})`);
  }
  return { tasks: options.tasks, brokerCpuMsPerTask: (after - before) / options.tasks };
}

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

  private constructor(
    model: ChannelModel,
    names: BenchNames,
    channels: { requests: Channel; publisher: ConfirmChannel; watches: Channel[] },
  ) {
    this.#model = model;
    this.#names = names;
    this.#requests = channels.requests;
    this.#publisher = channels.publisher;
    this.#watches = channels.watches;
    this.failed = new Promise((_, reject) => this.#fail = reject);
    this.failed.catch(() => {}); // reported when awaited
  }

  static async open(url: string, names: BenchNames, concurrency: number): Promise<ProtocolRunner> {
    const model = await amqp.connect(url);
    try {
      const requests = await model.createChannel();
      const publisher = await model.createConfirmChannel();
      const watches = await Promise.all(
        Array.from({ length: concurrency }, () => model.createChannel()),
      );
      const runner = new ProtocolRunner(model, names, { requests, publisher, watches });
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
