import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, ServerSide } from "../helpers/broker_harness.ts";
import { eventually } from "../helpers/engine.ts";
import {
  brokerConnections,
  closeBrokerConnection,
  freePort,
  get,
  parsePrometheus,
  sampleValue,
  uniqueNames,
} from "../helpers/ops_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";
import { VERSION } from "../../src/version.ts";

Deno.test("HTTP endpoint: /readyz follows the broker connection, /metrics counts tasks", async (t) => {
  const names = uniqueNames("http");
  await using server = await ServerSide.open(names);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  await using runner = startRunner(names, { httpPort: String(port), httpHost: "127.0.0.1" });

  await runner.ready;

  await t.step("/healthz answers 200", async () => {
    const health = await get(`${base}/healthz`);
    assertEquals(health.status, 200);
    assertEquals(JSON.parse(health.body), { alive: true });
  });

  await t.step("/readyz answers 200 while connected and consuming", async () => {
    assert(
      await eventually(async () => (await get(`${base}/readyz`)).status === 200),
      "ready once consuming",
    );
    const ready = await get(`${base}/readyz`);
    assertEquals(JSON.parse(ready.body), { ready: true });
    assertMatch(ready.type, /^application\/json/);
  });

  await t.step("/metrics parses as Prometheus text and counts a task", async () => {
    const script = fixture("echo.sh");
    const before = parsePrometheus((await get(`${base}/metrics`)).body);
    assertEquals(sampleValue(before, "taskrunner_tasks_started_total"), 0);
    assertEquals(sampleValue(before, "taskrunner_tasks_finished_total", { status: "SUCCESS" }), 0);
    assertEquals(sampleValue(before, "taskrunner_broker_connected"), 1);
    assertEquals(sampleValue(before, "taskrunner_consuming"), 1);
    assertEquals(sampleValue(before, "taskrunner_build_info", { version: VERSION }), 1);
    for (
      const name of [
        "process_resident_memory_bytes",
        "nodejs_heap_size_used_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
      ]
    ) {
      assert((sampleValue(before, name) ?? 0) > 0, `${name} is reported`);
    }

    const request = makeRequest({ script, input: "hello" }, names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.at(-1)?.status, "SUCCESS");

    // The counters move once the broker has confirmed the terminal response to the runner.
    let after = before;
    assert(
      await eventually(async () => {
        after = parsePrometheus((await get(`${base}/metrics`)).body);
        return sampleValue(after, "taskrunner_tasks_finished_total", {
          status: "SUCCESS",
          script,
        }) === 1;
      }),
      "SUCCESS counted",
    );
    assertEquals(sampleValue(after, "taskrunner_tasks_started_total", { script }), 1);
    assertEquals(sampleValue(after, "taskrunner_input_bytes_total"), 5);
    assertEquals(sampleValue(after, "taskrunner_output_bytes_total"), 5);
    assertEquals(
      sampleValue(after, "taskrunner_task_duration_seconds_count", { status: "SUCCESS" }),
      1,
    );
    assertEquals(
      sampleValue(after, "taskrunner_task_duration_seconds_bucket", {
        status: "SUCCESS",
        le: "+Inf",
      }),
      1,
    );
    assert((sampleValue(after, "taskrunner_response_publish_seconds_count") ?? 0) >= 2);
    assertEquals(sampleValue(after, "taskrunner_responses_pending"), 0);
    assert(
      await eventually(async () => {
        const samples = parsePrometheus((await get(`${base}/metrics`)).body);
        return sampleValue(samples, "taskrunner_tasks_running") === 0;
      }),
      "no task running once it is done",
    );
  });

  await t.step("an invalid message is counted as rejected", async () => {
    server.publishRaw(new TextEncoder().encode("not json"));
    assert(
      await eventually(async () => {
        const samples = parsePrometheus((await get(`${base}/metrics`)).body);
        return sampleValue(samples, "taskrunner_requests_rejected_total", {
          reason: "invalid",
        }) === 1;
      }),
      "rejection counted",
    );
  });

  await t.step("/readyz answers 503 while the connection is down, 200 once back", async () => {
    const connections = await brokerConnections(`taskrunner ${VERSION} ${names.requestType}`);
    assertEquals(connections.length, 1, "the runner's one connection");
    await closeBrokerConnection(connections[0]!);

    let down = { status: 0, body: "" };
    assert(
      await eventually(async () => {
        down = await get(`${base}/readyz`);
        return down.status === 503;
      }),
      "not ready after the connection closed",
    );
    const reason = JSON.parse(down.body);
    assertEquals(reason.ready, false);
    assertMatch(reason.reason, /not connected to the broker|not consuming/);

    assert(
      await eventually(async () => (await get(`${base}/readyz`)).status === 200, 15_000),
      "ready again after the reconnect",
    );
    const samples = parsePrometheus((await get(`${base}/metrics`)).body);
    assertEquals(sampleValue(samples, "taskrunner_broker_reconnects_total"), 1);
    assertEquals((await get(`${base}/healthz`)).status, 200, "alive throughout");
  });

  await t.step("unknown paths get 404 and other methods 405", async () => {
    assertEquals((await get(`${base}/nope`)).status, 404);
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    await post.body?.cancel();
    assertEquals(post.status, 405);
  });

  await runner.stop();
  await t.step("the endpoint stops with the runner", async () => {
    const refused = await fetch(`${base}/healthz`).then(async (response) => {
      await response.body?.cancel();
      return false;
    }, () => true);
    assert(refused, "nothing listens any more");
  });
});

Deno.test("HTTP endpoint: off by default", async () => {
  const names = uniqueNames("httpoff");
  await using _server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  assert(
    !runner.logs.some((line) => line.includes("HTTP endpoint listening")),
    "no endpoint started",
  );
});
