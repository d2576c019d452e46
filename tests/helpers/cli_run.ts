/**
 * The `taskrunner` CLI run as a real child process (`deno run main.ts ...`), for the tests of
 * `run`, `submit` and `cancel`.
 *
 * @module
 */
import { AMQP_URL, type TestNames } from "./broker_harness.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

/** How a CLI run ended. */
export interface CliResult {
  code: number;
  stdout: Uint8Array;
  /** stdout as text. */
  text: string;
  stderr: string;
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
    ...extra,
  };
}

/**
 * Runs the CLI to its end.
 *
 * @param args arguments after `main.ts`
 * @param options `stdin` bytes (else stdin is closed), extra environment
 */
export async function runCli(
  args: string[],
  options: { stdin?: Uint8Array; env?: Record<string, string> } = {},
): Promise<CliResult> {
  await using child = new CliChild(args, options);
  return await child.finished();
}

/** The CLI as a running child process whose stdout and stderr lines can be awaited. */
export class CliChild implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Uint8Array[] = [];
  #stderr = "";
  #stdoutText = "";
  #exited = false;
  readonly #waiters = new Set<() => void>();
  readonly #done: Promise<CliResult>;

  constructor(args: string[], options: { stdin?: Uint8Array; env?: Record<string, string> } = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, "main.ts", ...args],
      cwd: ROOT,
      clearEnv: true,
      env: cliEnv(options.env ?? {}),
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
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += text;
        this.#wake();
      }
    })();
    this.#done = (async () => {
      const [status] = await Promise.all([child.status, stdout, stderr, fed]);
      this.#exited = true;
      this.#wake();
      const bytes = concat(this.#stdout);
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

  /** stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** stdout so far, as text. */
  get stdout(): string {
    return this.#stdoutText;
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

  /** Sends a signal to the CLI process. */
  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Waits for the CLI to exit. */
  finished(): Promise<CliResult> {
    return this.#done;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.#done;
  }
}

/** The broker flags of `submit` and `cancel` for a test's private names. */
export function brokerFlags(names: TestNames): string[] {
  const url = new URL(AMQP_URL);
  return [
    "--amqp-url",
    `${url.protocol}//${url.host}`,
    "--mq-username",
    decodeURIComponent(url.username),
    "--mq-password",
    decodeURIComponent(url.password),
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

/** Parses `--json` output: one response object per line. */
export function jsonLines(text: string): Array<Record<string, unknown> & { status: string }> {
  return text.split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A response's base64 `output`, decoded as UTF-8 text. */
export function outputOf(response: Record<string, unknown> | undefined): string {
  const output = response?.output;
  return typeof output === "string" ? new TextDecoder().decode(Uint8Array.fromBase64(output)) : "";
}
