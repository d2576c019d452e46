import { brokerEndpoints } from "../../src/config/amqp_url.ts";
import amqp from "amqplib";
import { assert, assertEquals } from "../helpers/assert.ts";
import { AMQP_URL, SERVER_RESPONSE_EXCHANGE } from "../helpers/broker_harness.ts";
import { eventually } from "../helpers/engine.ts";
import { brokerCtl } from "../helpers/ops_harness.ts";
import { RabbitNode } from "../helpers/rabbit_node.ts";
import { BrokerConnection } from "../../src/broker/connection.ts";
import {
  type RefusalReason,
  ResponsePublisher,
  ResponseTooLargeError,
  UnroutableResponseError,
} from "../../src/broker/publisher.ts";
import { Logger } from "../../src/observability/log.ts";

const encoder = new TextEncoder();

interface Context {
  publisher: ResponsePublisher;
  /** Responses held, as the publisher last reported to its observer. */
  unrouted: () => number;
  abandoned: () => number;
  refused: Record<RefusalReason, number>;
  /** Lines the publisher logged. */
  logs: string[];
  exchange: string;
  /** A channel of the server's side (guest, full rights). */
  channel: amqp.Channel;
  bind: (routingKey: string, queue?: string) => Promise<void>;
  /** Bodies waiting in `queue` (the default queue by default), taken. */
  received: (queue?: string) => Promise<string[]>;
}

/**
 * A publisher on a real broker with short retry delays and `holdMs`, its exchange declared as
 * the server does, and a queue bound for the routing key `live` only. `url` is the broker (and
 * vhost) of the server's side; `publisherUrl` the publisher's, if another user's.
 */
async function withPublisher(
  options: { holdMs: number; maxHeldBytes?: number; url?: string; publisherUrl?: string },
  work: (context: Context) => Promise<void>,
): Promise<void> {
  const suffix = crypto.randomUUID().slice(0, 8);
  const exchange = `test-publisher-${suffix}`;
  const queue = `test-publisher-${suffix}`;
  const url = options.url ?? AMQP_URL;
  const model = await amqp.connect(url);
  const channel = await model.createChannel();
  await channel.assertExchange(exchange, "direct", SERVER_RESPONSE_EXCHANGE);
  await channel.assertQueue(queue, { exclusive: true });
  await channel.bindQueue(queue, exchange, "live");
  const logs: string[] = [];
  const logger = new Logger({ level: "info", sink: (line) => logs.push(line) });
  const publisherUrl = options.publisherUrl ?? url;
  const parsed = new URL(publisherUrl);
  const broker = new BrokerConnection(
    brokerEndpoints(publisherUrl, {
      username: decodeURIComponent(parsed.username),
      password: decodeURIComponent(parsed.password),
    }),
    { logger },
  );
  let unrouted = 0;
  let abandoned = 0;
  const refused: Record<RefusalReason, number> = { nack: 0, too_large: 0, access_refused: 0 };
  const publisher = new ResponsePublisher(broker, {
    exchange,
    logger,
    unroutedBackoff: { initialMs: 20, maxMs: 50 },
    holdMs: options.holdMs,
    ...(options.maxHeldBytes !== undefined ? { maxHeldBytes: options.maxHeldBytes } : {}),
    observer: {
      unrouted: (count) => unrouted = count,
      abandoned: (count) => abandoned += count,
      refused: (reason) => refused[reason]++,
    },
  });
  broker.start();
  try {
    await work({
      publisher,
      unrouted: () => unrouted,
      abandoned: () => abandoned,
      refused,
      logs,
      exchange,
      channel,
      bind: (routingKey, to = queue) => channel.bindQueue(to, exchange, routingKey).then(() => {}),
      received: async (from = queue) => {
        const bodies: string[] = [];
        for (let message = await channel.get(from); message; message = await channel.get(from)) {
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

function count(logs: string[], text: string): number {
  return logs.filter((line) => line.includes(text)).length;
}

Deno.test("ResponsePublisher holds responses with no queue, lets their caller go, and delivers them in order once bound", async () => {
  await withPublisher({ holdMs: 60_000 }, async ({ publisher, unrouted, bind, received, logs }) => {
    const outcomes = await Promise.all([
      publisher.publish("later", encoder.encode("1"), { taskId: "t1", status: "RUNNING" }),
      publisher.publish("later", encoder.encode("2"), { taskId: "t1", status: "SUCCESS" }),
    ]);
    assertEquals(outcomes, ["held", "held"], "the callers do not wait for a queue");
    assert(await eventually(() => unrouted() === 2, 10_000), "both held");
    const held = publisher.held();
    assertEquals(held.map((h) => [h.taskId, h.status, h.routingKey]), [
      ["t1", "RUNNING", "later"],
      ["t1", "SUCCESS", "later"],
    ]);
    assert(held.every((h) => h.giveUpAt === h.heldSince + 60_000), "each has its give-up time");
    // A response of another key is not held up.
    assertEquals(await publisher.publish("live", encoder.encode("other")), "routed");
    assertEquals(await received(), ["other"]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // several tries fail meanwhile
    await bind("later");
    await publisher.idle();
    assertEquals(await received(), ["1", "2"], "in order, once each");
    assertEquals(publisher.pending, 0);
    assertEquals(unrouted(), 0);
    assertEquals(count(logs, "Response not routed"), 1, "said once, not per try");
    assertEquals(count(logs, "Responses routed again"), 1, "and once when it is over");
  });
});

Deno.test("ResponsePublisher gives a held response up after its own time limit, whatever else is routed", async () => {
  await withPublisher({ holdMs: 300 }, async ({ publisher, unrouted, abandoned, received }) => {
    const outcome = await publisher.publish("gone", encoder.encode("old server"), {
      taskId: "t-gone",
    });
    assertEquals(outcome, "held");
    assert(await eventually(() => abandoned() === 1, 10_000), "given up");
    assertEquals(unrouted(), 0);
    assertEquals(publisher.held(), []);
    assertEquals(publisher.pending, 0);
    // Nothing else was needed for it: no other key was routed meanwhile.
    assertEquals(await publisher.publish("live", encoder.encode("new server")), "routed");
    assertEquals(await received(), ["new server"]);
    // One never held rejects as given up only if it is held past its limit: this one routed.
  });
  assert(new UnroutableResponseError("x") instanceof Error);
});

Deno.test("ResponsePublisher: a probe given up while the exchange is gone leaves its key free for later responses", async () => {
  await withPublisher(
    { holdMs: 300 },
    async ({ publisher, abandoned, channel, exchange, bind, received }) => {
      assertEquals(await publisher.publish("k", encoder.encode("A"), { taskId: "a" }), "held");
      // Its tries now fail on a missing exchange (the channel closes under them) until it is
      // given up, out or queued.
      await channel.deleteExchange(exchange);
      assert(await eventually(() => abandoned() === 1, 10_000), "the held response given up");
      await channel.assertExchange(exchange, "direct", SERVER_RESPONSE_EXCHANGE);
      await bind("k");
      // The server is back on the same key: a later response reaches it.
      await publisher.publish("k", encoder.encode("B"), { taskId: "b" });
      const got: string[] = [];
      assert(
        await eventually(async () => {
          got.push(...await received());
          return got.includes("B");
        }, 10_000),
        `the later response delivered (abandoned ${abandoned()}, held ${publisher.heldCount})`,
      );
      assertEquals(got, ["B"]);
      assertEquals(abandoned(), 1, "only the first was given up");
    },
  );
});

Deno.test("ResponsePublisher: past its bound of held bytes, a held response's caller waits for its delivery", async () => {
  await withPublisher(
    { holdMs: 60_000, maxHeldBytes: 150 },
    async ({ publisher, unrouted, bind, received }) => {
      const body = "x".repeat(100);
      assertEquals(await publisher.publish("gone", encoder.encode(body)), "held");
      let second: string | undefined;
      const waiting = publisher.publish("gone", encoder.encode(body)).then((outcome) =>
        second = outcome
      );
      assert(await eventually(() => unrouted() === 2, 10_000), "both held");
      assertEquals(second, undefined, "over the bound, its caller is not let go");
      await bind("gone");
      await waiting;
      assertEquals(second, "routed");
      assertEquals(await received(), [body, body]);
    },
  );
});

Deno.test("ResponsePublisher: a nacked response is held alone, with no re-send storm and no duplicate elsewhere", async () => {
  await withPublisher({ holdMs: 60_000 }, async (context) => {
    const { publisher, channel, exchange, refused, received, logs, unrouted } = context;
    // A server queue with a length limit that refuses publications once full.
    const full = `${exchange}-full`;
    await channel.assertQueue(full, {
      exclusive: true,
      arguments: { "x-max-length": 1, "x-overflow": "reject-publish" },
    });
    await channel.bindQueue(full, exchange, "full");
    assertEquals(await publisher.publish("full", encoder.encode("f1")), "routed");
    const nacked = publisher.publish("full", encoder.encode("f2"), { taskId: "t-full" });
    const live = Array.from({ length: 50 }, (_, i) => String(i));
    const routed = await Promise.all(
      live.map((body) => publisher.publish("live", encoder.encode(body))),
    );
    assertEquals(await nacked, "held", "the refused response is held, its caller let go");
    assert(routed.every((outcome) => outcome === "routed"));
    assertEquals(await received(), live, "the other server got each response once, in order");
    assert(refused.nack >= 1, "counted as refused: nack");
    assertEquals(publisher.held()[0]?.reason, "nack");
    await new Promise((resolve) => setTimeout(resolve, 300)); // tries fail meanwhile
    assert(count(logs, "Response refused by the broker") === 1, "one line, not one per try");
    assertEquals(count(logs, "Broker channel closed"), 0, "the channel was never closed");
    // The server reads its queue: the held response goes in.
    // (Taking f1 makes room at once: f2's next try may land before this read ends.)
    const fullBodies = await received(full);
    assert(await eventually(() => unrouted() === 0, 10_000), "delivered once there is room");
    fullBodies.push(...await received(full));
    assertEquals(fullBodies, ["f1", "f2"], "in order, once each");
    assertEquals(await received(), [], "no duplicate anywhere");
  });
});

Deno.test("ResponsePublisher: no write access holds responses, reports the problem, probes slowly, and recovers", async () => {
  const vhost = `test-publisher-${crypto.randomUUID().slice(0, 8)}`;
  const user = `${vhost}-user`;
  await brokerCtl(["add_vhost", vhost]);
  try {
    await brokerCtl(["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    await brokerCtl(["add_user", user, "secret"]);
    // Read and configure everything, write nothing.
    await brokerCtl(["set_permissions", "-p", vhost, user, ".*", "^$", ".*"]);
    const server = new URL(AMQP_URL);
    server.pathname = `/${vhost}`;
    const runner = new URL(server);
    runner.username = user;
    runner.password = "secret";
    await withPublisher(
      { holdMs: 60_000, url: server.href, publisherUrl: runner.href },
      async ({ publisher, refused, received, logs, unrouted }) => {
        const outcomes = await Promise.all(
          ["a", "b", "c"].map((body) => publisher.publish("live", encoder.encode(body))),
        );
        assertEquals(outcomes, ["held", "held", "held"], "callers let go");
        assertEquals(unrouted(), 3);
        assert(publisher.problem?.includes("ACCESS_REFUSED"), `problem: ${publisher.problem}`);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        // Backoff from 0.5 s: a few probes in 1.5 s, not one per millisecond.
        assert(
          refused.access_refused >= 1 && refused.access_refused <= 4,
          `${refused.access_refused}`,
        );
        assertEquals(count(logs, "Cannot publish responses"), 1, "one line");
        assert(count(logs, "Broker channel closed") <= 1, "the channel's own warning once too");
        await brokerCtl(["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]);
        assert(
          await eventually(() => publisher.pending === 0, 40_000),
          `sent once allowed: problem ${publisher.problem}, refusals ${refused.access_refused}, ${
            JSON.stringify(publisher.held())
          }\n${logs.join("")}`,
        );
        assertEquals(await received(), ["a", "b", "c"], "in order, once each");
        assertEquals(publisher.problem, undefined);
        assertEquals(count(logs, "Responses are published again"), 1, "one recovery line");
      },
    );
  } finally {
    await brokerCtl(["delete_user", user]).catch(() => {});
    await brokerCtl(["delete_vhost", vhost]);
  }
});

Deno.test("ResponsePublisher refuses a response over the broker's max_message_size alone, and learns the limit", async () => {
  await using node = await RabbitNode.start();
  await node.ctl(["eval", "application:set_env(rabbit, max_message_size, 65536)."]);
  await withPublisher({ holdMs: 60_000, url: node.url }, async (context) => {
    const { publisher, refused, received, logs } = context;
    const big = new Uint8Array(100_000).fill(0x61);
    const results = await Promise.allSettled([
      publisher.publish("live", encoder.encode("before")),
      publisher.publish("live", big, { taskId: "t-big" }),
      publisher.publish("live", encoder.encode("after")),
    ]);
    assertEquals(results[0], { status: "fulfilled", value: "routed" });
    assertEquals(results[2], { status: "fulfilled", value: "routed" });
    const error = results[1].status === "rejected" ? results[1].reason : undefined;
    assert(error instanceof ResponseTooLargeError, `too large: ${error}`);
    assertEquals(error.limit, 65536, "the broker's limit, as it said");
    assertEquals(error.bytes, 100_000);
    assertEquals(await received(), ["before", "after"], "the others once each");
    // The limit is known now: a second one is refused without costing the channel.
    const again = await publisher.publish("live", big).catch((e) => e);
    assert(again instanceof ResponseTooLargeError);
    assertEquals(refused.too_large, 2);
    assertEquals(count(logs, "Broker channel closed"), 1, "closed once, by the first");
    assertEquals(count(logs, "larger than the broker's max_message_size"), 1, "one line");
  });
});
