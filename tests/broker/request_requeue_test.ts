import { brokerEndpoints } from "../../src/config/amqp_url.ts";
import amqp from "amqplib";
import type { Channel, GetMessage } from "amqplib";
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../helpers/assert.ts";
import { AMQP_URL } from "../helpers/broker_harness.ts";
import { eventually } from "../helpers/engine.ts";
import { BrokerConnection } from "../../src/broker/connection.ts";
import {
  LOST_RUNS_HEADER,
  RequestConsumer,
  type RequestDelivery,
} from "../../src/broker/request_consumer.ts";
import { Logger } from "../../src/observability/log.ts";

/** A private queue with one message in it, and a paused consumer holding its delivery. */
async function heldDelivery(
  headers: Record<string, unknown>,
): Promise<AsyncDisposable & { delivery: RequestDelivery; channel: Channel; queue: string }> {
  const queue = `test-requeue-${crypto.randomUUID().slice(0, 8)}`;
  const model = await amqp.connect(AMQP_URL);
  const channel = await model.createChannel();
  await channel.assertQueue(queue, { durable: false, autoDelete: false });
  channel.sendToQueue(queue, Buffer.from('{"id":"x"}'), {
    contentType: "application/json",
    contentEncoding: "UTF-8",
    messageId: "m-1",
    correlationId: "c-1",
    persistent: true,
    userId: new URL(AMQP_URL).username || "guest",
    headers,
  });
  const logger = new Logger({ level: "error", sink: () => {} });
  const broker = new BrokerConnection(
    brokerEndpoints(AMQP_URL, { username: "guest", password: "guest" }),
    { logger },
  );
  let received: (delivery: RequestDelivery) => void;
  const first = new Promise<RequestDelivery>((resolve) => received = resolve);
  const consumer = new RequestConsumer(broker, {
    queue,
    prefetch: 1,
    logger,
    onDelivery: (delivery) => received(delivery),
  });
  broker.start();
  const delivery = await first;
  // Nothing more comes: what is put back stays in the queue for the test to look at.
  assert(await eventually(() => consumer.consuming), "set up");
  await consumer.pause();
  return {
    delivery,
    channel,
    queue,
    [Symbol.asyncDispose]: async () => {
      await consumer.close();
      await broker.close();
      await channel.deleteQueue(queue).catch(() => {});
      await model.close();
    },
  };
}

async function getOne(channel: Channel, queue: string): Promise<GetMessage> {
  let message: GetMessage | false = false;
  assert(
    await eventually(async () => (message = await channel.get(queue, { noAck: true })) !== false),
  );
  return message as unknown as GetMessage;
}

Deno.test("RequestDelivery.requeue() replaces the delivery with a copy that carries the count", async () => {
  await using held = await heldDelivery({ "x-custom": "kept", [LOST_RUNS_HEADER]: 1 });
  const { delivery, channel, queue } = held;
  assertEquals(delivery.lostRuns, 1);
  assertEquals(await delivery.requeue(2), true);
  const copy = await getOne(channel, queue);
  assertEquals(copy.fields.redelivered, false, "a new message, not a redelivery");
  assertEquals(copy.content.toString(), '{"id":"x"}');
  assertEquals(copy.properties.headers?.[LOST_RUNS_HEADER], 2);
  assertEquals(copy.properties.headers?.["x-custom"], "kept");
  assertEquals(copy.properties.contentType, "application/json");
  assertEquals(copy.properties.contentEncoding, "UTF-8");
  assertEquals(copy.properties.messageId, "m-1");
  assertEquals(copy.properties.correlationId, "c-1");
  assertEquals(copy.properties.deliveryMode, 2);
  assertEquals(
    copy.properties.userId,
    undefined,
    "the broker checks user-id against its publisher",
  );
  assertEquals((await channel.checkQueue(queue)).messageCount, 0, "the original was acknowledged");
  assertEquals(delivery.live, false);
});

Deno.test("RequestDelivery.requeue() without its body leaves the delivery as it was", async () => {
  await using held = await heldDelivery({ [LOST_RUNS_HEADER]: 1 });
  const { delivery, channel, queue } = held;
  delivery.releaseBody();
  assertEquals(await delivery.requeue(2), false);
  assert(delivery.live, "not settled");
  assertEquals((await channel.checkQueue(queue)).messageCount, 0, "no copy");
  delivery.reject(true);
  const original = await getOne(channel, queue);
  assertEquals(original.fields.redelivered, true);
  assertEquals(original.properties.headers?.[LOST_RUNS_HEADER], 1, "count unchanged");
  assertEquals(original.properties.messageId, "m-1");
});

Deno.test("RequestDelivery.lostRuns reads only a whole, positive count", async (t) => {
  for (const [value, expected] of [[3, 3], ["2", 2], [-1, 0], [1.5, 0], ["many", 0]] as const) {
    await t.step(JSON.stringify(value), async () => {
      await using held = await heldDelivery({ [LOST_RUNS_HEADER]: value });
      assertEquals(held.delivery.lostRuns, expected);
    });
  }
});
