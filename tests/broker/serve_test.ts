import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide, testNames } from "../helpers/broker_harness.ts";
import { behave, eventually, isAlive } from "../helpers/engine.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";
import type { TaskResponse } from "../../src/protocol/response.ts";

const RESPONSE_FIELDS = [
  "additionalProperties",
  "id",
  "output",
  "projectId",
  "requestSHA256",
  "routingKey",
  "script",
  "status",
  "stderr",
  "stdout",
  "useCache",
  "userId",
];

function assertSequence(responses: TaskResponse[], expected: string[]): void {
  const failure = responses.find((response) => response.status === "FAILED");
  assertEquals(
    responses.map((response) => response.status),
    expected,
    failure ? `FAILED with ${JSON.stringify(outputText(failure))}` : undefined,
  );
  for (const response of responses) assertEquals(Object.keys(response).sort(), RESPONSE_FIELDS);
}

/** Opens the server side and a runner on fresh names, and tears both down. */
async function withRunner(
  label: string,
  test: (server: ServerSide) => Promise<void>,
  options: Record<string, unknown> = {},
): Promise<void> {
  const names = testNames(label);
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, options);
  await runner.ready;
  await test(server);
}

Deno.test("serve: success with 5 progress messages gives 7 responses in order", async () => {
  await withRunner("success", async (server) => {
    const input = behave({ progress: 5, stdout: ["working"] });
    const request = makeRequest({ script: fixture("behave.py"), input }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertSequence(responses, [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    assertEquals(responses[0]!.output, null);
    assertEquals(responses.slice(1, 6).map((r) => JSON.parse(outputText(r)).step), [1, 2, 3, 4, 5]);
    assertEquals(outputText(responses[6]), new TextDecoder().decode(input));
    assertEquals(responses[6]!.stdout, "working\n");
    assertEquals(await server.queueDepth(), 0, "the request is acknowledged");
  });
});

Deno.test("serve: a failing task gives RUNNING then FAILED with the reason", async () => {
  await withRunner("failure", async (server) => {
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ exit: 2, stderr: ["model diverged"] }),
    }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertSequence(responses, ["RUNNING", "FAILED"]);
    assertMatch(outputText(responses[1]), /exited with code 2: model diverged/);
    assertEquals(responses[1]!.stderr, "model diverged\n");
  });
});

Deno.test("serve: a script that cannot start gives FAILED only", async (t) => {
  await withRunner("nostart", async (server) => {
    for (
      const [name, script, reason] of [
        ["missing .py", "/nonexistent/model.py", /script file not found/],
        ["not on PATH", "gollm:does-not-exist", /executable not found on PATH/],
      ] as const
    ) {
      await t.step(name, async () => {
        const request = makeRequest({ script }, server.names.routingKey);
        server.publishRequest(request);
        const responses = await server.terminal(request.id);
        assertSequence(responses, ["FAILED"]);
        assertMatch(outputText(responses[0]), reason);
      });
    }
  });
});

Deno.test("serve: cancel while running gives RUNNING, CANCELLING, CANCELLED and kills the group", async () => {
  const pidFile = await Deno.makeTempFile();
  try {
    await withRunner("cancel", async (server) => {
      const request = makeRequest({
        script: fixture("behave.py"),
        input: behave({ grandchild: true, pid_file: pidFile, progress: 1, sleep: 60 }),
      }, server.names.routingKey);
      server.publishRequest(request);
      await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
      await server.cancel(request.id);
      const responses = await server.terminal(request.id);
      assertSequence(responses, ["RUNNING", "RUNNING", "CANCELLING", "CANCELLED"]);
      const grandchild = Number(await Deno.readTextFile(pidFile));
      assert(await eventually(() => !isAlive(grandchild)), "no grandchild survives the cancel");
      assert(
        await eventually(async () => !await server.queueExists(request.id)),
        "the cancellation queue is removed",
      );
    });
  } finally {
    await Deno.remove(pidFile);
  }
});

Deno.test("serve: a task that ignores SIGTERM is killed after the grace period", async () => {
  await withRunner("ignoreterm", async (server) => {
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ ignore_term: true, progress: 1, sleep: 60 }),
    }, server.names.routingKey);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
    const cancelledAt = performance.now();
    await server.cancel(request.id);
    const responses = await server.terminal(request.id);
    assertSequence(responses, ["RUNNING", "RUNNING", "CANCELLING", "CANCELLED"]);
    const took = performance.now() - cancelledAt;
    assert(took >= 250 && took < 5_000, `killed after the 0.3 s grace, took ${took} ms`);
  }, { killGrace: "0.3" });
});

Deno.test("serve: cancel before start gives CANCELLED only and runs nothing", async () => {
  await withRunner("cancelfirst", async (server) => {
    const marker = `${await Deno.makeTempDir()}/ran`;
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ grandchild: true, pid_file: marker }),
    }, server.names.routingKey);
    await server.cancel(request.id, { declareQueue: true });
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertSequence(responses, ["CANCELLED"]);
    assertEquals(
      await Deno.stat(marker).then(() => true, () => false),
      false,
      "the task never ran",
    );
  });
});

Deno.test("serve: a task over its timeout gives FAILED saying it timed out", async () => {
  await withRunner("timeout", async (server) => {
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ sleep: 60 }),
      timeoutMinutes: 0.01,
    }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertSequence(responses, ["RUNNING", "FAILED"]);
    assertMatch(outputText(responses[1]), /timed out after 600 ms/);
  });
});

Deno.test("serve: responses pass every request field back untouched", async () => {
  await withRunner("fields", async (server) => {
    const request = makeRequest({
      script: fixture("echo.sh"),
      input: "x",
      additionalProperties: { nested: { list: [1, "two", null] }, flag: true },
      userId: "user-7",
      projectId: "6f1e2f7a-9c1b-4e0a-8a52-1a2b3c4d5e6f",
      requestSHA256: "abc123",
      useCache: false,
    }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    for (const response of responses) {
      assertEquals(response.id, request.id);
      assertEquals(response.script, request.script as string);
      assertEquals(response.additionalProperties, request.additionalProperties);
      assertEquals(response.userId, "user-7");
      assertEquals(response.projectId, "6f1e2f7a-9c1b-4e0a-8a52-1a2b3c4d5e6f");
      assertEquals(response.requestSHA256, "abc123");
      assertEquals(response.routingKey, server.names.routingKey);
      assertEquals(response.useCache, false);
    }
    assertEquals(responses.at(-1)!.status, "SUCCESS");
  });
});

Deno.test("serve: 32 MiB of input and output cross the broker byte for byte", async () => {
  await withRunner("large", async (server) => {
    const input = new Uint8Array(32 * 1024 * 1024);
    for (let offset = 0; offset < input.length; offset += 65_536) {
      crypto.getRandomValues(input.subarray(offset, offset + 65_536));
    }
    const request = makeRequest({ script: fixture("echo.sh"), input }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id, 60_000);
    assertEquals(responses.at(-1)!.status, "SUCCESS");
    const output = Uint8Array.fromBase64(responses.at(-1)!.output!);
    assertEquals(output.length, input.length);
    assert(output.every((byte, i) => byte === input[i]), "output equals input");
  });
});

Deno.test("serve: malformed messages are rejected and the runner keeps serving", async (t) => {
  await withRunner("malformed", async (server) => {
    await t.step("not JSON", () => server.publishRaw(new TextEncoder().encode("{not json")));
    await t.step(
      "binary garbage",
      () => server.publishRaw(crypto.getRandomValues(new Uint8Array(512))),
    );
    await t.step("valid id and routing key, bad input gets FAILED", async () => {
      const request = makeRequest({ script: fixture("echo.sh") }, server.names.routingKey);
      server.publishRequest({ ...request, input: "***not base64***" });
      const responses = await server.terminal(request.id);
      assertSequence(responses, ["FAILED"]);
      assertMatch(outputText(responses[0]), /input: must be base64/);
    });
    await t.step("missing script gets FAILED naming the field", async () => {
      const request = makeRequest({ script: "x" }, server.names.routingKey);
      delete (request as Record<string, unknown>).script;
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertSequence(responses, ["FAILED"]);
      assertMatch(outputText(responses[0]), /script/);
    });
    await t.step("the next valid request works", async () => {
      const request = makeRequest(
        { script: fixture("echo.sh"), input: "still here" },
        server.names.routingKey,
      );
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertEquals(outputText(responses.at(-1)), "still here");
    });
    assertEquals(await server.queueDepth(), 0, "nothing is requeued forever");
  });
});

Deno.test("serve: a soak of 64 random requests gives each a valid sequence and one terminal response", async () => {
  await withRunner("soak", async (server) => {
    type Kind = "success" | "failure" | "cancelBefore" | "cancelDuring";
    const kinds: Kind[] = ["success", "failure", "cancelBefore", "cancelDuring"];
    const requests = Array.from({ length: 64 }, (_, i) => {
      const kind = kinds[(i * 7 + Math.floor(Math.random() * 4)) % 4]!;
      const options = kind === "success"
        ? { progress: i % 3 }
        : kind === "failure"
        ? { exit: 1 }
        : kind === "cancelDuring"
        ? { progress: 1, sleep: 60 }
        : {};
      const script = kind === "success" && i % 2 === 0 ? fixture("echo.sh") : fixture("behave.py");
      return {
        kind,
        request: makeRequest({ script, input: behave(options) }, server.names.routingKey),
      };
    });
    for (const { kind, request } of requests) {
      if (kind === "cancelBefore") await server.cancel(request.id, { declareQueue: true });
      server.publishRequest(request);
    }
    for (const { kind, request } of requests) {
      if (kind !== "cancelDuring") continue;
      await server.waitFor(() => server.statuses(request.id).length >= 2, 30_000, "progress");
      await server.cancel(request.id);
    }
    for (const { kind, request } of requests) {
      const statuses = (await server.terminal(request.id, 60_000)).map((r) => r.status);
      const terminals = statuses.filter((s) => ["SUCCESS", "FAILED", "CANCELLED"].includes(s));
      assertEquals(terminals.length, 1, `${kind}: ${statuses}`);
      const expected: Record<Kind, RegExp> = {
        success: /^(RUNNING,)+SUCCESS$/,
        failure: /^RUNNING,FAILED$/,
        cancelBefore: /^CANCELLED$/,
        cancelDuring: /^RUNNING,RUNNING,CANCELLING,CANCELLED$/,
      };
      assertMatch(statuses.join(","), expected[kind], kind);
    }
    // Nothing more arrives for any of them.
    const count = server.all.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assertEquals(server.all.length, count);
    assertEquals(await server.queueDepth(), 0);
  }, { concurrency: "16" });
});
