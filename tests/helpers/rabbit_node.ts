import { freePort } from "./ops_harness.ts";

const decoder = new TextDecoder();

// The package's scripts run the node and the CLI as this user (they share its Erlang cookie):
// the node's directories must be its.
const RABBITMQ_USER = "rabbitmq";
const START_TIMEOUT_SECONDS = 90;

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const { success, stdout, stderr } = await new Deno.Command(command, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = `${decoder.decode(stdout)}${decoder.decode(stderr)}`.trim();
  if (!success) throw new Error(`${command} ${args.join(" ")} failed: ${text}`);
  return text;
}

/**
 * A RabbitMQ node of a test's own, beside the shared one: free ports, its data and logs in a
 * temporary directory, so that a test can stop and restart a broker without disturbing any
 * other test. Starting one takes a few seconds: start one per test file, not per test.
 *
 * @example
 * ```ts
 * await using node = await RabbitNode.start();
 * // ... connect to node.url
 * await node.stop();
 * await node.start();
 * ```
 */
export class RabbitNode implements AsyncDisposable {
  /** The Erlang node name, for `rabbitmqctl -n`. */
  readonly name: string;
  /** The AMQP port. */
  readonly port: number;
  readonly #dir: string;
  readonly #env: Record<string, string>;
  #running = false;
  #server: Deno.ChildProcess | undefined;

  private constructor(dir: string) {
    this.#dir = dir;
    this.port = freePort();
    this.name = `trtest-${crypto.randomUUID().slice(0, 8)}@localhost`;
    this.#env = {
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(freePort()),
      // The machine's own files name the shared node and its port: none of them here.
      RABBITMQ_CONF_ENV_FILE: `${dir}/rabbitmq-env.conf`,
      RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
      RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/enabled_plugins`,
      RABBITMQ_MNESIA_BASE: `${dir}/mnesia`,
      RABBITMQ_LOG_BASE: `${dir}/log`,
      RABBITMQ_PID_FILE: `${dir}/pid`,
      ERL_EPMD_ADDRESS: "127.0.0.1",
    };
  }

  /** Makes and starts a node; resolves once it accepts connections. */
  static async start(): Promise<RabbitNode> {
    const dir = await Deno.makeTempDir({ prefix: "taskrunner-rabbit-" });
    const node = new RabbitNode(dir);
    try {
      await Deno.writeTextFile(`${dir}/rabbitmq-env.conf`, "");
      await Deno.writeTextFile(
        `${dir}/rabbitmq.conf`,
        `listeners.tcp.local = 127.0.0.1:${node.port}\n`,
      );
      await Deno.writeTextFile(`${dir}/enabled_plugins`, "[].\n");
      await run("chown", ["-R", `${RABBITMQ_USER}:${RABBITMQ_USER}`, dir]);
      await node.start();
      return node;
    } catch (error) {
      await node[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** The AMQP URL of the node, with the default user. */
  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** The AMQP URL without credentials, as the runner's `--amqp-url` takes it. */
  get address(): string {
    return `amqp://127.0.0.1:${this.port}`;
  }

  /** Starts the node (again); resolves once its applications run. */
  async start(): Promise<void> {
    await Deno.remove(`${this.#dir}/pid`).catch(() => {});
    // In the foreground, as this process's child: a detached node would be re-parented to this
    // process, which a runner's engine makes a child subreaper, and swept as a task's orphan.
    this.#server = new Deno.Command("rabbitmq-server", {
      env: this.#env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#running = true;
    await run("rabbitmqctl", [
      "-n",
      this.name,
      "wait",
      `${this.#dir}/pid`,
      "--timeout",
      String(START_TIMEOUT_SECONDS),
    ]);
  }

  /** Stops the node, as an outage would; its durable state stays for the next start. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    try {
      await run("rabbitmqctl", ["-n", this.name, "stop"]);
    } catch (error) {
      this.#server?.kill("SIGKILL");
      throw error;
    } finally {
      await this.#server?.status;
      this.#server = undefined;
      this.#running = false;
    }
  }

  /** Runs `rabbitmqctl` against this node. */
  ctl(args: string[]): Promise<string> {
    return run("rabbitmqctl", ["-n", this.name, ...args]);
  }

  /** Stops the node and removes its files. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => {});
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
