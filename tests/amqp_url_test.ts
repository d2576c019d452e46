import { isConsumerTimeout } from "../src/broker/request_consumer.ts";
import { assert, assertEquals, assertNotIncludes } from "./helpers/assert.ts";
import { buildAmqpUrl, redactAmqpUrl } from "../src/broker/amqp_url.ts";
import { backoffDelay, DEFAULT_BACKOFF } from "../src/broker/connection.ts";

Deno.test("buildAmqpUrl() encodes credentials so they round-trip through URL", async (t) => {
  const cases = [
    { username: "guest", password: "guest" },
    { username: "us er", password: "p@ss:w/rd%" },
    { username: "a@b:c", password: "?#[]/\\ é ✓ %25 +&=" },
    { username: "", password: "only-password" },
  ];
  for (const credentials of cases) {
    await t.step(JSON.stringify(credentials), () => {
      const url = new URL(buildAmqpUrl("amqp://rabbit:5672", credentials));
      assertEquals(decodeURIComponent(url.username), credentials.username);
      assertEquals(decodeURIComponent(url.password), credentials.password);
      assertEquals(url.hostname, "rabbit");
      assertEquals(url.port, "5672");
      assertEquals(url.pathname, "");
    });
  }
});

Deno.test("buildAmqpUrl() keeps the vhost, scheme and query of the address", async (t) => {
  const credentials = { username: "u", password: "p" };
  await t.step("a vhost", () => {
    const url = new URL(buildAmqpUrl("amqps://rabbit:5671/my-vhost", credentials));
    assertEquals(url.protocol, "amqps:");
    assertEquals(url.pathname, "/my-vhost");
  });
  await t.step("an encoded vhost stays encoded", () => {
    const url = buildAmqpUrl("amqp://rabbit/%2Fprod", credentials);
    assertEquals(new URL(url).pathname, "/%2Fprod");
  });
  await t.step("credentials in the address are replaced", () => {
    const url = new URL(buildAmqpUrl("amqp://old:oldpw@rabbit/v", credentials));
    assertEquals([url.username, url.password, url.pathname], ["u", "p", "/v"]);
  });
  await t.step("a heartbeat is added unless the address has one", () => {
    const added = new URL(buildAmqpUrl("amqp://rabbit", credentials, { heartbeatSeconds: 30 }));
    assertEquals(added.searchParams.get("heartbeat"), "30");
    const kept = new URL(
      buildAmqpUrl("amqp://rabbit?heartbeat=5", credentials, { heartbeatSeconds: 30 }),
    );
    assertEquals(kept.searchParams.getAll("heartbeat"), ["5"]);
    assertEquals(new URL(buildAmqpUrl("amqp://rabbit", credentials)).search, "");
  });
});

Deno.test("redactAmqpUrl() hides the password and keeps the rest", async (t) => {
  await t.step("a built URL with special characters", () => {
    const url = buildAmqpUrl("amqp://rabbit:5672/vh", { username: "user", password: "p@ss:w/rd%" });
    const redacted = redactAmqpUrl(url);
    assertEquals(redacted, "amqp://user:***@rabbit:5672/vh");
    assertNotIncludes(redacted, "p%40ss");
    assertNotIncludes(redacted, "rd%25");
  });
  await t.step("a URL without a password is unchanged", () => {
    assertEquals(redactAmqpUrl("amqp://rabbit:5672"), "amqp://rabbit:5672");
  });
  await t.step("text that is not a URL is not shown", () => {
    assertEquals(redactAmqpUrl("not a url secret"), "<invalid url>");
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
