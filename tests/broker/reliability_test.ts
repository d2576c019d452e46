import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { behave, eventually } from "../helpers/engine.ts";
import {
  brokerConnections,
  brokerCtl,
  closeBrokerConnection,
  uniqueNames,
} from "../helpers/ops_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";
import { VERSION } from "../../src/version.ts";
import type { TaskResponse } from "../../src/protocol/response.ts";

const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];

/** The statuses and progress steps of a slow task, checked for order and duplicates. */
/**
 * Checks the statuses and progress steps of a slow task for order, completeness and
 * duplicates. With `lostConfirms`, up to that many responses may come twice: those the broker
 * had taken when the connection went, whose confirms never came back, are sent again
 * (README, Delivery guarantees). Nothing else may repeat, and the first copies are in order.
 */
function assertCompleteRun(responses: TaskResponse[], steps: number, lostConfirms = 0): void {
  const key = (response: TaskResponse) => `${response.status}:${response.output}`;
  const seen = new Set<string>();
  const unique = responses.filter((response) =>
    !seen.has(key(response)) && seen.add(key(response))
  );
  const repeats = responses.length - unique.length;
  assert(repeats <= lostConfirms, `${repeats} responses came twice`);
  const statuses = unique.map((response) => response.status);
  assertEquals(
    statuses.filter((status) => TERMINAL.includes(status)),
    ["SUCCESS"],
    statuses.join(),
  );
  assertEquals(statuses, ["RUNNING", ...Array(steps).fill("RUNNING"), "SUCCESS"]);
  const progress = unique.slice(1, -1).map((response) => JSON.parse(outputText(response)).step);
  assertEquals(
    progress,
    Array.from({ length: steps }, (_, i) => i + 1),
    "every progress message, once, in order",
  );
}

async function lineCount(path: string): Promise<number> {
  return (await Deno.readTextFile(path)).split("\n").filter((line) => line.length > 0).length;
}

Deno.test("a connection closed by the broker: the task keeps running, nothing is lost or run twice", async () => {
  const names = uniqueNames("connloss");
  const runLog = await Deno.makeTempFile();
  try {
    await using server = await ServerSide.open(names);
    await using runner = startRunner(names);
    await runner.ready;
    // rabbitmqctl takes about a second per call: look the connection up before the task starts.
    const [connection] = await brokerConnections(`taskrunner ${VERSION} ${names.requestType}`);
    assert(connection, "the runner's connection is listed");
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ progress: 12, progress_interval: 0.4, run_log: runLog }),
    }, names.routingKey);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "first progress");
    await closeBrokerConnection(connection);
    assert(server.statuses(request.id).length < 13, "the connection closed while the task ran");

    assertCompleteRun(await server.terminal(request.id), 12, 2);
    assertEquals(await lineCount(runLog), 1, "the redelivered request was not started again");
    assert(
      await eventually(async () => await server.queueDepth() === 0),
      "the redelivery is acknowledged",
    );
    assert(
      runner.logs.some((line) => line.includes("attached to it")),
      "the redelivery was attached",
    );
    assertEquals(await server.consumers(), 1, "one consumer: the old channel's is gone");

    const next = makeRequest({ script: fixture("echo.sh"), input: "after" }, names.routingKey);
    server.publishRequest(next);
    assertEquals(outputText((await server.terminal(next.id)).at(-1)), "after");
  } finally {
    await Deno.remove(runLog);
  }
});

Deno.test("a task can still be cancelled after the runner reconnected", async () => {
  const names = uniqueNames("cancelreconnect");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  const request = makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 1, sleep: 60 }),
  }, names.routingKey);
  server.publishRequest(request);
  const [connection] = await brokerConnections(`taskrunner ${VERSION} ${names.requestType}`);
  await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
  await closeBrokerConnection(connection!);
  // Cancellation queues are auto-deleted with their consumer: wait until it is back. The
  // runner declares, binds, then consumes: before its consumer is there, a cancellation may
  // find the queue unbound.
  assert(
    await eventually(
      () => server.consumers(request.id).then((count) => count > 0, () => false),
      10_000,
    ),
    "cancellation queue re-declared, bound and consumed",
  );
  await server.cancel(request.id);
  const statuses = (await server.terminal(request.id)).map((response) => response.status);
  assertEquals(statuses, ["RUNNING", "RUNNING", "CANCELLING", "CANCELLED"]);
});

Deno.test("an outage of the broker: responses made meanwhile are kept and published in order after", async () => {
  const names = uniqueNames("outage");
  await using proxy = TcpProxy.start();
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, { amqpUrl: `amqp://127.0.0.1:${proxy.port}` });
  await runner.ready;
  const request = makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 8, progress_interval: 0.15 }),
  }, names.routingKey);
  server.publishRequest(request);
  await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "first progress");
  proxy.cut();
  const seenBefore = server.statuses(request.id).length;
  // Long enough for the task to finish while the runner cannot reach the broker.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assertEquals(server.statuses(request.id).length, seenBefore, "nothing got through the outage");
  proxy.restore();
  assertCompleteRun(await server.terminal(request.id, 30_000), 8, 2);
  assert(
    await eventually(async () => await server.queueDepth() === 0, 10_000),
    "the request is acknowledged",
  );
  assert(runner.logs.some((line) => line.includes("Broker connection lost")), "the loss is logged");
});

Deno.test("a missing response exchange: responses are kept and retried until it is back", async () => {
  const names = uniqueNames("noexchange");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  const request = makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 5, progress_interval: 0.2 }),
  }, names.routingKey);
  server.publishRequest(request);
  await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "first progress");
  await server.deleteResponseExchange();
  assert(
    await eventually(() => runner.logs.some((line) => line.includes("does not exist")), 10_000),
    "the log says the exchange is missing",
  );
  await server.restoreResponseExchange();
  // The publish that met the missing exchange was never confirmed: it is sent again too.
  assertCompleteRun(await server.terminal(request.id, 30_000), 5);
  const next = makeRequest(
    { script: fixture("echo.sh"), input: "still serving" },
    names.routingKey,
  );
  server.publishRequest(next);
  assertEquals(outputText((await server.terminal(next.id)).at(-1)), "still serving");
});

Deno.test("invalid messages go to the dead-letter exchange that a policy attaches to the queue", async () => {
  const names = uniqueNames("dlx");
  const deadLetterExchange = `test-dlx-${crypto.randomUUID().slice(0, 8)}`;
  const policy = `test-dlx-${names.requestType}`;
  await using server = await ServerSide.open(names);
  try {
    await using runner = startRunner(names, { deadLetterExchange });
    await runner.ready;
    // The runner declares the exchange and its queue; the operator's policy attaches it.
    await brokerCtl([
      "set_policy",
      policy,
      `^${names.fullRequestQueue}$`,
      JSON.stringify({ "dead-letter-exchange": deadLetterExchange }),
      "--apply-to",
      "queues",
    ]);
    server.publishRaw(new TextEncoder().encode("not a request"));
    const deadLetters = `${names.fullRequestQueue}.dead-letter`;
    assert(
      await eventually(async () => await server.queueDepth(deadLetters) === 1, 10_000),
      "the rejected message is dead-lettered",
    );
    assertEquals(await server.queueDepth(), 0);
  } finally {
    await brokerCtl(["clear_policy", policy]).catch(() => {});
    await server.deleteExchange(deadLetterExchange);
  }
});

Deno.test("inputs and outputs over the limits get FAILED naming the limit", async (t) => {
  const names = uniqueNames("limits");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, { maxInputBytes: "1000", maxOutputBytes: "1000" });
  await runner.ready;
  await t.step("input", async () => {
    const request = makeRequest(
      { script: fixture("echo.sh"), input: new Uint8Array(2000) },
      names.routingKey,
    );
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["FAILED"]);
    assertMatch(outputText(responses[0]), /input of 2000 bytes exceeds the limit of 1000 bytes/);
  });
  await t.step("output", async () => {
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ output_size: 5000 }),
    }, names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "FAILED"]);
    assertMatch(outputText(responses[1]), /more output than the limit of 1000 bytes/);
  });
});
