import { brokerEndpoints } from "../src/broker/amqp_url.ts";
import amqp from "amqplib";
import { assert, assertEquals } from "./helpers/assert.ts";
import { AMQP_URL, SERVER_RESPONSE_EXCHANGE } from "./helpers/broker_harness.ts";
import { eventually } from "./helpers/engine.ts";
import { BrokerConnection } from "../src/broker/connection.ts";
import { ResponsePublisher, UnroutableResponseError } from "../src/broker/publisher.ts";
import { Logger } from "../src/observability/log.ts";

const encoder = new TextEncoder();

/**
 * A publisher on the real broker with short retry delays, its exchange declared as the server
 * does, and a queue bound for the routing key `live` only.
 */
async function withPublisher(
  abandonAfterMs: number,
  work: (context: {
    publisher: ResponsePublisher;
    /** Responses held for want of a queue, as the publisher last reported to its observer. */
    unrouted: () => number;
    bind: (routingKey: string) => Promise<void>;
    received: () => Promise<string[]>;
  }) => Promise<void>,
): Promise<void> {
  const suffix = crypto.randomUUID().slice(0, 8);
  const exchange = `test-publisher-${suffix}`;
  const queue = `test-publisher-${suffix}`;
  const model = await amqp.connect(AMQP_URL);
  const channel = await model.createChannel();
  await channel.assertExchange(exchange, "direct", SERVER_RESPONSE_EXCHANGE);
  await channel.assertQueue(queue, { exclusive: true });
  await channel.bindQueue(queue, exchange, "live");
  const logger = new Logger({ level: "error", sink: () => {} });
  const broker = new BrokerConnection(
    brokerEndpoints(AMQP_URL, { username: "guest", password: "guest" }),
    { logger },
  );
  let unrouted = 0;
  const publisher = new ResponsePublisher(broker, {
    exchange,
    logger,
    unroutedBackoff: { initialMs: 20, maxMs: 50 },
    abandonAfterMs,
    observer: { unrouted: (count) => unrouted = count },
  });
  broker.start();
  try {
    await work({
      publisher,
      unrouted: () => unrouted,
      bind: (routingKey) => channel.bindQueue(queue, exchange, routingKey).then(() => {}),
      received: async () => {
        const bodies: string[] = [];
        for (let message = await channel.get(queue); message; message = await channel.get(queue)) {
          bodies.push(message.content.toString("utf8"));
        }
        return bodies;
      },
    });
  } finally {
    await publisher.close();
    await broker.close();
    await channel.deleteExchange(exchange);
    await model.close();
  }
}

Deno.test("ResponsePublisher keeps an unroutable key however long while nothing else is routed", async () => {
  await withPublisher(100, async ({ publisher, unrouted, bind, received }) => {
    // Observed from the start: should an assertion below fail, the publisher's close rejects
    // them, and that must not hide the failure as an uncaught rejection.
    const both = Promise.all([
      publisher.publish("later", encoder.encode("1")),
      publisher.publish("later", encoder.encode("2")),
    ]);
    both.catch(() => {});
    assert(await eventually(() => unrouted() === 2, 10_000), "both held");
    // Several abandon periods pass with no other key routed: the server is away, not gone.
    await new Promise((resolve) => setTimeout(resolve, 400));
    // Both still held: the count leaves out the one out on a try (a probe) while it is out, so
    // it is read once the probe is back, as it is again and again until the key is bound.
    assert(await eventually(() => unrouted() === 2, 10_000), "both still held");
    await bind("later");
    await both;
    assertEquals(await received(), ["1", "2"], "in order, once each");
    assertEquals(publisher.pending, 0);
  });
});

Deno.test("ResponsePublisher gives up a key left unbound while other keys are routed", async () => {
  await withPublisher(200, async ({ publisher, unrouted, received }) => {
    const gone = publisher.publish("gone", encoder.encode("old server"));
    const outcome = gone.then(() => "routed", (error) => error);
    assert(await eventually(() => unrouted() === 1, 10_000), "held");
    // The server is back under a new routing key: its responses go through meanwhile.
    await publisher.publish("live", encoder.encode("new server"));
    await new Promise((resolve) => setTimeout(resolve, 250));
    await publisher.publish("live", encoder.encode("new server again"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const error = await Promise.race([
      outcome,
      new Promise((resolve) => timer = setTimeout(() => resolve("still held"), 10_000)),
    ]).finally(() => clearTimeout(timer));
    assert(error instanceof UnroutableResponseError, `given up: ${error}`);
    assertEquals(unrouted(), 0);
    assertEquals(await received(), ["new server", "new server again"]);
  });
});
