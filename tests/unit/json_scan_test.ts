import { assert, assertEquals } from "../helpers/assert.ts";
import { findTopLevelString, findTopLevelValue } from "../../src/protocol/json_scan.ts";
import { parseTaskRequest } from "../../src/protocol/request.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function valueAt(text: string, key: string): string | undefined {
  const bytes = encoder.encode(text);
  const span = findTopLevelString(bytes, key);
  return span ? decoder.decode(bytes.subarray(span.start, span.end)) : undefined;
}

Deno.test("findTopLevelString() finds a top-level string value however the object around it looks", async (t) => {
  await t.step(
    "plain",
    () => assertEquals(valueAt('{"a":1,"input":"QUJD","b":2}', "input"), "QUJD"),
  );
  await t.step(
    "whitespace",
    () => assertEquals(valueAt(' {\n "input" : "QUJD" }', "input"), "QUJD"),
  );
  await t.step("after nested values that mention the key", () => {
    const text =
      '{"x":{"input":"no","y":["input",{"input":"no"}]},"s":"\\"input\\":\\"no\\"","input":"yes"}';
    assertEquals(valueAt(text, "input"), "yes");
  });
  await t.step("escaped backslash before a quote", () => {
    assertEquals(valueAt('{"s":"a\\\\","input":"yes"}', "input"), "yes");
  });
  await t.step("absent, not a string, or not an object", () => {
    assertEquals(valueAt('{"a":"input"}', "input"), undefined);
    assertEquals(valueAt('{"input":null}', "input"), undefined);
    assertEquals(valueAt('["input","x"]', "input"), undefined);
  });
  await t.step("malformed text gives up rather than guesses", () => {
    assertEquals(valueAt('{"a" 1,"input":"x"}', "input"), undefined);
    assertEquals(valueAt('{"input":"unterminated', "input"), undefined);
  });
});

Deno.test("findTopLevelString() agrees with JSON.parse on generated objects", () => {
  const values = [1, -2.5e3, true, false, null, "s", 'q"uote', "back\\slash", "é☃", [], [1, [
    2,
    {},
  ]], {
    input: "decoy",
  }];
  for (let seed = 0; seed < 500; seed++) {
    const object: Record<string, unknown> = {};
    const keys = ["a", "input", "b", "c"].sort(() => Math.sin(seed * 7 + 1) - 0.3);
    for (const [i, key] of keys.entries()) {
      object[key] = key === "input" && seed % 3 !== 0
        ? `in-${seed}`
        : values[(seed + i) % values.length];
    }
    const text = seed % 2 ? JSON.stringify(object) : JSON.stringify(object, null, 2);
    const expected = typeof object.input === "string"
      ? JSON.stringify(object.input).slice(1, -1)
      : undefined;
    assertEquals(valueAt(text, "input"), expected, text);
  }
});

Deno.test("parseTaskRequest() decodes a large input straight from the bytes, byte for byte", () => {
  const input = new Uint8Array(3 * 1024 * 1024 + 1);
  for (let i = 0; i < input.length; i++) input[i] = (i * 31 + (i >> 8)) % 256;
  const id = crypto.randomUUID();
  const body = encoder.encode(JSON.stringify({
    additionalProperties: { input: "decoy", note: "x".repeat(10) },
    id,
    input: input.toBase64(),
    script: "echo.sh",
    routingKey: "rk",
    timeoutMinutes: 2,
  }));
  const request = parseTaskRequest(body);
  assertEquals(request.id, id);
  assertEquals(request.timeoutMinutes, 2);
  assertEquals(request.additionalProperties?.value, { input: "decoy", note: "xxxxxxxxxx" });
  assertEquals(request.input.length, input.length);
  assert(request.input.every((byte, i) => byte === input[i]), "input decoded exactly");
});

Deno.test("parseTaskRequest() decodes a large input written with JSON escapes", () => {
  const input = new Uint8Array(1024 * 1024 + 2).map((_, i) => (i * 37) % 256);
  // "\/" is JSON for "/": a writer may escape it, and the bytes are then not plain base64.
  const escaped = JSON.stringify(input.toBase64()).replaceAll("/", "\\/");
  const body = encoder.encode(
    `{"id":"${crypto.randomUUID()}","script":"echo.sh","input":${escaped}}`,
  );
  const request = parseTaskRequest(body);
  assertEquals(request.input.length, input.length);
  assert(request.input.every((byte, i) => byte === input[i]), "input decoded exactly");
});

Deno.test("parseTaskRequest() rejects a large input that is not base64", () => {
  const body = encoder.encode(JSON.stringify({
    id: crypto.randomUUID(),
    input: "é".repeat(600_000),
    script: "echo.sh",
    routingKey: "rk",
  }));
  try {
    parseTaskRequest(body);
  } catch (error) {
    assert(String(error).includes("input: must be base64"), String(error));
    return;
  }
  throw new Error("accepted");
});

function rawValueAt(text: string, key: string): string | undefined {
  const bytes = encoder.encode(text);
  const span = findTopLevelValue(bytes, key);
  return span ? decoder.decode(bytes.subarray(span.start, span.end)) : undefined;
}

Deno.test("findTopLevelValue() finds the raw bytes of any top-level value", async (t) => {
  await t.step("numbers as written", () => {
    assertEquals(rawValueAt('{"a":9007199254740993,"b":1.0}', "a"), "9007199254740993");
    assertEquals(rawValueAt('{"a":9007199254740993,"b":1.0}', "b"), "1.0");
  });
  await t.step("objects, arrays, strings, literals, with their inner whitespace", () => {
    assertEquals(rawValueAt('{"p": { "x" : [1, "}"] } , "q":2}', "p"), '{ "x" : [1, "}"] }');
    assertEquals(rawValueAt('{"p":"a\\\\"}', "p"), '"a\\\\"');
    assertEquals(rawValueAt('{"p":null}', "p"), "null");
    assertEquals(rawValueAt('{"p":true }', "p"), "true");
  });
  await t.step("the last of a repeated key, as JSON.parse keeps", () => {
    assertEquals(rawValueAt('{"p":1,"p":2}', "p"), "2");
  });
  await t.step("nothing when absent, malformed, or a key is written with escapes", () => {
    assertEquals(rawValueAt('{"q":1}', "p"), undefined);
    assertEquals(rawValueAt("[1]", "p"), undefined);
    assertEquals(rawValueAt('{"p":1', "p"), undefined);
    assertEquals(rawValueAt('{"p":1,"\\u0070":2}', "p"), undefined);
  });
  await t.step("nesting a million deep costs no stack", () => {
    const deep = "[".repeat(1_000_000) + "]".repeat(1_000_000);
    assertEquals(rawValueAt(`{"p":${deep},"q":1}`, "p")?.length, deep.length);
  });
});
