/**
 * The `taskrunner` CLI run as a real child process (`deno run main.ts ...`), for the tests of
 * `serve`, `run`, `submit` and `cancel`.
 *
 * @module
 */
import { RUN_PERMISSIONS, RUN_V8_FLAGS } from "../../src/permissions.ts";
import { concatBytes } from "../../src/util/bytes.ts";
import { AMQP_URL, type TestNames } from "./broker_harness.ts";
import { TEST_PYTHON } from "./engine.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

// How long disposal waits after SIGTERM before it kills the CLI.
const DISPOSE_GRACE_MS = 10_000;

/** The broker address of the tests, without credentials. */
export const BROKER_ADDRESS = (() => {
  const url = new URL(AMQP_URL);
  return `${url.protocol}//${url.host}`;
})();

/** How a CLI run ended. */
export interface CliResult {
  code: number;
  stdout: Uint8Array;
  /** stdout as text. */
  text: string;
  stderr: string;
}

/** How to start the CLI. */
export interface CliOptions {
  /** Bytes written to stdin, which is then closed; without them stdin is closed from the start. */
  stdin?: Uint8Array;
  /** Environment added to (or overriding) the tests' environment for the CLI. */
  env?: Record<string, string>;
  /** Runs the CLI as this user (the tests must run as root); it needs a DENO_DIR it can read. */
  user?: { uid: number; gid: number };
  /** Directory holding `main.ts` (a copy of the project); the checkout by default. */
  cwd?: string;
}

/** The tests' environment for the CLI: no TERARIUM_* setting leaks in, a short kill grace. */
function cliEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (!key.startsWith("TERARIUM_")) env[key] = value;
  }
  return {
    ...env,
    TERARIUM_TASKRUNNER_WORK_DIR: `${Deno.env.get("TMPDIR") ?? "/tmp"}/taskrunner-cli-test`,
    TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS: "1",
    TERARIUM_TASKRUNNER_PYTHON: TEST_PYTHON,
    ...extra,
  };
}

/**
 * Runs the CLI to its end.
 *
 * @param args arguments after `main.ts`
 * @param options `stdin` bytes, extra environment
 */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  await using child = new CliChild(args, options);
  return await child.finished();
}

/**
 * The CLI as a running child process whose stdout and stderr can be awaited, line by line
 * or as text. Disposal stops it with SIGTERM (SIGKILL if that is not enough) and waits.
 *
 * @example A runner for one test
 * ```ts
 * await using runner = new CliChild(["serve", ...brokerFlags(names)]);
 * await runner.ready();
 * ```
 */
export class CliChild implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Uint8Array[] = [];
  #stdoutText = "";
  #stderr = "";
  readonly #stderrLines: string[] = [];
  #exited = false;
  readonly #waiters = new Set<() => void>();
  readonly #done: Promise<CliResult>;

  /**
   * Starts `main.ts` with `args` and the permissions and V8 flags of `deno task start`.
   *
   * @param args arguments after `main.ts`
   * @param options `stdin` bytes, extra environment
   */
  constructor(args: string[], options: CliOptions = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_PERMISSIONS, ...RUN_V8_FLAGS, "main.ts", ...args],
      cwd: options.cwd ?? ROOT,
      clearEnv: true,
      env: cliEnv(options.env ?? {}),
      ...(options.user ?? {}),
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const fed = options.stdin ? this.#feed(options.stdin) : Promise.resolve();
    const decoder = new TextDecoder();
    const stdout = (async () => {
      for await (const chunk of child.stdout) {
        this.#stdout.push(chunk);
        this.#stdoutText += decoder.decode(chunk, { stream: true });
        this.#wake();
      }
    })();
    const stderr = (async () => {
      let rest = "";
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += text;
        const parts = (rest + text).split("\n");
        rest = parts.pop()!;
        this.#stderrLines.push(...parts);
        this.#wake();
      }
      if (rest) this.#stderrLines.push(rest);
    })();
    this.#done = (async () => {
      const [status] = await Promise.all([child.status, stdout, stderr, fed]);
      this.#exited = true;
      this.#wake();
      const bytes = concatBytes(this.#stdout);
      return { code: status.code, stdout: bytes, text: this.#stdoutText, stderr: this.#stderr };
    })();
  }

  async #feed(bytes: Uint8Array): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    try {
      await writer.write(bytes);
      await writer.close();
    } catch {
      // the CLI exited without reading it all
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
  }

  /** The CLI's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** stdout so far, as text. */
  get stdout(): string {
    return this.#stdoutText;
  }

  /** stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The complete lines of stderr so far (the log of `serve`); the last one too once it exited. */
  get stderrLines(): readonly string[] {
    return this.#stderrLines;
  }

  /**
   * Waits until `predicate` holds on the output so far (checked on every chunk).
   *
   * @throws {Error} with the output so far, when it does not hold within `timeoutMs` or the CLI exits
   */
  async waitFor(
    predicate: (output: { stdout: string; stderr: string }) => boolean,
    what: string,
    timeoutMs = 20_000,
  ): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail("timed out"), timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        reject(
          new Error(
            `Waiting for ${what}: ${why}\nstdout: ${this.#stdoutText}\nstderr: ${this.#stderr}`,
          ),
        );
      };
      const check = () => {
        if (predicate({ stdout: this.#stdoutText, stderr: this.#stderr })) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve();
        } else if (this.#exited) {
          fail("the CLI exited");
        }
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Waits until `count` complete stderr lines satisfy `predicate`; see {@link waitFor}. */
  waitForLines(
    predicate: (line: string) => boolean,
    count = 1,
    timeoutMs = 15_000,
  ): Promise<void> {
    return this.waitFor(
      () => this.#stderrLines.filter(predicate).length >= count,
      `${count} matching stderr line(s)`,
      timeoutMs,
    );
  }

  /** Waits for the "Consuming requests" line of `serve`. */
  ready(timeoutMs = 15_000): Promise<void> {
    return this.waitForLines((line) => line.includes("Consuming requests"), 1, timeoutMs);
  }

  /**
   * Sends a signal to the CLI process.
   *
   * @throws {TypeError} when the CLI has already exited
   */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Sends SIGTERM (unless the CLI has exited) and waits for the exit. */
  async stop(): Promise<CliResult> {
    this.#signalIfRunning("SIGTERM");
    return await this.finished();
  }

  /** Waits for the CLI to exit. */
  finished(): Promise<CliResult> {
    return this.#done;
  }

  #signalIfRunning(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already exited
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const timer = setTimeout(() => this.#signalIfRunning("SIGKILL"), DISPOSE_GRACE_MS);
    try {
      await this.stop();
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The flags naming a test's private request queue and exchanges. */
export function queueFlags(names: TestNames): string[] {
  return [
    "--request-queue",
    names.requestQueue,
    "--request-type",
    names.requestType,
    "--response-exchange",
    names.responseExchange,
    "--cancellation-exchange",
    names.cancellationExchange,
  ];
}

/**
 * The broker flags of `serve`, `submit` and `cancel` for a test's private names: the address
 * (`--amqp-url` first), the credentials, then {@link queueFlags}.
 */
export function brokerFlags(names: TestNames): string[] {
  const url = new URL(AMQP_URL);
  return [
    "--amqp-url",
    BROKER_ADDRESS,
    "--mq-username",
    decodeURIComponent(url.username),
    "--mq-password",
    decodeURIComponent(url.password),
    ...queueFlags(names),
  ];
}

/** The flags of `cancel` for a test's private names: the broker, its cancellation exchange. */
export function cancelFlags(names: TestNames): string[] {
  return [
    ...brokerFlags(names).slice(0, 6),
    "--cancellation-exchange",
    names.cancellationExchange,
  ];
}

/** Parses `--json` output: one response object per line. */
export function jsonLines(text: string): Array<Record<string, unknown> & { status: string }> {
  return text.split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line));
}

/** A response's base64 `output`, decoded as UTF-8 text. */
export function outputOf(response: Record<string, unknown> | undefined): string {
  const output = response?.output;
  return typeof output === "string" ? new TextDecoder().decode(Uint8Array.fromBase64(output)) : "";
}
