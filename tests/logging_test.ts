import { assert, assertEquals, assertNotIncludes } from "./helpers/assert.ts";
import { AMQP_URL, makeRequest, ServerSide } from "./helpers/broker_harness.ts";
import { brokerCtl, uniqueNames } from "./helpers/ops_harness.ts";
import { fixture } from "./helpers/serve_harness.ts";
import type { TestNames } from "./helpers/broker_harness.ts";

// Recognisable, and with characters that URL encoding changes, to catch both spellings.
const PASSWORD = "s3cr3t/PASSWORD@xyz";
const SECRET_FORMS = [PASSWORD, encodeURIComponent(PASSWORD)];
const ROOT = new URL("..", import.meta.url).pathname;
const BROKER_ADDRESS = (() => {
  const url = new URL(AMQP_URL);
  return `${url.protocol}//${url.host}`;
})();

/** The CLI as a child process, its stderr collected line by line. */
class CliProcess implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stderrDone: Promise<void>;
  readonly #waiters = new Set<() => void>();

  constructor(args: string[], env: Record<string, string>) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-net",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        "main.ts",
        ...args,
      ],
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stderrDone = this.#collect();
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
  }

  /** Waits until `count` lines satisfy `predicate`. */
  async waitForLines(predicate: (line: string) => boolean, count = 1, timeoutMs = 15_000) {
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

  /** Sends SIGTERM and waits for the exit; returns stdout and the exit code. */
  async stop(): Promise<{ code: number; stdout: string }> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already exited
    }
    return await this.finished();
  }

  #finished: Promise<{ code: number; stdout: string }> | undefined;

  /** Waits for the exit. */
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

function serveArgs(names: TestNames): string[] {
  return [
    "serve",
    "--log-format",
    "json",
    "--request-type",
    names.requestType,
    "--request-queue",
    names.requestQueue,
    "--response-exchange",
    names.responseExchange,
    "--cancellation-exchange",
    names.cancellationExchange,
  ];
}

/** Every line is one JSON object with time, level and msg; returns them parsed. */
function assertJsonLines(lines: string[]): Array<Record<string, unknown>> {
  return lines.filter((line) => line.length > 0).map((line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      throw new Error(`Log line is not JSON: ${line}`);
    }
    assert(typeof entry === "object" && entry !== null && !Array.isArray(entry), line);
    assert(!Number.isNaN(Date.parse(String(entry.time))), `time in ${line}`);
    assert(["debug", "info", "warn", "error"].includes(String(entry.level)), `level in ${line}`);
    assert(typeof entry.msg === "string", `msg in ${line}`);
    return entry;
  });
}

function assertNoSecret(text: string, secrets: string[] = SECRET_FORMS): void {
  for (const secret of secrets) assertNotIncludes(text, secret, "secret in output");
}

Deno.test("logs: JSON lines without the password when the broker refuses the login", async () => {
  const names = uniqueNames("logbad");
  await using cli = new CliProcess(serveArgs(names), {
    TERARIUM_MQ_ADDRESSES: BROKER_ADDRESS,
    TERARIUM_MQ_USERNAME: `no-such-user-${crypto.randomUUID().slice(0, 8)}`,
    TERARIUM_MQ_PASSWORD: PASSWORD,
  });
  await cli.waitForLines((line) => line.includes("Cannot connect to broker"), 2);
  const { code } = await cli.stop();
  assertEquals(code, 0);
  const entries = assertJsonLines(cli.lines);
  const refused = entries.find((entry) =>
    String(entry.msg).startsWith("Cannot connect to broker")
  )!;
  assert(String(refused.error).includes("ACCESS_REFUSED"), JSON.stringify(refused));
  assert(String(refused.url).includes("***"), "the URL is shown redacted");
  assertNoSecret(cli.lines.join("\n"));
});

Deno.test("logs: a real run logs task fields, never the password or a request body", async () => {
  const names = uniqueNames("logok");
  const user = `taskrunner-test-${crypto.randomUUID().slice(0, 8)}`;
  await brokerCtl(["add_user", user, PASSWORD]);
  try {
    await brokerCtl(["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
    await using server = await ServerSide.open(names);
    await using cli = new CliProcess(serveArgs(names), {
      TERARIUM_MQ_ADDRESSES: BROKER_ADDRESS,
      TERARIUM_MQ_USERNAME: user,
      TERARIUM_MQ_PASSWORD: PASSWORD,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    });
    await cli.waitForLines((line) => line.includes("Consuming requests"));

    const bodyMarker = `BODY-MARKER-${crypto.randomUUID()}`;
    const request = makeRequest(
      { script: fixture("echo.sh"), input: bodyMarker, additionalProperties: { bodyMarker } },
      names.routingKey,
    );
    server.publishRequest(request);
    assertEquals((await server.terminal(request.id)).at(-1)?.status, "SUCCESS");
    // Short, so that V8 would quote all of it in its JSON.parse error message.
    const invalidBody = `nope-${crypto.randomUUID().slice(0, 8)}`;
    server.publishRaw(new TextEncoder().encode(invalidBody));
    await cli.waitForLines((line) => line.includes("Rejected invalid request"));
    await cli.waitForLines((line) => line.includes("Task succeeded"));

    const { code } = await cli.stop();
    assertEquals(code, 0);
    const entries = assertJsonLines(cli.lines);
    const succeeded = entries.find((entry) => entry.msg === "Task succeeded")!;
    assertEquals(succeeded.taskId, request.id);
    assertEquals(succeeded.script, fixture("echo.sh"));
    assertEquals(succeeded.status, "SUCCESS");
    assert(typeof succeeded.durationMs === "number", "duration logged");
    assert(entries.some((entry) => entry.msg === "Stopped"), "stopped cleanly");
    assertNoSecret(cli.lines.join("\n"));
    assertNoSecret(cli.lines.join("\n"), [bodyMarker, String(request.input), invalidBody]);
  } finally {
    await brokerCtl(["delete_user", user]).catch(() => {});
  }
});

Deno.test("--help shows no password, even when TERARIUM_MQ_PASSWORD is set", async (t) => {
  for (const args of [["--help"], ["serve", "--help"]]) {
    await t.step(args.join(" "), async () => {
      const cli = new CliProcess(args, { TERARIUM_MQ_PASSWORD: PASSWORD });
      const { code, stdout } = await cli.finished();
      assertEquals(code, 0);
      assert(stdout.includes("Usage"), stdout);
      assertNoSecret(stdout + cli.lines.join("\n"));
    });
  }
});

Deno.test("a bad setting at start-up exits 2 without showing the password", async (t) => {
  const cases: Array<[string, Record<string, string>, string[]]> = [
    ["credentials in a wrong address", {
      TERARIUM_MQ_ADDRESSES: `http://user:${encodeURIComponent(PASSWORD)}@localhost:5672`,
    }, []],
    ["another setting wrong", { TERARIUM_MQ_PASSWORD: PASSWORD }, ["--concurrency", "many"]],
    ["password given as a flag", {}, ["--mq-password", PASSWORD, "--log-level", "loud"]],
  ];
  for (const [label, env, args] of cases) {
    await t.step(label, async () => {
      const cli = new CliProcess(["serve", ...args], env);
      const { code, stdout } = await cli.finished();
      assertEquals(code, 2, cli.lines.join("\n"));
      assert(cli.lines.some((line) => line.includes("Invalid setting")), cli.lines.join("\n"));
      assertNoSecret(stdout + cli.lines.join("\n"));
    });
  }
});
