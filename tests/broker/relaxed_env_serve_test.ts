/**
 * The relaxed spellings of the settings' variables on a real `serve` against RabbitMQ (the
 * spellings themselves are unit-tested in tests/unit/relaxed_env_test.ts).
 *
 * @module
 */
import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { brokerCtl, uniqueNames } from "../helpers/ops_harness.ts";
import { AMQP_URL, ServerSide } from "../helpers/broker_harness.ts";
import { BROKER_ADDRESS, CliChild } from "../helpers/cli_run.ts";

Deno.test("serve consumes the queue and declares the durability that relaxed spellings name", async () => {
  const names = uniqueNames("relaxed");
  await using _server = await ServerSide.open(names);
  const url = new URL(AMQP_URL);
  await using runner = new CliChild([
    "serve",
    "--request-queue",
    names.requestQueue,
    "--response-exchange",
    names.responseExchange,
    "--cancellation-exchange",
    names.cancellationExchange,
  ], {
    env: {
      "TERARIUM_MQ-ADDRESSES": BROKER_ADDRESS,
      "TERARIUM_MQ-USERNAME": decodeURIComponent(url.username),
      "TERARIUM_MQ-PASSWORD": decodeURIComponent(url.password),
      "TERARIUM_TASKRUNNER_REQUEST-TYPE": names.requestType,
      TERARIUM_DURABLEQUEUES: "true",
    },
  });
  await runner.ready();
  assertMatch(runner.stderr, new RegExp(`queue=${names.fullRequestQueue}\\b`));
  const queues = await brokerCtl(["list_queues", "name", "durable", "--no-table-headers", "-q"]);
  const line = queues.split("\n").find((row) => row.split("\t")[0] === names.fullRequestQueue);
  assertEquals(line?.split("\t")[1]?.trim(), "true", queues);
});
