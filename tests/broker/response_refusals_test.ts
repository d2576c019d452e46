import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { behave, eventually } from "../helpers/engine.ts";
import {
  freePort,
  get,
  parsePrometheus,
  sampleValue,
  uniqueNames,
} from "../helpers/ops_harness.ts";
import { RabbitNode } from "../helpers/rabbit_node.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

const MAX_MESSAGE_SIZE = 1024 * 1024;

async function metric(port: number, name: string, labels?: Record<string, string>) {
  const { body } = await get(`http://127.0.0.1:${port}/metrics`);
  return sampleValue(parsePrometheus(body), name, labels);
}

Deno.test("an output over the broker's max_message_size ends in FAILED naming the limit, and other tasks go on", async () => {
  const names = uniqueNames("toolarge");
  const httpPort = freePort();
  await using node = await RabbitNode.start();
  // Node-wide: a node of the test's own. Channels opened from now on get the limit.
  await node.ctl(["eval", `application:set_env(rabbit, max_message_size, ${MAX_MESSAGE_SIZE}).`]);
  await using server = await ServerSide.open(names, { url: node.url });
  await using runner = startRunner(names, { amqpUrl: node.address, httpPort: String(httpPort) });
  await runner.ready;
  const release = await Deno.makeTempFile();
  await Deno.remove(release);
  try {
    // A task that reports progress while the large one ends, and finishes after it.
    const other = makeRequest({
      script: fixture("behave.py"),
      input: behave({ progress: 2, wait_file: release, output: "small" }),
    }, names.routingKey);
    server.publishRequest(other);
    await server.waitFor(() => server.statuses(other.id).length >= 2, 20_000, "progress");
    // 900 KB of output is 1.2 MB of base64: over the broker's 1 MiB.
    const large = makeRequest({
      script: fixture("behave.py"),
      input: behave({ output_size: 900_000 }),
    }, names.routingKey);
    server.publishRequest(large);
    const responses = await server.terminal(large.id, 30_000);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "FAILED"]);
    const reason = outputText(responses.at(-1));
    assert(reason.includes("larger than the broker's limit"), reason);
    assert(reason.includes(String(MAX_MESSAGE_SIZE)), `names the limit: ${reason}`);

    await Deno.writeTextFile(release, "");
    const otherResponses = await server.terminal(other.id, 20_000);
    assertEquals(otherResponses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ], "the other task's responses, once each, in order");
    assertEquals(outputText(otherResponses.at(-1)), "small");
    assertEquals(
      await metric(httpPort, "taskrunner_responses_refused_total", { reason: "too_large" }),
      1,
    );
    assertEquals(
      runner.logs.filter((line) => line.includes("larger than the broker's max_message_size"))
        .length,
      1,
      "one line",
    );
    assertEquals(await server.queueDepth(), 0, "nothing requeued: it does not run again");
  } finally {
    await Deno.remove(release).catch(() => {});
  }
});

Deno.test("/readyz reports a runner that cannot publish: the response exchange is missing; one line, not one per try", async () => {
  const names = uniqueNames("noexchange");
  const httpPort = freePort();
  await using server = await ServerSide.open(names, { declareResponseExchange: false });
  await using runner = startRunner(names, { httpPort: String(httpPort), httpHost: "127.0.0.1" });
  await runner.ready;
  const readyz = () => get(`http://127.0.0.1:${httpPort}/readyz`);
  // Consuming comes first; the publisher's channel finds the exchange missing just after.
  assert(await eventually(async () => (await readyz()).status === 503, 10_000), "not ready");
  let answer = await readyz();
  assertEquals(answer.status, 503);
  assert(answer.body.includes("cannot publish responses"), answer.body);
  // The channel is tried again and again meanwhile (backoff from 0.1 s).
  assert(
    await eventually(async () => (await metric(httpPort, "taskrunner_broker_connected")) === 1),
  );
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const waits = runner.logs.filter((line) => line.includes("Cannot set up broker channel"));
  assertEquals(waits.length, 1, `once: ${waits.join("")}`);
  await server.declareResponseExchange();
  assert(
    await eventually(async () => (await readyz()).status === 200, 30_000),
    "ready once the exchange exists",
  );
  answer = await readyz();
  assertEquals(answer.status, 200);
  assert(runner.logs.some((line) => line.includes("Broker channel set up")), "recovery said");
});
