import { AMQP_URL, type TestNames } from "./broker_harness.ts";

/** The repository root, where main.ts is. */
export const ROOT = new URL("../..", import.meta.url).pathname;

/** The permission flags of `deno task start`, as the compiled binary has them. */
export const RUN_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

/** The broker address of the tests, without credentials. */
export const BROKER_ADDRESS = (() => {
  const url = new URL(AMQP_URL);
  return `${url.protocol}//${url.host}`;
})();

/** `serve` flags for a test's private names. */
export function serveArgs(names: TestNames, extra: string[] = []): string[] {
  return [
    "serve",
    "--amqp-url",
    BROKER_ADDRESS,
    "--request-type",
    names.requestType,
    "--request-queue",
    names.requestQueue,
    "--response-exchange",
    names.responseExchange,
    "--cancellation-exchange",
    names.cancellationExchange,
    ...extra,
  ];
}

/** The CLI as a child process, its stderr collected line by line. */
export class CliProcess implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stderrDone: Promise<void>;
  readonly #waiters = new Set<() => void>();
  #finished: Promise<{ code: number; stdout: string }> | undefined;

  /**
   * Starts `main.ts` with `args`.
   *
   * @param env the child's whole environment (PATH and HOME are added)
   */
  constructor(args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_FLAGS, "main.ts", ...args],
      cwd: ROOT,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/tmp",
        ...env,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stderrDone = this.#collect();
  }

  /** The child's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  async #collect(): Promise<void> {
    let rest = "";
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      this.lines.push(...parts);
      for (const waiter of this.#waiters) waiter();
    }
    if (rest) this.lines.push(rest);
    for (const waiter of this.#waiters) waiter();
  }

  /** Waits until `count` lines satisfy `predicate`. */
  async waitForLines(
    predicate: (line: string) => boolean,
    count = 1,
    timeoutMs = 15_000,
  ): Promise<void> {
    const enough = () => this.lines.filter(predicate).length >= count;
    if (enough()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`Timed out waiting for log lines; got:\n${this.lines.join("\n")}`));
      }, timeoutMs);
      const check = () => {
        if (!enough()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** Waits for the "Consuming requests" line of `serve`. */
  ready(timeoutMs = 15_000): Promise<void> {
    return this.waitForLines((line) => line.includes("Consuming requests"), 1, timeoutMs);
  }

  /** Sends a signal (ignored once the process is gone). */
  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already exited
    }
  }

  /** Sends SIGTERM and waits for the exit. */
  async stop(): Promise<{ code: number; stdout: string }> {
    this.signal("SIGTERM");
    return await this.finished();
  }

  /** Waits for the exit; returns stdout and the exit code. */
  finished(): Promise<{ code: number; stdout: string }> {
    this.#finished ??= (async () => {
      const [stdout, status] = await Promise.all([
        new Response(this.#child.stdout).text(),
        this.#child.status,
      ]);
      await this.#stderrDone;
      return { code: status.code, stdout };
    })();
    return this.#finished;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
