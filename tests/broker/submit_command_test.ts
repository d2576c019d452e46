import amqp from "amqplib";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { AMQP_URL, outputText, ServerSide, testNames } from "../helpers/broker_harness.ts";
import {
  brokerFlags,
  cancelFlags,
  CliChild,
  jsonLines,
  outputOf,
  runCli,
} from "../helpers/cli_run.ts";
import { behaveJson } from "../helpers/engine.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

const ECHO_PY = new URL("../../examples/tasks/echo_progress.py", import.meta.url).pathname;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A runner on fresh names, with the server side to clean the names up afterwards. */
async function withRunner(
  label: string,
  test: (flags: string[], server: ServerSide) => Promise<void>,
): Promise<void> {
  const names = testNames(label);
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, { killGrace: "1" });
  await runner.ready;
  await test(brokerFlags(names), server);
}

// The log lines of a CLI run, without their time stamps.
function logLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.length > 0);
}

Deno.test("submit --follow prints the full status sequence and the output", async (t) => {
  await withRunner("follow", async (flags) => {
    const input = JSON.stringify({ progress_steps: 2, x: 1 });
    await t.step("as text: status and progress on stderr, output on stdout", async () => {
      const result = await runCli(["submit", ECHO_PY, ...flags, "--follow", "--input-json", input]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.text, input);
      const lines = result.stderr.split("\n").filter((line) => !line.startsWith("[stdout]"));
      assertMatch(lines[0]!, /^QUEUED .*echo_progress\.py \(id [0-9a-f-]{36}, type fixture\)$/);
      assertEquals(lines.slice(1), [
        `RUNNING ${ECHO_PY}`,
        "[progress] 1/2 50% step 1 of 2",
        "[progress] 2/2 100% step 2 of 2",
        "SUCCESS, 26 bytes of output",
        "",
      ]);
      assertMatch(result.stderr, /^\[stdout\] Reading input from input pipe$/m);
    });
    await t.step("as JSON: one response per line", async () => {
      const result = await runCli([
        "submit",
        ECHO_PY,
        ...flags,
        "--follow",
        "--json",
        "--timeout",
        "1.5m",
        "--input-json",
        input,
      ]);
      assertEquals(result.code, 0, result.stderr);
      const responses = jsonLines(result.text);
      assertEquals(responses.map((response) => response.status), [
        "RUNNING",
        "RUNNING",
        "RUNNING",
        "SUCCESS",
      ]);
      const id = responses[0]!.id;
      assertMatch(String(id), UUID);
      assert(responses.every((response) => response.id === id));
      assertMatch(String(responses[0]!.routingKey), /^taskrunner-submit\./);
      assertEquals(outputOf(responses[3]!), input);
    });
  });
});

Deno.test("submit publishes the request the way the hmi-server does", async () => {
  const names = testNames("shape");
  await using server = await ServerSide.open(names);
  const result = await runCli([
    "submit",
    "gollm:embedding",
    ...brokerFlags(names),
    "--timeout",
    "90s",
    "--routing-key",
    names.routingKey,
    "--input-json",
    '{"a":1}',
  ]);
  assertEquals(result.code, 0, result.stderr);
  const id = result.text.trim();
  assertMatch(id, UUID);
  assertEquals(await server.queueDepth(), 1);
  // Read the request back as the runner would get it.
  const model = await amqp.connect(AMQP_URL);
  try {
    const channel = await model.createChannel();
    const message = await channel.get(names.fullRequestQueue, { noAck: true });
    assert(message, "a request on the queue");
    assertEquals(message.properties.contentType, "application/json");
    assertEquals(JSON.parse(message.content.toString("utf8")), {
      id,
      script: "gollm:embedding",
      input: btoa('{"a":1}'),
      timeoutMinutes: 1.5,
      routingKey: names.routingKey,
      additionalProperties: null,
      userId: null,
      projectId: null,
      requestSHA256: null,
      useCache: true,
      type: names.requestType,
    });
    await channel.close();
  } finally {
    await model.close();
  }
});

Deno.test("submit without --follow prints the id; the runner answers on the routing key", async () => {
  await withRunner("nofollow", async (flags, server) => {
    const result = await runCli([
      "submit",
      fixture("echo.sh"),
      ...flags,
      "--routing-key",
      server.names.routingKey,
      "--input-json",
      '"hello"',
    ]);
    assertEquals(result.code, 0, result.stderr);
    const id = result.text.trim();
    const responses = await server.terminal(id);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "SUCCESS"]);
    assertEquals(outputText(responses[1]), '"hello"');
  });
});

Deno.test("submit --follow exits 1 when the task fails", async () => {
  await withRunner("fail", async (flags) => {
    const result = await runCli([
      "submit",
      fixture("behave.py"),
      ...flags,
      "--follow",
      "--input-json",
      behaveJson({ exit: 4, stderr: ["broken"] }),
    ]);
    assertEquals(result.code, 1, result.stderr);
    assertEquals(result.text, "");
    assertMatch(result.stderr, /^\[stderr\] broken$/m);
    // The Java runner's words first (issue 9.8): the output was written before the exit.
    assertMatch(
      result.stderr,
      /^FAILED: Python script exited with non-zero exit code: 4: task ".*behave\.py" exited with code 4: broken$/m,
    );
  });
});

Deno.test("cancel cancels a running task", async (t) => {
  await withRunner("cancel", async (flags, server) => {
    await t.step("through taskrunner cancel <id>", async () => {
      await using follow = new CliChild([
        "submit",
        fixture("behave.py"),
        ...flags,
        "--follow",
        "--json",
        "--input-json",
        behaveJson({ sleep: 60 }),
      ]);
      await follow.waitFor(({ stdout }) => stdout.includes('"status":"RUNNING"'), "RUNNING");
      const id = String(jsonLines(follow.stdout)[0]!.id);
      const cancel = await runCli(["cancel", id, ...cancelFlags(server.names)]);
      assertEquals(cancel.code, 0, cancel.stderr);
      assertMatch(cancel.stderr, /Cancellation received by the task's cancellation queue/);
      const result = await follow.finished();
      assertEquals(result.code, 130, result.stderr);
      assertEquals(jsonLines(result.text).map((response) => response.status), [
        "RUNNING",
        "CANCELLING",
        "CANCELLED",
      ]);
    });
    await t.step("through Ctrl-C on submit --follow", async () => {
      await using follow = new CliChild([
        "submit",
        fixture("behave.py"),
        ...flags,
        "--follow",
        "--input-json",
        behaveJson({ sleep: 60 }),
      ]);
      await follow.waitFor(({ stderr }) => /^RUNNING /m.test(stderr), "RUNNING");
      follow.signal("SIGINT");
      const result = await follow.finished();
      assertEquals(result.code, 130, result.stderr);
      assertMatch(result.stderr, /^CANCELLING$/m);
      assertMatch(result.stderr, /^CANCELLED$/m);
    });
  });
});

Deno.test("submit fails with exit code 1 when the broker cannot be reached", async () => {
  const names = testNames("down");
  const flags = brokerFlags(names);
  flags[1] = "amqp://127.0.0.1:1";
  const result = await runCli(["submit", "x.py", ...flags]);
  assertEquals(result.code, 1);
  assertMatch(result.stderr, /Cannot connect to broker amqp:\/\/g\*\*\*:\*\*\*@127\.0\.0\.1:1/);
});

Deno.test("submit without --follow keeps the responses in a queue that follow shows", async (t) => {
  await withRunner("kept", async (flags, server) => {
    const result = await runCli([
      "submit",
      fixture("echo.sh"),
      ...flags,
      "--input-json",
      '"kept"',
    ]);
    assertEquals(result.code, 0, result.stderr);
    const id = result.text.trim();
    assertMatch(id, UUID);
    const queue = `taskrunner-submit.${id}`;
    assert(
      result.stderr.includes(`Responses are kept in queue "${queue}"`) &&
        result.stderr.includes(`taskrunner follow ${id}`),
      result.stderr,
    );
    assert(!result.stderr.includes("No runner consumes"), result.stderr);
    try {
      await t.step("follow shows them from the first, with the output", async () => {
        const followed = await runCli(["follow", id, ...cancelFlags(server.names)]);
        assertEquals(followed.code, 0, followed.stderr);
        assertEquals(followed.text, '"kept"');
        const lines = logLines(followed.stderr).filter((line) => !line.startsWith("["));
        assertEquals(lines, [`RUNNING ${fixture("echo.sh")}`, "SUCCESS, 6 bytes of output"]);
        assertEquals(server.responses(id), [], "nothing on the test's own routing key");
      });
      await t.step("the queue is gone once followed to the end", async () => {
        assert(!await server.queueExists(queue));
        const again = await runCli(["follow", id, ...cancelFlags(server.names)]);
        assertEquals(again.code, 1);
        assertMatch(
          again.stderr,
          new RegExp(`^taskrunner: No responses kept for task "${id}"`, "m"),
        );
      });
    } finally {
      await server.deleteQueue(queue);
    }
  });
});

Deno.test("submit warns when no runner consumes the request queue", async () => {
  const names = testNames("noconsumer");
  await using server = await ServerSide.open(names);
  const result = await runCli([
    "submit",
    "gollm:embedding",
    ...brokerFlags(names),
    "--routing-key",
    names.routingKey,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertMatch(result.text, /^[0-9a-f-]{36}\n$/);
  const warnings = logLines(result.stderr).filter((line) => line.includes("No runner consumes"));
  assertEquals(warnings.length, 1, result.stderr);
  assertMatch(
    warnings[0]!,
    new RegExp(`No runner consumes queue "${names.fullRequestQueue}": the request waits there`),
  );
  assertEquals(await server.queueDepth(), 1, "the request is published all the same");
});

Deno.test("cancel of an id that nothing runs or waits for says no queue received it", async () => {
  const names = testNames("cancelnone");
  await using _server = await ServerSide.open(names);
  const id = crypto.randomUUID();
  const result = await runCli(["cancel", id, ...cancelFlags(names)]);
  assertEquals(result.code, 1, result.stderr);
  assertEquals(result.text, "");
  // The exchange did not exist yet: cancel declares it (a log line), then reports.
  assertEquals(logLines(result.stderr).filter((line) => !line.includes("Exchange missing")), [
    `taskrunner: No cancellation queue received the cancellation of task "${id}": no runner runs it and no request waits for one (unknown id, or the task has ended; exchange "${names.cancellationExchange}")`,
  ]);
});

Deno.test("cancel of a task the server submitted and no runner took yet is received", async () => {
  const names = testNames("cancelqueued");
  await using server = await ServerSide.open(names);
  const id = crypto.randomUUID();
  await server.declareCancellationQueue(id);
  try {
    const result = await runCli(["cancel", id, ...cancelFlags(names)]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await server.queueDepth(id), 1, "the cancellation waits in the task's queue");
  } finally {
    await server.deleteQueue(id);
  }
});

Deno.test("cancel of an id that is not a UUID exits 2 with one line", async () => {
  const result = await runCli(["cancel", "not-a-task", "--amqp-url", "amqp://127.0.0.1:1"]);
  assertEquals(result.code, 2);
  assertEquals(result.text, "");
  assertEquals(logLines(result.stderr), [
    'taskrunner: Invalid task id "not-a-task": a task id is a UUID',
  ]);
});
