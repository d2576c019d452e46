import { assert, assertEquals, assertMatch, assertThrows } from "../helpers/assert.ts";
import {
  buildTaskResponse,
  DEFAULT_TIMEOUT_MINUTES,
  encodeResponse,
  encodeTaskResponse,
  InvalidRequestError,
  parseTaskRequest,
} from "../../src/protocol/mod.ts";
import { isTerminalStatus, TASK_STATUSES } from "../../src/protocol/status.ts";
import { RawJson } from "../../src/protocol/raw_json.ts";
import {
  type EncodableUpdate,
  type ResponseEcho,
  ResponseEncoder,
} from "../../src/protocol/response.ts";

const ID = "0b6f2c1e-4d3a-4f5b-9c8d-7e6f5a4b3c2d";
const PROJECT_ID = "11111111-2222-4333-8444-555555555555";

function body(value: unknown): Uint8Array {
  return new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
}

function invalid(value: unknown): InvalidRequestError {
  return assertThrows(() => parseTaskRequest(body(value)), InvalidRequestError);
}

Deno.test("parseTaskRequest() applies the protocol defaults", () => {
  const request = parseTaskRequest(body({ id: ID, script: "gollm:embedding" }));
  assertEquals(request, {
    id: ID,
    script: "gollm:embedding",
    input: new Uint8Array(),
    timeoutMinutes: DEFAULT_TIMEOUT_MINUTES,
    additionalProperties: null,
    userId: null,
    projectId: null,
    requestSHA256: null,
    routingKey: "",
    useCache: true,
  });
  assertEquals(DEFAULT_TIMEOUT_MINUTES, 5);
});

Deno.test("parseTaskRequest() treats explicit nulls as absent", () => {
  const request = parseTaskRequest(body({
    id: ID,
    script: "s",
    input: null,
    timeoutMinutes: null,
    additionalProperties: null,
    userId: null,
    projectId: null,
    requestSHA256: null,
    routingKey: null,
    useCache: null,
  }));
  assertEquals(request.input, new Uint8Array());
  assertEquals(request.timeoutMinutes, 5);
  assertEquals(request.routingKey, "");
  assertEquals(request.useCache, true);
  assertEquals(request.userId, null);
});

Deno.test("parseTaskRequest() keeps every given field", () => {
  const request = parseTaskRequest(body({
    id: ID,
    script: "mira:x",
    input: "aGk=",
    timeoutMinutes: 0.5,
    additionalProperties: { nested: { a: [1, 2] } },
    userId: "adam",
    projectId: PROJECT_ID,
    requestSHA256: "abc",
    routingKey: "rk-1",
    useCache: false,
    type: "gollm",
  }));
  const { additionalProperties, ...rest } = request;
  assertEquals(additionalProperties?.value, { nested: { a: [1, 2] } });
  assertEquals(rest, {
    id: ID,
    script: "mira:x",
    input: new TextEncoder().encode("hi"),
    timeoutMinutes: 0.5,
    userId: "adam",
    projectId: PROJECT_ID,
    requestSHA256: "abc",
    routingKey: "rk-1",
    useCache: false,
  });
  assert(!("type" in request), "unknown field `type` is not passed on");
});

Deno.test("parseTaskRequest() decodes the base64 input to the exact bytes", async (t) => {
  await t.step("every byte value", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const request = parseTaskRequest(body({ id: ID, script: "s", input: bytes.toBase64() }));
    assertEquals(request.input, bytes);
  });
  await t.step("an empty string is empty input", () => {
    assertEquals(
      parseTaskRequest(body({ id: ID, script: "s", input: "" })).input,
      new Uint8Array(),
    );
  });
  await t.step("absent input is empty input", () => {
    assertEquals(parseTaskRequest(body({ id: ID, script: "s" })).input.length, 0);
  });
});

Deno.test("parseTaskRequest() rejects malformed messages with a clear InvalidRequestError", async (t) => {
  await t.step("invalid JSON", () => {
    const error = invalid("{not json");
    assertMatch(error.message, /^Request is not valid JSON: /);
    assertEquals(error.id, undefined);
    assertEquals(error.routingKey, undefined);
  });
  await t.step("invalid UTF-8", () => {
    const bytes = new Uint8Array([...body(`{"id":"${ID}","script":"`), 0xff, 0xfe, ...body(`"}`)]);
    const error = assertThrows(() => parseTaskRequest(bytes), InvalidRequestError);
    assertMatch(error.message, /^Request is not valid JSON/);
  });
  await t.step("a JSON array, string or null instead of an object", () => {
    for (const value of ["[]", '"text"', "null", "42"]) {
      const error = invalid(value);
      assertMatch(error.message, /^Invalid request: request: /, value);
      assertEquals(error.fields, {});
    }
  });
  await t.step("an id that is not a UUID", () => {
    const error = invalid({ id: "not-a-uuid", script: "s", routingKey: "rk" });
    assertMatch(error.message, /^Invalid request: id: must be a UUID$/);
    assertEquals(error.id, undefined);
    assertEquals(error.routingKey, "rk");
  });
  await t.step("an empty script, with a usable id and routing key", () => {
    const error = invalid({ id: ID, script: "", routingKey: "rk" });
    assertMatch(error.message, /^Invalid request: script: must not be empty$/);
    assertEquals(error.id, ID);
    assertEquals(error.routingKey, "rk");
  });
  await t.step("a missing script", () => {
    assertMatch(invalid({ id: ID }).message, /script/);
  });
  await t.step("a negative or zero timeout", () => {
    for (const timeoutMinutes of [-1, 0]) {
      const error = invalid({ id: ID, script: "s", timeoutMinutes });
      assertMatch(error.message, /^Invalid request: timeoutMinutes: /);
      assertEquals(error.id, ID);
    }
  });
  await t.step("a timeout given as a string", () => {
    assertMatch(invalid({ id: ID, script: "s", timeoutMinutes: "5" }).message, /timeoutMinutes/);
  });
  await t.step("a routing key that is not a string is not echoed", () => {
    const error = invalid({ id: ID, script: "", routingKey: 42 });
    assertEquals(error.routingKey, undefined);
    assertEquals(error.id, ID);
  });
  await t.step("input that is not base64", () => {
    const error = invalid({ id: ID, script: "s", input: "not base64!", routingKey: "rk" });
    assertMatch(error.message, /^Invalid request: input: must be base64/);
    assertEquals(error.id, ID);
    assertEquals(error.routingKey, "rk");
  });
  await t.step("several problems are all named", () => {
    const error = invalid({ id: "x", script: "" });
    assertMatch(error.message, /id: must be a UUID; script: must not be empty/);
  });
});

Deno.test("buildTaskResponse() has every protocol field, null when absent, stdout and stderr empty", () => {
  const response = buildTaskResponse({}, { status: "RUNNING" });
  assertEquals(response, {
    id: null,
    script: null,
    status: "RUNNING",
    output: null,
    additionalProperties: null,
    projectId: null,
    userId: null,
    stdout: "",
    stderr: "",
    requestSHA256: null,
    routingKey: null,
    useCache: true,
  });
  assertEquals(Object.keys(response).length, 12);
});

Deno.test("buildTaskResponse() echoes the request fields and encodes the output", async (t) => {
  const echo = {
    id: ID,
    script: "gollm:embedding",
    additionalProperties: { deep: { list: [1, { x: null }], s: "é" } },
    projectId: PROJECT_ID,
    userId: "adam",
    requestSHA256: "sha",
    routingKey: "rk",
    useCache: false,
  };
  await t.step("output bytes as base64", () => {
    const bytes = new Uint8Array([0, 1, 254, 255]);
    const response = buildTaskResponse(echo, {
      status: "SUCCESS",
      output: bytes,
      stdout: "out\n",
      stderr: "err\n",
    });
    assertEquals(response, {
      ...echo,
      status: "SUCCESS",
      output: bytes.toBase64(),
      stdout: "out\n",
      stderr: "err\n",
    });
    assert(response.additionalProperties === echo.additionalProperties, "passed through as is");
  });
  await t.step("output text as base64 of its UTF-8 bytes", () => {
    const response = buildTaskResponse(echo, { status: "FAILED", output: "Bad: é" });
    assertEquals(Uint8Array.fromBase64(response.output!), new TextEncoder().encode("Bad: é"));
  });
  await t.step("an empty output is an empty string, not null", () => {
    assertEquals(buildTaskResponse(echo, { status: "SUCCESS", output: "" }).output, "");
  });
  await t.step("fields of the wrong type become null, useCache true", () => {
    const response = buildTaskResponse(
      { id: 1, script: {}, routingKey: [], useCache: "false" },
      { status: "FAILED" },
    );
    assertEquals(
      [response.id, response.script, response.routingKey, response.useCache],
      [null, null, null, true],
    );
  });
});

Deno.test("encodeTaskResponse() gives the UTF-8 JSON of the response", () => {
  const response = buildTaskResponse(
    { id: ID, script: "s", additionalProperties: { name: "naïve ✓" } },
    { status: "SUCCESS", output: "x" },
  );
  const bytes = encodeTaskResponse(response);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  assertEquals(JSON.parse(text), response);
  assert(text.includes("naïve ✓"), "non-ASCII written as UTF-8");
});

Deno.test("isTerminalStatus() is true only for SUCCESS, FAILED and CANCELLED", () => {
  const terminal = TASK_STATUSES.filter((status) => isTerminalStatus(status));
  assertEquals(terminal, ["SUCCESS", "FAILED", "CANCELLED"]);
});

Deno.test("encodeTaskResponse() gives the same JSON for a large output as JSON.stringify", () => {
  const output = new Uint8Array(300_000);
  for (let i = 0; i < output.length; i++) output[i] = (i * 7919) % 256;
  const response = buildTaskResponse(
    {
      id: crypto.randomUUID(),
      script: 'odd "name"',
      routingKey: "rk",
      additionalProperties: { output: "" },
    },
    { status: "SUCCESS", output, stdout: '"output":""', stderr: "é" },
  );
  const bytes = encodeTaskResponse(response);
  assertEquals(new TextDecoder().decode(bytes), JSON.stringify(response));
  assertEquals(Uint8Array.fromBase64(JSON.parse(new TextDecoder().decode(bytes)).output), output);
});

Deno.test("encodeResponse() splices output chunks of any lengths as the base64 of their bytes", () => {
  // Chunk ends fall at every place in a base64 quad, and inside and across its encoding slices.
  const layouts = [
    [1, 1, 1, 60_000, 2],
    [2, 2, 2, 49_153, 1, 4],
    [49_152, 49_152, 3],
    [0, 98_305, 0, 1],
    [65_536, 65_536, 65_537],
    [50_000, 1, 1],
  ];
  let seed = 1;
  for (const lengths of layouts) {
    const chunks = lengths.map((length) =>
      new Uint8Array(length).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24)
    );
    const joined = new Uint8Array(lengths.reduce((total, length) => total + length, 0));
    chunks.reduce((offset, chunk) => (joined.set(chunk, offset), offset + chunk.length), 0);
    const json = new TextDecoder().decode(
      encodeResponse({ id: ID, routingKey: "rk" }, { status: "SUCCESS", output: chunks }),
    );
    assertEquals(JSON.parse(json).output, joined.toBase64(), `chunks of ${lengths.join(", ")}`);
  }
});

Deno.test("parseTaskRequest() rejects a routing key AMQP cannot carry, and names no key to answer on", () => {
  const body = new TextEncoder().encode(JSON.stringify({
    id: crypto.randomUUID(),
    script: "echo.sh",
    routingKey: "k".repeat(256),
  }));
  const error = assertThrows(() => parseTaskRequest(body), InvalidRequestError);
  assertMatch(error.message, /routingKey: must be at most 255 bytes/);
  assertEquals(error.routingKey, undefined);
});

Deno.test("encodeResponse() passes additionalProperties back byte for byte", async (t) => {
  const raw = '{"big":9007199254740993,"one":1.0,"s":"\\u00e9 \\"q\\"","n":[1e2, -0.0]}';
  const request = parseTaskRequest(body(
    `{"id":"${ID}","script":"s","routingKey":"rk","additionalProperties":${raw}}`,
  ));
  const text = (bytes: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  await t.step("small output", () => {
    const json = text(encodeResponse(request, { status: "SUCCESS", output: "x" }));
    assert(json.includes(`"additionalProperties":${raw},`), json);
    assertEquals(JSON.parse(json).output, "eA==");
  });
  await t.step("large output spliced too", () => {
    const output = new Uint8Array(100_000).map((_, i) => i % 251);
    const json = text(encodeResponse(request, { status: "SUCCESS", output: [output] }));
    assert(json.includes(`"additionalProperties":${raw},`));
    assertEquals(Uint8Array.fromBase64(JSON.parse(json).output), output);
  });
  await t.step("a script that spells the field is no decoy", () => {
    const decoy = parseTaskRequest(body({
      id: ID,
      script: '"additionalProperties":null',
      additionalProperties: 1.5,
    }));
    const parsed = JSON.parse(text(encodeResponse(decoy, { status: "FAILED", output: "e" })));
    assertEquals([parsed.script, parsed.additionalProperties], [
      '"additionalProperties":null',
      1.5,
    ]);
  });
  await t.step("absent or null stays null", () => {
    const plain = parseTaskRequest(body({ id: ID, script: "s", additionalProperties: null }));
    assertEquals(
      JSON.parse(text(encodeResponse(plain, { status: "RUNNING" }))).additionalProperties,
      null,
    );
  });
});

Deno.test("ResponseEncoder writes every response byte for byte as encodeResponse() does", () => {
  const raw = new RawJson(new TextEncoder().encode('{"n":9007199254740993,"f":1.0,"s":"é\\""}'));
  const echoes: ResponseEcho[] = [
    { id: ID, script: "echo.sh", routingKey: "rk", additionalProperties: raw, useCache: false },
    {
      id: ID,
      script: 'odd "name" ,"status":',
      routingKey: ',"stdout":',
      projectId: PROJECT_ID,
      userId: "ü",
      requestSHA256: "ab",
      additionalProperties: { output: "", nested: [1, null, "x"] },
    },
    { additionalProperties: undefined, useCache: "yes" },
    { id: 7, script: null, additionalProperties: null },
  ];
  const updates: EncodableUpdate[] = [
    { status: "RUNNING", output: null },
    { status: "RUNNING", output: new TextEncoder().encode('{"progress":0.5}'), stdout: "a\n" },
    { status: "SUCCESS", output: "text é", stdout: '"quoted"\n', stderr: "ü\u2028\n" },
    { status: "FAILED", output: [new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])] },
    { status: "SUCCESS", output: new Uint8Array(70_000).fill(7) },
    { status: "CANCELLING" },
  ];
  for (const echo of echoes) {
    const encoder = new ResponseEncoder(echo);
    for (const update of updates) {
      const expected = new TextDecoder().decode(encodeResponse(echo, update));
      assertEquals(new TextDecoder().decode(encoder.encode(update)), expected);
    }
  }
});
