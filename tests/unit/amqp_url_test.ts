import { isConsumerTimeout } from "../../src/broker/request_consumer.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotIncludes,
  assertThrows,
} from "../helpers/assert.ts";
import {
  BrokerAddressError,
  brokerEndpoints,
  connectOptions,
  parseBrokerAddresses,
  redactBrokerAddresses,
} from "../../src/config/amqp_url.ts";
import { backoffDelay, DEFAULT_BACKOFF } from "../../src/broker/connection.ts";

const GUEST = { username: "guest", password: "guest" };

/** The endpoints of `text` as `protocol://user:password@host:port/vhost`, for short asserts. */
function endpoints(text: string, defaults = GUEST): string[] {
  return brokerEndpoints(text, defaults).map((e) =>
    `${e.protocol}://${e.username}:${e.password}@${e.hostname}:${e.port}/${e.vhost}`
  );
}

Deno.test("brokerEndpoints() reads every form of spring.rabbitmq.addresses", async (t) => {
  const cases: Array<[string, string[]]> = [
    ["amqp://rabbitmq:5672", ["amqp://guest:guest@rabbitmq:5672//"]],
    ["amqp://rabbitmq", ["amqp://guest:guest@rabbitmq:5672//"]],
    ["rabbitmq:5672", ["amqp://guest:guest@rabbitmq:5672//"]],
    ["rabbitmq", ["amqp://guest:guest@rabbitmq:5672//"]],
    ["amqps://rabbitmq", ["amqps://guest:guest@rabbitmq:5671//"]],
    ["amqp://rabbitmq:5672/prod", ["amqp://guest:guest@rabbitmq:5672/prod"]],
    ["rabbitmq:5672/prod", ["amqp://guest:guest@rabbitmq:5672/prod"]],
    ["rabbitmq/", ["amqp://guest:guest@rabbitmq:5672//"]],
    ["amqp://rabbitmq/%2Fprod", ["amqp://guest:guest@rabbitmq:5672//prod"]],
    ["host1:5672,host2:5673", [
      "amqp://guest:guest@host1:5672//",
      "amqp://guest:guest@host2:5673//",
    ]],
    [" amqp://host1:5672 , amqp://host2:5672 ,", [
      "amqp://guest:guest@host1:5672//",
      "amqp://guest:guest@host2:5672//",
    ]],
    ["amqp://[::1]:5672", ["amqp://guest:guest@::1:5672//"]],
    ["10.0.0.7", ["amqp://guest:guest@10.0.0.7:5672//"]],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => assertEquals(endpoints(text), expected));
  }
});

Deno.test("brokerEndpoints() takes what an address leaves out from the first, as Spring does", async (t) => {
  await t.step("credentials written in an address win over the settings", () => {
    assertEquals(endpoints("amqp://alice:s3cret@rabbit", { username: "u", password: "p" }), [
      "amqp://alice:s3cret@rabbit:5672//",
    ]);
    assertEquals(endpoints("alice:s3cret@rabbit:5672"), ["amqp://alice:s3cret@rabbit:5672//"]);
  });
  await t.step("credentials are percent-decoded", () => {
    assertEquals(endpoints("amqp://us%20er:p%40ss%3Aw%2Frd%25@rabbit"), [
      "amqp://us er:p@ss:w/rd%@rabbit:5672//",
    ]);
  });
  await t.step("TLS, credentials and vhost of the first address apply to the others", () => {
    assertEquals(endpoints("amqps://a:b@h1/v,h2,amqp://c:d@h3:1234/w"), [
      "amqps://a:b@h1:5671/v",
      "amqps://a:b@h2:5671/v",
      "amqp://c:d@h3:1234/w",
    ]);
  });
  await t.step("without credentials anywhere, the settings' user and password", () => {
    assertEquals(endpoints("h1,h2", { username: "u", password: "p" }), [
      "amqp://u:p@h1:5672//",
      "amqp://u:p@h2:5672//",
    ]);
  });
});

Deno.test("brokerEndpoints() keeps the heartbeat and other parameters of a query", async (t) => {
  await t.step("a heartbeat is added unless the address has one", () => {
    const [added] = brokerEndpoints("amqp://rabbit", GUEST, { heartbeatSeconds: 30 });
    assertEquals(added?.heartbeat, 30);
    const [kept] = brokerEndpoints("amqp://rabbit?heartbeat=5&frameMax=8192", GUEST, {
      heartbeatSeconds: 30,
    });
    assertEquals([kept?.heartbeat, kept?.frameMax], [5, 8192]);
    assertEquals(brokerEndpoints("amqp://rabbit", GUEST)[0]?.heartbeat, undefined);
  });
  await t.step("amqplib gets the vhost encoded, as it decodes it", () => {
    const [endpoint] = brokerEndpoints("amqp://rabbit/%2Fprod%25", GUEST);
    assertEquals(endpoint?.vhost, "/prod%");
    assertEquals(connectOptions(endpoint!).vhost, "%2Fprod%25");
  });
});

Deno.test("parseBrokerAddresses() rejects what is not an address, never showing a password", async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["", /No broker address/],
    [" , ", /No broker address/],
    ["http://user:Sup3rS3cret@host", /must be an amqp:\/\/ or amqps:\/\/ URL/],
    ["amqp://", /no host|not a URL/],
    ["host:notaport", /not a URL/],
    ["amqp://user:Sup3rS3cret@host?heartbeat=soon", /heartbeat must be a whole number/],
    ["amqp://user:Sup3r%ZZS3cret@host", /malformed percent-encoding/],
  ];
  for (const [text, reason] of cases) {
    await t.step(JSON.stringify(text), () => {
      const error = assertThrows(() => parseBrokerAddresses(text), BrokerAddressError);
      assertMatch(error.message, reason);
      assertNotIncludes(error.message, "Sup3r");
    });
  }
});

Deno.test("endpoint labels and redactBrokerAddresses() hide passwords", async (t) => {
  await t.step(
    "a label masks the user, as every log line does, and never shows the password",
    () => {
      const [endpoint] = brokerEndpoints("amqps://user:p%40ss@rabbit:5671/vh", GUEST);
      assertEquals(endpoint?.label, "amqps://u***:***@rabbit:5671/vh");
    },
  );
  await t.step("every address of a list, whatever its password holds", () => {
    assertEquals(
      redactBrokerAddresses('amqp://u:a@b c@h1, v:x"y@h2/vh,h3'),
      "amqp://u***:***@h1, v***:***@h2/vh,h3",
    );
  });
});

Deno.test("backoffDelay() grows exponentially within its jitter bounds", async (t) => {
  const backoff = { initialMs: 100, maxMs: 15_000 };
  const SAMPLES = 2_000;
  await t.step("each attempt lies between half its ceiling and its ceiling", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt);
      let min = Infinity;
      let max = 0;
      for (let i = 0; i < SAMPLES; i++) {
        const delay = backoffDelay(attempt, backoff);
        min = Math.min(min, delay);
        max = Math.max(max, delay);
      }
      assert(min >= ceiling / 2, `attempt ${attempt}: ${min} < ${ceiling / 2}`);
      assert(max <= ceiling, `attempt ${attempt}: ${max} > ${ceiling}`);
      assert(max - min > ceiling / 4, `attempt ${attempt}: jittered (${min}..${max})`);
    }
  });
  await t.step("the mean doubles until the cap", () => {
    const mean = (attempt: number) => {
      let sum = 0;
      for (let i = 0; i < SAMPLES; i++) sum += backoffDelay(attempt, backoff);
      return sum / SAMPLES;
    };
    for (let attempt = 0; attempt < 6; attempt++) {
      const ratio = mean(attempt + 1) / mean(attempt);
      assert(ratio > 1.8 && ratio < 2.2, `attempt ${attempt}: ratio ${ratio}`);
    }
  });
  await t.step("never exceeds maxMs, even for huge attempt numbers", () => {
    for (const attempt of [8, 30, 31, 100, 1_000_000, Number.MAX_SAFE_INTEGER]) {
      for (let i = 0; i < 200; i++) {
        const delay = backoffDelay(attempt, backoff);
        assert(Number.isFinite(delay), `attempt ${attempt}: ${delay}`);
        assert(
          delay <= backoff.maxMs && delay >= backoff.maxMs / 2,
          `attempt ${attempt}: ${delay}`,
        );
      }
    }
  });
  await t.step("the default backoff starts at 100 ms and caps at 15 s", () => {
    assertEquals(DEFAULT_BACKOFF, { initialMs: 100, maxMs: 15_000 });
    assert(backoffDelay(0, DEFAULT_BACKOFF) <= 100);
    assert(backoffDelay(50, DEFAULT_BACKOFF) >= 7_500);
  });
});

Deno.test("isConsumerTimeout() recognises RabbitMQ's delivery acknowledgement timeout", () => {
  const timeout = new Error(
    'Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. This timeout value can be configured, see consumers doc guide to learn more"',
  );
  assertEquals(isConsumerTimeout(timeout), true);
  assertEquals(isConsumerTimeout(new Error("Channel closed by server: 404 (NOT-FOUND)")), false);
  assertEquals(isConsumerTimeout(undefined), false);
});
