import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { behave, eventually } from "../helpers/engine.ts";
import { brokerCtl, uniqueNames } from "../helpers/ops_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

const DEFAULT_CONSUMER_TIMEOUT_MS = 1_800_000;

async function setConsumerTimeout(ms: number): Promise<void> {
  await brokerCtl(["eval", `application:set_env(rabbit, consumer_timeout, ${ms}).`]);
}

// RabbitMQ checks acknowledgement timeouts about once a minute, so this test takes that long:
// it is the one real proof that a task outliving consumer_timeout is carried through.
Deno.test("a task outliving the broker's consumer_timeout runs on, once, and its request is acknowledged", async () => {
  const names = uniqueNames("ctimeout");
  const dir = await Deno.makeTempDir();
  const [runLog, release] = [`${dir}/runs`, `${dir}/release`];
  // Channels read the timeout when they open: set it before the runner connects.
  await setConsumerTimeout(1_000);
  try {
    await using server = await ServerSide.open(names);
    await using runner = startRunner(names);
    await runner.ready;
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ progress: 1, run_log: runLog, wait_file: release }),
      timeoutMinutes: 5,
    }, names.routingKey);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
    assert(
      await eventually(
        () => runner.logs.some((line) => line.includes("consumer_timeout")),
        150_000,
      ),
      "the runner noticed the consumer timeout",
    );
    await setConsumerTimeout(DEFAULT_CONSUMER_TIMEOUT_MS);
    await Deno.writeTextFile(release, "");
    const responses = await server.terminal(request.id, 30_000);
    assertEquals(
      responses.map((response) => response.status),
      ["RUNNING", "RUNNING", "SUCCESS"],
      responses.map((response) => `${response.status}: ${outputText(response)}`).join("\n"),
    );
    assertEquals((await Deno.readTextFile(runLog)).trim().split("\n").length, 1, "run once");
    assert(await eventually(async () => await server.queueDepth() === 0, 10_000), "acknowledged");
    const next = makeRequest({ script: fixture("echo.sh"), input: "next" }, names.routingKey);
    server.publishRequest(next);
    assertEquals(outputText((await server.terminal(next.id)).at(-1)), "next");
  } finally {
    await setConsumerTimeout(DEFAULT_CONSUMER_TIMEOUT_MS);
    await Deno.remove(dir, { recursive: true });
  }
});
