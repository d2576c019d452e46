import amqp from "amqplib";
import type { ConfirmChannel } from "amqplib";
import { Buffer } from "node:buffer";
import {
  buildClientRequest,
  namesTopology,
  privateNames,
  TaskClient,
} from "../../src/client/mod.ts";
import type { TaskResponse } from "../../src/protocol/response.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../helpers/assert.ts";
import { AMQP_URL } from "../helpers/broker_harness.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";

Deno.test("buildClientRequest() sends the server's fields, with its defaults", () => {
  const request = buildClientRequest(
    { script: "gollm:embedding", input: null, timeoutMs: 90_000, routingKey: "rk", id: "x" },
    "gollm",
  );
  assertEquals(Object.keys(request), [
    "id",
    "script",
    "input",
    "timeoutMinutes",
    "routingKey",
    "additionalProperties",
    "userId",
    "projectId",
    "requestSHA256",
    "useCache",
    "type",
  ]);
  assertEquals(request.input, null);
  assertEquals(request.timeoutMinutes, 1.5);
  assertEquals(request.useCache, true);
  assertEquals(request.additionalProperties, null);
  const bench = buildClientRequest({
    script: "s",
    input: new TextEncoder().encode("hi"),
    timeoutMs: 60_000,
    routingKey: "rk",
    userId: "u",
    useCache: false,
  }, "t");
  assertEquals([bench.input, bench.userId, bench.useCache], [btoa("hi"), "u", false]);
});

/** Runs `work` on a connection of its own: an observer independent of the client. */
async function observe(work: (channel: ConfirmChannel) => Promise<void>): Promise<void> {
  const model = await amqp.connect(AMQP_URL);
  try {
    await work(await model.createConfirmChannel());
  } finally {
    await model.close();
  }
}

Deno.test("TaskClient.submit() declares what the server declares, with its flags", async () => {
  const names = privateNames("test", { requestType: "fixture", label: "client" });
  await using client = await TaskClient.open(AMQP_URL, namesTopology(names));
  const request = buildClientRequest({
    script: "x.py",
    input: new Uint8Array([1]),
    timeoutMs: 60_000,
    routingKey: names.routingKey,
  }, names.requestType);
  try {
    await client.submit(request);
    await observe(async (channel) => {
      // The server's own declarations succeed on what the client made (a 406 would throw).
      await channel.assertQueue(names.fullRequestQueue, { durable: false, autoDelete: false });
      await channel.assertExchange(names.cancellationExchange, "direct", { durable: false });
      await channel.assertQueue(request.id, { durable: false, autoDelete: true });
      const message = await channel.get(names.fullRequestQueue, { noAck: true });
      assert(message, "the request on the request queue");
      assertEquals(message.properties.contentType, "application/json");
      assertEquals(message.properties.deliveryMode, 2);
      assertEquals(JSON.parse(message.content.toString("utf8")), request);
      // Bound with the task id: a cancellation reaches the task's queue.
      await client.cancel(request.id);
      const cancellation = await channel.get(request.id, { noAck: true });
      assert(cancellation, "the cancellation in the task's queue");
      assertEquals(cancellation.content.length, 0);
    });
  } finally {
    await client.deleteAll({
      queues: [request.id, names.fullRequestQueue],
      exchanges: [names.cancellationExchange],
    });
  }
});

Deno.test("TaskClient.follow() yields responses in order until the terminal one", async () => {
  const names = privateNames("test", { requestType: "fixture", label: "follow" });
  await using client = await TaskClient.open(AMQP_URL, namesTopology(names));
  try {
    const stream = await client.follow(names.routingKey);
    await observe(async (channel) => {
      // Declared with the server's durability, or this would get a 406.
      await channel.assertExchange(names.responseExchange, "direct", { durable: true });
      const send = (body: string) =>
        channel.publish(names.responseExchange, names.routingKey, Buffer.from(body));
      send(JSON.stringify({ id: "a", status: "RUNNING", output: null }));
      send("not JSON");
      send(JSON.stringify({ id: "a", status: "FAILED", output: null }));
      send(JSON.stringify({ id: "a", status: "RUNNING", output: null }));
      await channel.waitForConfirms();
    });
    const seen: TaskResponse[] = [];
    for await (const response of stream) seen.push(response);
    assertEquals(seen.map((response) => response.status), ["RUNNING", "FAILED"]);
  } finally {
    await client.deleteAll({ queues: [], exchanges: [names.responseExchange] });
  }
});

Deno.test("TaskClient.follow() fails the iteration when the connection is lost", async () => {
  const names = privateNames("test", { requestType: "fixture", label: "lost" });
  await using proxy = TcpProxy.start();
  const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
  await using client = await TaskClient.open(url, namesTopology(names));
  try {
    const stream = await client.follow(names.routingKey);
    const iteration = (async () => {
      for await (const _ of stream) { /* none arrive before the cut */ }
    })();
    proxy.cut();
    const error = await assertRejects(() => iteration, Error);
    assertMatch(error.message, /^Broker connection lost/);
  } finally {
    proxy.restore();
    await using cleanup = await TaskClient.open(AMQP_URL, namesTopology(names));
    await cleanup.deleteAll({ queues: [], exchanges: [names.responseExchange] });
  }
});
