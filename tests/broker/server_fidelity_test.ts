import amqp from "amqplib";
import type { ChannelModel } from "amqplib";
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  AMQP_URL,
  makeRequest,
  outputText,
  SERVER_RESPONSE_EXCHANGE,
  ServerSide,
  type TestNames,
} from "../helpers/broker_harness.ts";
import { eventually } from "../helpers/engine.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

/**
 * Declares what the hmi-server's `TaskService` declares, with its flags and arguments, through
 * amqplib: `initResponseConsumers` (the response exchange with `terarium.taskrunner.durable-
 * queues` = true, its response queue bound with the instance's routing key) and
 * `runTaskAsync` (the request queue, the cancellation exchange and the task's cancellation
 * queue, with `terarium.durableQueues`). A declaration that differs from an existing one
 * rejects with the broker's 406, as the server's RabbitAdmin would fail.
 */
async function declareAsServer(
  names: TestNames,
  taskId: string,
  options: { durableQueues?: boolean } = {},
): Promise<void> {
  const durable = options.durableQueues ?? false;
  const model: ChannelModel = await amqp.connect(AMQP_URL);
  model.on("error", () => {});
  try {
    const channel = await model.createChannel();
    channel.on("error", () => {});
    const responseQueue = `${names.responseExchange}.server`;
    await channel.assertExchange(names.responseExchange, "direct", SERVER_RESPONSE_EXCHANGE);
    await channel.assertQueue(responseQueue, { durable: true, exclusive: false, autoDelete: true });
    await channel.bindQueue(responseQueue, names.responseExchange, names.routingKey);
    await channel.assertQueue(names.fullRequestQueue, {
      durable,
      exclusive: false,
      autoDelete: false,
    });
    await channel.assertExchange(names.cancellationExchange, "direct", {
      durable,
      autoDelete: false,
    });
    await channel.assertQueue(taskId, { durable, exclusive: false, autoDelete: true });
    await channel.bindQueue(taskId, names.cancellationExchange, taskId);
    await channel.deleteQueue(responseQueue);
  } finally {
    await model.close().catch(() => {});
  }
}

async function exchangeExists(name: string): Promise<boolean> {
  const model = await amqp.connect(AMQP_URL);
  model.on("error", () => {});
  try {
    const channel = await model.createChannel();
    channel.on("error", () => {});
    await channel.checkExchange(name);
    return true;
  } catch {
    return false;
  } finally {
    await model.close().catch(() => {});
  }
}

// The durable exchanges a test made (the server's durable response exchange, and the
// cancellation exchange when durable queues are on) outlive a test's own clean-up otherwise.
async function deleteQueueAndExchanges(names: TestNames): Promise<void> {
  const model = await amqp.connect(AMQP_URL);
  try {
    const channel = await model.createChannel();
    await channel.deleteQueue(names.fullRequestQueue);
    await channel.deleteQueue(`${names.fullRequestQueue}.dead-letter`);
    await channel.deleteExchange(names.responseExchange);
    await channel.deleteExchange(names.cancellationExchange);
    await channel.deleteExchange(DEAD_LETTER_EXCHANGE);
  } finally {
    await model.close().catch(() => {});
  }
}

const DEAD_LETTER_EXCHANGE = `test-fidelity-dlx-${crypto.randomUUID().slice(0, 8)}`;

const SETUPS: Array<{ label: string; runner: Record<string, string>; durableQueues: boolean }> = [
  { label: "defaults", runner: {}, durableQueues: false },
  {
    label: "durable queues on both sides",
    runner: { durableQueues: "true" },
    durableQueues: true,
  },
  {
    label: "a dead-letter exchange",
    runner: { deadLetterExchange: DEAD_LETTER_EXCHANGE },
    durableQueues: false,
  },
];

Deno.test("the server's own declarations get no 406 when the runner started first", async (t) => {
  for (const setup of SETUPS) {
    await t.step(setup.label, async () => {
      const names = uniqueNames("first");
      try {
        await using runner = startRunner(names, setup.runner);
        await runner.ready;
        assert(
          !await exchangeExists(names.responseExchange),
          "the runner never declares the response exchange",
        );
        assert(
          runner.logs.some((line) => line.includes("waiting for the hmi-server")),
          "it says it waits for the server",
        );
        const request = makeRequest({ script: fixture("echo.sh"), input: "hi" }, names.routingKey);
        await declareAsServer(names, request.id, setup);
        await using server = await ServerSide.open(names);
        server.publishRequest(request);
        const responses = await server.terminal(request.id, 30_000);
        assertEquals(outputText(responses.at(-1)), "hi");
      } finally {
        await deleteQueueAndExchanges(names).catch(() => {});
      }
    });
  }
});

Deno.test("a runner started after the server's declarations uses them and gets no 406", async (t) => {
  const setups = [
    ...SETUPS,
    // The stock server declares a classic queue: a quorum runner uses it as it is.
    { label: "--queue-type quorum on a queue that exists", runner: { queueType: "quorum" } },
  ];
  for (const setup of setups) {
    await t.step(setup.label, async () => {
      const names = uniqueNames("after");
      const durableQueues = "durableQueues" in setup ? setup.durableQueues : false;
      try {
        const request = makeRequest({ script: fixture("echo.sh"), input: "hi" }, names.routingKey);
        await declareAsServer(names, request.id, { durableQueues });
        await using server = await ServerSide.open(names);
        await using runner = startRunner(names, setup.runner);
        await runner.ready;
        server.publishRequest(request);
        const responses = await server.terminal(request.id, 30_000);
        assertEquals(outputText(responses.at(-1)), "hi");
        assert(
          !runner.logs.some((line) => line.includes("other settings")),
          "nothing differed from the server's declarations",
        );
        // The next task of the same server: its declarations meet the runner's again.
        const next = makeRequest({ script: fixture("echo.sh"), input: "again" }, names.routingKey);
        await declareAsServer(names, next.id, { durableQueues });
        server.publishRequest(next);
        assertEquals(outputText((await server.terminal(next.id, 30_000)).at(-1)), "again");
      } finally {
        await deleteQueueAndExchanges(names).catch(() => {});
      }
    });
  }
});

Deno.test("responses without task output carry stdout and stderr as empty strings", async (t) => {
  const names = uniqueNames("emptylogs");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  const assertEmptyLogs = (responses: { stdout: unknown; stderr: unknown }[]) => {
    for (const response of responses) assertEquals([response.stdout, response.stderr], ["", ""]);
  };
  await t.step("cancelled before it started", async () => {
    const request = makeRequest({ script: fixture("echo.sh"), input: "x" }, names.routingKey);
    await server.cancel(request.id, { declareQueue: true });
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["CANCELLED"]);
    assertEmptyLogs(responses);
  });
  await t.step("cancelled before it started, its script missing: the cancel decides", async () => {
    for (const script of ["/nonexistent/model.py", "gollm:does-not-exist"]) {
      const request = makeRequest({ script }, names.routingKey);
      await server.cancel(request.id, { declareQueue: true });
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertEquals(responses.map((response) => response.status), ["CANCELLED"], script);
      assertEmptyLogs(responses);
    }
  });
  await t.step("could not start", async () => {
    const request = makeRequest({ script: "/nonexistent/task.sh" }, names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["FAILED"]);
    assertEmptyLogs(responses);
  });
  await t.step("invalid request", async () => {
    const request = makeRequest({ script: "" }, names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["FAILED"]);
    assertEmptyLogs(responses);
  });
});

Deno.test("additionalProperties come back byte for byte in every response", async () => {
  const names = uniqueNames("rawprops");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  // What a Java or Python client may send: integers past 2^53, 1.0, escapes, exponents.
  const raw = '{"big":9007199254740993,"one":1.0,"text":"\\u00e9\\n","list":[1e2,-0.0,null]}';
  const model = await amqp.connect(AMQP_URL);
  try {
    const channel = await model.createChannel();
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, names.responseExchange, names.routingKey);
    const bodies: string[] = [];
    await channel.consume(queue, (message) => {
      if (message) bodies.push(message.content.toString("utf8"));
    }, { noAck: true });
    const request = makeRequest({ script: fixture("echo.sh"), input: "x" }, names.routingKey);
    const json = JSON.stringify(request).replace(/}$/, `,"additionalProperties":${raw}}`);
    server.publishRaw(new TextEncoder().encode(json));
    const responses = await server.terminal(request.id);
    assertEquals(responses.at(-1)?.status, "SUCCESS");
    assert(
      await eventually(() => bodies.length === responses.length),
      "every response seen raw too",
    );
    for (const body of bodies) {
      assert(body.includes(`"additionalProperties":${raw},`), `passed back as sent: ${body}`);
    }
  } finally {
    await model.close().catch(() => {});
  }
});

Deno.test("a task that ends before the server has declared the response exchange: its responses wait for it", async () => {
  const names = uniqueNames("noexchangeyet");
  await using server = await ServerSide.open(names, { declareResponseExchange: false });
  try {
    await using runner = startRunner(names);
    await runner.ready;
    const request = makeRequest({ script: fixture("echo.sh"), input: "kept" }, names.routingKey);
    server.publishRequest(request);
    assert(
      await eventually(() => runner.logs.some((line) => line.includes("Task succeeded")), 20_000),
      "the task ended",
    );
    assert(!await exchangeExists(names.responseExchange), "still not declared by the runner");
    await server.restoreResponseExchange(); // the server comes: declares it and binds its queue
    const responses = await server.terminal(request.id, 30_000);
    const statuses = responses.map((response) => response.status);
    assertEquals([statuses[0], statuses.at(-1)], ["RUNNING", "SUCCESS"], statuses.join());
    assertEquals(outputText(responses.at(-1)), "kept");
  } finally {
    await deleteQueueAndExchanges(names).catch(() => {});
  }
});
