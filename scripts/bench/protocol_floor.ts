/**
 * The benchmark's protocol floor: what RabbitMQ must do per task for any runner of this
 * protocol, measured as the broker's CPU while an in-process loop plays both sides and runs no
 * process. The server's side is the benchmark's own ({@linkcode ServerSide}: the task's
 * cancellation queue declared and bound, the request published persistent); the runner's side
 * is plain amqplib with the runner's flags: the request consumed (manual acknowledgement,
 * prefetch = concurrency), the cancellation queue looked up (passive) and consumed, `RUNNING`
 * and `SUCCESS` published (persistent, mandatory, on a confirm channel) to the response
 * exchange, the request acknowledged once `SUCCESS` is confirmed, and the cancellation queue
 * deleted. That side runs in a process of its own (`protocol_runner.ts`), whose CPU is read
 * too: the broker client's floor.
 *
 * @module
 */
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import {
  type BenchNames,
  benchNames,
  type BenchResponse,
  makeRequest,
  ServerSide,
} from "./broker.ts";
import { cpuMs } from "./proc.ts";

/** What the protocol loop measured. */
export interface ProtocolFloor {
  tasks: number;
  /** RabbitMQ's CPU per task, in milliseconds. */
  brokerCpuMsPerTask: number;
  /** The runner side's own CPU per task (amqplib doing the broker calls alone), in ms. */
  clientCpuMsPerTask: number;
}

// Unmeasured tasks first: every channel open, the broker's code paths warm.
const WARM_UP = 16;
const TASK_TIMEOUT_MS = 60_000;

/**
 * Runs `tasks` tasks through the protocol loop, `concurrency` at once, on private names, and
 * returns RabbitMQ's CPU per task and the runner side's.
 *
 * @param url the broker
 * @param beam the pid of the RabbitMQ node's Erlang VM (see `brokerPid`)
 * @param script the script named in the requests (never run)
 * @param holdMs how long the runner side holds each request, as a task would (default 0)
 * @throws when a CPU time cannot be read, or a task gets no `SUCCESS`
 */
export async function protocolFloor(
  url: string,
  beam: number,
  options: { tasks: number; concurrency: number; script: string; holdMs?: number },
): Promise<ProtocolFloor> {
  const names = benchNames();
  await using server = await ServerSide.open(url, names);
  await using runner = await RunnerSide.spawn(url, names, options.concurrency, options.holdMs);
  const run = async (count: number) => {
    await Promise.all(
      Array.from({ length: count }, () => sendOne(server, runner, options.script)),
    );
  };
  await run(WARM_UP);
  const before = [await cpuMs(beam), await cpuMs(runner.pid)];
  await run(options.tasks);
  const after = [await cpuMs(beam), await cpuMs(runner.pid)];
  const [broker, client] = before.map((value, i) =>
    value === undefined || after[i] === undefined ? undefined : (after[i]! - value) / options.tasks
  );
  if (broker === undefined || client === undefined) {
    throw new Error(`Protocol loop: cannot read the CPU time of RabbitMQ or of its runner side`);
  }
  return { tasks: options.tasks, brokerCpuMsPerTask: broker, clientCpuMsPerTask: client };
}

/**
 * The protocol's own latency: `count` requests one after another through the protocol loop
 * (its runner side consuming one at a time), each from its publication to its `SUCCESS`'s
 * arrival, after as many unmeasured; in milliseconds. What no runner of this protocol can
 * add less than to a task's own time.
 *
 * @param url the broker
 * @param options how many requests, and the script they name (never run)
 */
export async function protocolLatency(
  url: string,
  options: { count: number; script: string },
): Promise<number[]> {
  const names = benchNames();
  await using server = await ServerSide.open(url, names);
  await using runner = await RunnerSide.spawn(url, names, 1);
  const samples: number[] = [];
  for (let i = -options.count; i < options.count; i++) {
    const terminal = await sendOne(server, runner, options.script);
    if (i >= 0) samples.push(terminal.arrivedAt - terminal.publishedAt);
  }
  return samples;
}

/** One request through the loop: its terminal response, which must be `SUCCESS`. */
async function sendOne(
  server: ServerSide,
  runner: RunnerSide,
  script: string,
): Promise<BenchResponse> {
  const request = makeRequest(script, new TextEncoder().encode("hello"), server.names.routingKey);
  const terminal = await Promise.race([
    server.send(request, { timeoutMs: TASK_TIMEOUT_MS }),
    runner.failed,
  ]);
  if (terminal.status !== "SUCCESS") {
    throw new Error(`Protocol loop: a task ended in ${terminal.status}`);
  }
  return terminal;
}

/** `protocol_runner.ts` as a subprocess: consuming once spawned, stopped on dispose. */
class RunnerSide implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: ReadableStreamDefaultReader<string>;
  /** Rejects if the process ends before it is stopped. */
  readonly failed: Promise<never>;
  #stopping = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.failed = child.status.then((status) => {
      if (this.#stopping) return new Promise<never>(() => {});
      throw new Error(`Protocol loop: its runner side exited (code ${status.code})`);
    });
    this.failed.catch(() => {}); // reported when awaited
  }

  get pid(): number {
    return this.#child.pid;
  }

  static async spawn(
    url: string,
    names: BenchNames,
    concurrency: number,
    holdMs = 0,
  ): Promise<RunnerSide> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        new URL("./protocol_runner.ts", import.meta.url).pathname,
        url,
        JSON.stringify(names),
        String(concurrency),
        String(holdMs),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const side = new RunnerSide(child);
    try {
      let seen = "";
      while (!seen.includes("ready\n")) {
        const { value, done } = await Promise.race([side.#stdout.read(), side.failed]);
        if (done) throw new Error("Protocol loop: its runner side ended before it was ready");
        seen += value;
      }
    } catch (error) {
      child.kill("SIGKILL");
      await side[Symbol.asyncDispose]();
      throw error;
    }
    return side;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stopping = true;
    await this.#child.stdin.close().catch(() => {});
    await this.#child.status;
    await this.#stdout.cancel().catch(() => {});
  }
}
