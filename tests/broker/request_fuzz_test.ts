import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { InvalidRequestError, parseTaskRequest } from "../../src/protocol/request.ts";

/** A small deterministic generator, so that a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encoder = new TextEncoder();

/**
 * One generated hostile message, by kind; sizes stay modest except where the kind is size.
 * Its routing key is `routingKey`: a terminal response waits for a queue bound to its key.
 */
function fuzzMessage(next: () => number, index: number, routingKey = "rk"): Uint8Array {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const valid = {
    id: crypto.randomUUID(),
    script: "echo.sh",
    input: "aGVsbG8=",
    timeoutMinutes: 1,
    routingKey,
  };
  const json = JSON.stringify(valid);
  const routingKeyField = `"routingKey":${JSON.stringify(routingKey)}`;
  const wrongValues = [null, 0, -1, 1e308, true, "", "x".repeat(1000), [], {}, [1, [2]], { a: 1 }];
  switch (index % 8) {
    case 0: // random bytes
      return crypto.getRandomValues(new Uint8Array(Math.floor(next() * 2048)));
    case 1: // truncated JSON
      return encoder.encode(json.slice(0, Math.floor(next() * json.length)));
    case 2: { // a field of the wrong type
      const field = pick(Object.keys(valid) as (keyof typeof valid)[]);
      return encoder.encode(JSON.stringify({ ...valid, [field]: pick(wrongValues) }));
    }
    case 3: // a huge string somewhere
      return encoder.encode(JSON.stringify({
        ...valid,
        [pick(["script", "routingKey", "userId", "requestSHA256", "input"])]: "A".repeat(
          index % 200 === 3 ? 8_000_000 : 1 + Math.floor(next() * 100_000),
        ),
      }));
    case 4: { // deep nesting
      const depth = index % 200 === 4 ? 200_000 : 100 + Math.floor(next() * 20_000);
      const deep = `${"[".repeat(depth)}${"]".repeat(depth)}`;
      return encoder.encode(
        json.replace(routingKeyField, `${routingKeyField},"additionalProperties":${deep}`),
      );
    }
    case 5: // not an object
      return encoder.encode(JSON.stringify(pick(wrongValues)));
    case 6: // prototype keys and unknown fields
      return encoder.encode(
        `{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},${json.slice(1)}`,
      );
    default: // bad base64, invalid UTF-8 inside JSON
      return next() < 0.5
        ? encoder.encode(
          JSON.stringify({ ...valid, input: "@@@" + "=".repeat(Math.floor(next() * 5)) }),
        )
        : new Uint8Array([...encoder.encode('{"id":"'), 0xff, 0xfe, ...encoder.encode('"}')]);
  }
}

Deno.test("parseTaskRequest() survives thousands of hostile messages: a request or an InvalidRequestError", () => {
  const next = random(20261127);
  let valid = 0;
  let invalid = 0;
  for (let i = 0; i < 4000; i++) {
    const message = fuzzMessage(next, i);
    try {
      parseTaskRequest(message);
      valid++;
    } catch (error) {
      if (!(error instanceof InvalidRequestError)) {
        throw new Error(`Message ${i} (kind ${i % 8}) threw ${error}`, { cause: error });
      }
      assert(error.message.length < 2_000, `message ${i}: the error stays short`);
      invalid++;
    }
  }
  assertEquals(valid + invalid, 4000);
  assert(valid > 0 && invalid > 2000, `both kinds seen (${valid} valid, ${invalid} invalid)`);
  assertEquals(({} as Record<string, unknown>).polluted, undefined, "no prototype pollution");
});

Deno.test("serve survives a flood of hostile messages with bounded memory and keeps serving", async () => {
  const names = uniqueNames("fuzz");
  await using server = await ServerSide.open(names);
  await using runner = new CliChild(["serve", ...brokerFlags(names)]);
  await runner.ready();
  const rss = () => {
    const { stdout } = new Deno.Command("cat", { args: [`/proc/${runner.pid}/status`] })
      .outputSync();
    return Number(/VmRSS:\s+(\d+)/.exec(new TextDecoder().decode(stdout))![1]) * 1024;
  };
  const next = random(7);
  const count = 800;
  // Bound by the server: a request that is valid keeps its slot until its response is routed.
  for (let i = 0; i < count; i++) server.publishRaw(fuzzMessage(next, i, names.routingKey));
  const probe = makeRequest({ script: fixture("echo.sh"), input: "alive" }, names.routingKey);
  server.publishRequest(probe);
  const responses = await server.terminal(probe.id, 60_000);
  assertEquals(outputText(responses.at(-1)), "alive");
  assertEquals(await server.queueDepth(), 0, "every hostile message was settled, none requeued");
  const resident = rss();
  assert(
    resident < 400 * 1024 * 1024,
    `resident memory stays bounded: ${(resident / 2 ** 20).toFixed(0)} MiB`,
  );
});
