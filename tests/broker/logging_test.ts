import { assert, assertEquals, assertNotIncludes } from "../helpers/assert.ts";
import { makeRequest, ServerSide } from "../helpers/broker_harness.ts";
import { BROKER_ADDRESS, CliChild, queueFlags } from "../helpers/cli_run.ts";
import { brokerCtl, uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";
import type { TestNames } from "../helpers/broker_harness.ts";

// Recognisable, and with characters that URL encoding changes, to catch both spellings.
const PASSWORD = "s3cr3t/PASSWORD@xyz";
const SECRET_FORMS = [PASSWORD, encodeURIComponent(PASSWORD)];

/** `serve` on a test's private names, logging JSON; the broker comes from the environment. */
function serveArgs(names: TestNames): string[] {
  return ["serve", "--log-format", "json", ...queueFlags(names)];
}

/** Every line is one JSON object with time, level and msg; returns them parsed. */
function assertJsonLines(lines: readonly string[]): Array<Record<string, unknown>> {
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
  await using cli = new CliChild(serveArgs(names), {
    env: {
      TERARIUM_MQ_ADDRESSES: BROKER_ADDRESS,
      TERARIUM_MQ_USERNAME: `no-such-user-${crypto.randomUUID().slice(0, 8)}`,
      TERARIUM_MQ_PASSWORD: PASSWORD,
    },
  });
  await cli.waitForLines((line) => line.includes("Broker refused the login"), 2);
  const { code } = await cli.stop();
  assertEquals(code, 0);
  const entries = assertJsonLines(cli.stderrLines);
  const refused = entries.find((entry) => entry.msg === "Broker refused the login")!;
  assertEquals(refused.level, "error");
  assert(String(refused.reason).includes("ACCESS_REFUSED"), JSON.stringify(refused));
  assert(String(refused.url).includes("***"), "the URL is shown redacted");
  assertNoSecret(cli.stderrLines.join("\n"));
});

Deno.test("logs: a real run logs task fields, never the password or a request body", async () => {
  const names = uniqueNames("logok");
  const user = `taskrunner-test-${crypto.randomUUID().slice(0, 8)}`;
  await brokerCtl(["add_user", user, PASSWORD]);
  try {
    await brokerCtl(["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
    await using server = await ServerSide.open(names);
    await using cli = new CliChild(serveArgs(names), {
      env: {
        TERARIUM_MQ_ADDRESSES: BROKER_ADDRESS,
        TERARIUM_MQ_USERNAME: user,
        TERARIUM_MQ_PASSWORD: PASSWORD,
      },
    });
    await cli.ready();

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
    const entries = assertJsonLines(cli.stderrLines);
    const succeeded = entries.find((entry) => entry.msg === "Task succeeded")!;
    assertEquals(succeeded.taskId, request.id);
    assertEquals(succeeded.script, fixture("echo.sh"));
    assertEquals(succeeded.status, "SUCCESS");
    assert(typeof succeeded.durationMs === "number", "duration logged");
    assert(entries.some((entry) => entry.msg === "Stopped"), "stopped cleanly");
    assertNoSecret(cli.stderrLines.join("\n"));
    assertNoSecret(cli.stderrLines.join("\n"), [bodyMarker, String(request.input), invalidBody]);
  } finally {
    await brokerCtl(["delete_user", user]).catch(() => {});
  }
});

Deno.test("--help shows no password, even when TERARIUM_MQ_PASSWORD is set", async (t) => {
  for (const args of [["--help"], ["serve", "--help"]]) {
    await t.step(args.join(" "), async () => {
      const cli = new CliChild(args, { env: { TERARIUM_MQ_PASSWORD: PASSWORD } });
      const { code, text: stdout } = await cli.finished();
      assertEquals(code, 0);
      assert(stdout.includes("Usage"), stdout);
      assertNoSecret(stdout + cli.stderrLines.join("\n"));
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
      const cli = new CliChild(["serve", ...args], { env });
      const { code, text: stdout } = await cli.finished();
      assertEquals(code, 2, cli.stderrLines.join("\n"));
      assert(
        cli.stderrLines.some((line) => line.includes("Invalid setting")),
        cli.stderrLines.join("\n"),
      );
      assertNoSecret(stdout + cli.stderrLines.join("\n"));
    });
  }
});
