import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { behave, eventually } from "../helpers/engine.ts";
import {
  brokerCtl,
  freePort,
  get,
  parsePrometheus,
  sampleValue,
  uniqueNames,
} from "../helpers/ops_harness.ts";
import { RabbitNode } from "../helpers/rabbit_node.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

const NOT_ROUTED = "Response not routed";

async function unroutedMetric(port: number): Promise<number | undefined> {
  const { body } = await get(`http://127.0.0.1:${port}/metrics`);
  return sampleValue(parsePrometheus(body), "taskrunner_responses_unrouted");
}

// Messages delivered and not yet acknowledged, as the broker counts them.
async function unacknowledged(queue: string): Promise<number> {
  const text = await brokerCtl([
    "list_queues",
    "name",
    "messages_unacknowledged",
    "--quiet",
    "--no-table-headers",
  ]);
  const line = text.split("\n").find((row) => row.split("\t")[0] === queue);
  return Number(line?.split("\t")[1] ?? 0);
}

Deno.test("responses with no queue bound are kept, counted, and delivered in order once one is", async () => {
  const names = uniqueNames("unbound");
  const httpPort = freePort();
  await using server = await ServerSide.open(names, { declareResponseExchange: false });
  // The server has declared its exchange, but no queue is bound for the routing key yet.
  await server.declareResponseExchange();
  await using runner = startRunner(names, { httpPort: String(httpPort) });
  await runner.ready;
  const request = makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 2, output: "kept" }),
  }, names.routingKey);
  server.publishRequest(request);
  assert(
    await eventually(async () => (await unroutedMetric(httpPort) ?? 0) >= 4, 20_000),
    "RUNNING, two progress messages and SUCCESS wait for a route, in /metrics",
  );
  assert(runner.logs.some((line) => line.includes(NOT_ROUTED)), "the log says so");
  assertEquals(
    runner.logs.filter((line) => line.includes(NOT_ROUTED)).length,
    1,
    "once, not once per response or per try",
  );
  assert(
    await eventually(async () => await unacknowledged(names.fullRequestQueue) === 0, 10_000),
    "the request is acknowledged while its terminal response is held: it holds no slot",
  );

  await server.bindResponses();
  const responses = await server.terminal(request.id, 20_000);
  assertEquals(responses.map((response) => response.status), [
    "RUNNING",
    "RUNNING",
    "RUNNING",
    "SUCCESS",
  ]);
  assertEquals(outputText(responses.at(-1)), "kept");
  assert(
    await eventually(async () => await unroutedMetric(httpPort) === 0, 10_000),
    "nothing left waiting",
  );
});

Deno.test("a shutdown while a terminal response is held drops it at once, says so, and does not run the request again", async () => {
  const names = uniqueNames("unboundstop");
  await using server = await ServerSide.open(names, { declareResponseExchange: false });
  await server.declareResponseExchange();
  const runner = startRunner(names, { drain: "1" });
  let stopMs = Infinity;
  try {
    await runner.ready;
    const request = makeRequest({ script: fixture("echo.sh"), input: "x" }, names.routingKey);
    server.publishRequest(request);
    assert(
      await eventually(() => runner.logs.some((line) => line.includes(NOT_ROUTED)), 20_000),
      "the response found no queue",
    );
  } finally {
    const start = performance.now();
    await runner.stop();
    stopMs = performance.now() - start;
  }
  // The final wait is for responses on their way (5 s at most), not for held ones.
  assert(stopMs < 3_000, `stopped in ${Math.round(stopMs)} ms, not after the final wait`);
  assert(runner.logs.some((line) => line.includes("Held responses dropped")), "the loss is logged");
  assertEquals(await server.queueDepth(), 0, "its request was acknowledged: it does not run again");
  assertEquals(await unacknowledged(names.fullRequestQueue), 0);
});

Deno.test("an hmi-server restart mid-task: at concurrency 1 the new server's request starts at once, and the old one never runs again", async () => {
  const names = uniqueNames("srvrestart");
  const httpPort = freePort();
  const release = await Deno.makeTempFile();
  await Deno.remove(release);
  const before = await ServerSide.open(names);
  // The restarted server binds a routing key of its own, made at its start-up.
  const afterNames = { ...names, routingKey: `${names.routingKey}-after` };
  let runner = startRunner(names, {
    concurrency: "1",
    responseHoldSeconds: "60",
    httpPort: String(httpPort),
  });
  try {
    await runner.ready;
    const old = makeRequest({
      script: fixture("behave.py"),
      input: behave({ progress: 1, wait_file: release, output: "old" }),
    }, names.routingKey);
    before.publishRequest(old);
    await before.waitFor(() => before.statuses(old.id).length >= 2, 20_000, "progress");
    await before.disconnect(); // its response queue goes with it
    await using after = await ServerSide.open(afterNames);
    await Deno.writeTextFile(release, ""); // the old task ends: no queue for its SUCCESS
    const fresh = makeRequest({ script: fixture("echo.sh"), input: "new" }, afterNames.routingKey);
    const sentAt = performance.now();
    after.publishRequest(fresh);
    const responses = await after.terminal(fresh.id, 20_000);
    const tookMs = performance.now() - sentAt;
    assertEquals(responses.at(-1)?.status, "SUCCESS");
    assert(tookMs < 15_000, `the new request ran at once, not after the 60 s hold: ${tookMs} ms`);
    assert((await unroutedMetric(httpPort) ?? 0) >= 1, "the old SUCCESS is held, in /metrics");
    assertEquals(await unacknowledged(names.fullRequestQueue), 0, "both requests acknowledged");
    assertEquals(
      runner.logs.filter((line) => line.includes("Task started")).length,
      2,
      "each request ran once",
    );
    // A restart of the runner does not run the old request again.
    await runner.stop();
    runner = startRunner(names, { concurrency: "1" });
    await runner.ready;
    assertEquals(await after.queueDepth(), 0, "nothing left in the request queue");
    assert(!runner.logs.some((line) => line.includes("Task started")), "nothing ran again");
  } finally {
    await runner.stop();
    await Deno.remove(release).catch(() => {});
  }
});

Deno.test("a broker restart: the runner reconnects before the server and the terminal response still arrives", async () => {
  const names = uniqueNames("restart");
  await using node = await RabbitNode.start();
  const release = await Deno.makeTempFile();
  await Deno.remove(release);
  try {
    const before = await ServerSide.open(names, { url: node.url });
    const runner = startRunner(names, { amqpUrl: node.address });
    try {
      await runner.ready;
      const request = makeRequest({
        script: fixture("behave.py"),
        input: behave({ progress: 1, wait_file: release, output: "after the outage" }),
      }, names.routingKey);
      before.publishRequest(request);
      await before.waitFor(() => before.statuses(request.id).length >= 2, 20_000, "progress");
      await before.disconnect();

      await node.stop();
      await Deno.writeTextFile(release, ""); // the task ends while the broker is down
      await node.start();
      // The server's exchange is durable and survived; its queue did not. The runner gets
      // back first and finds no queue for its kept responses.
      assert(
        await eventually(() => runner.logs.some((line) => line.includes(NOT_ROUTED)), 60_000),
        "the runner reconnected and its responses were returned",
      );

      await using after = await ServerSide.open(names, { url: node.url });
      const responses = await after.terminal(request.id, 30_000);
      assertEquals(responses.at(-1)?.status, "SUCCESS");
      assertEquals(outputText(responses.at(-1)), "after the outage");
    } finally {
      await runner.stop();
    }
  } finally {
    await Deno.remove(release).catch(() => {});
  }
});
