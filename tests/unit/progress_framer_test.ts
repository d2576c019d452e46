import { assert, assertEquals } from "../helpers/assert.ts";
import {
  isDoneMessage,
  MAX_PROGRESS_MESSAGE_BYTES,
  ProgressFramer,
} from "../../src/task/progress_framer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds `chunks` to a framer (then ends it) and returns the messages as text. */
function frame(chunks: (string | Uint8Array)[], options: { maxBytes?: number } = {}): string[] {
  const messages: string[] = [];
  const framer = new ProgressFramer((message) => messages.push(decoder.decode(message)), options);
  for (const chunk of chunks) {
    framer.push(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
  }
  framer.end();
  return messages;
}

/**
 * Feeds each write to a framer as the reader would (pushed in `pieces` chunks, then a close)
 * and returns the messages and the sizes of the messages dropped.
 */
function frameWrites(
  writes: string[],
  options: { maxBytes?: number; pieces?: number } = {},
): { messages: string[]; dropped: number[] } {
  const messages: string[] = [];
  const dropped: number[] = [];
  const framer = new ProgressFramer((message) => messages.push(decoder.decode(message)), {
    ...options,
    onDropped: (bytes) => dropped.push(bytes),
  });
  for (const write of writes) {
    const bytes = encoder.encode(write);
    const step = Math.max(1, Math.ceil(bytes.length / (options.pieces ?? 1)));
    for (let at = 0; at < bytes.length; at += step) framer.push(bytes.subarray(at, at + step));
    framer.close();
  }
  framer.end();
  return { messages, dropped };
}

function byteByByte(text: string): Uint8Array[] {
  return Array.from(encoder.encode(text), (byte) => new Uint8Array([byte]));
}

Deno.test("ProgressFramer emits one message per document pushed", () => {
  assertEquals(frame(['{"progress":0.5}', '{"progress":1}']), [
    '{"progress":0.5}',
    '{"progress":1}',
  ]);
});

Deno.test("ProgressFramer splits several documents that arrive in one push", async (t) => {
  await t.step("back to back", () => {
    assertEquals(frame(['{"a":1}{"b":2}{"c":3}']), ['{"a":1}', '{"b":2}', '{"c":3}']);
  });
  await t.step("one per line", () => {
    assertEquals(frame(['{"a":1}\n{"b":2}\n']), ['{"a":1}', '{"b":2}']);
  });
  await t.step("with CRLF and blanks between them", () => {
    assertEquals(frame(['  {"a":1}\r\n\r\n\t{"b":2}  ']), ['{"a":1}', '{"b":2}']);
  });
  await t.step("arrays as well as objects", () => {
    assertEquals(frame(['[1,2][{"x":[3]}]{"y":[]}']), ["[1,2]", '[{"x":[3]}]', '{"y":[]}']);
  });
});

Deno.test("ProgressFramer reassembles a document split across many pushes", async (t) => {
  const doc = '{"progress":{"step":3,"of":10},"msg":"héllo ✓ {not a brace}"}';
  await t.step("byte by byte, splitting multi-byte characters", () => {
    assertEquals(frame(byteByByte(doc)), [doc]);
  });
  await t.step("two documents and a newline, byte by byte", () => {
    assertEquals(frame(byteByByte(`${doc}\n${doc}`)), [doc, doc]);
  });
  await t.step("at every split point", () => {
    const bytes = encoder.encode(`${doc}${doc}`);
    for (let cut = 0; cut <= bytes.length; cut++) {
      assertEquals(frame([bytes.subarray(0, cut), bytes.subarray(cut)]), [doc, doc], `cut ${cut}`);
    }
  });
});

Deno.test("ProgressFramer ignores braces and escaped quotes inside strings", async (t) => {
  await t.step("braces and brackets in a string", () => {
    const doc = '{"text":"}}]]{{[[","n":1}';
    assertEquals(frame([doc + doc]), [doc, doc]);
  });
  await t.step("an escaped quote followed by a brace", () => {
    const doc = '{"text":"say \\"}\\" please"}';
    assertEquals(JSON.parse(doc).text, 'say "}" please');
    assertEquals(frame([doc, doc]), [doc, doc]);
  });
  await t.step("an escaped backslash just before the closing quote", () => {
    const doc = '{"path":"C:\\\\","x":"}"}';
    assertEquals(JSON.parse(doc).path, "C:\\");
    assertEquals(frame(byteByByte(doc + doc)), [doc, doc]);
  });
  await t.step("deeply nested objects", () => {
    const doc = '{"a":{"b":{"c":{"d":[{"e":{}}]}}}}';
    assertEquals(frame([doc + doc]), [doc, doc]);
  });
});

Deno.test("ProgressFramer keeps text that is not JSON whole, up to the writer's close", async (t) => {
  await t.step("lines of one write are one message", () => {
    assertEquals(frame(["50% done\n75% done\n"]), ["50% done\n75% done"]);
  });
  await t.step("reads of one write join", () => {
    assertEquals(frame(["50% done", ", 75% done"]), ["50% done, 75% done"]);
  });
  await t.step("each close ends one", () => {
    assertEquals(frameWrites(["50% done", "75% done"]).messages, ["50% done", "75% done"]);
  });
  await t.step("text after a document in the same write", () => {
    assertEquals(frame(['{"a":1} tail\n']), ['{"a":1}', "tail"]);
  });
  await t.step("a number, a string, a keyword, each in its own write", () => {
    assertEquals(frameWrites(["42", '"hi"', "true"]).messages, ["42", '"hi"', "true"]);
  });
});

Deno.test("ProgressFramer never lets one write swallow the next (issue 11.5)", async (t) => {
  await t.step("text that is not JSON, then valid messages", () => {
    const writes = ["starting up", '{"step":1}', "50% {done", '{"step":2}', '{"done":true}'];
    assertEquals(frameWrites(writes, { pieces: 3 }).messages, writes);
  });
  await t.step("an unbalanced brace", () => {
    const writes = ["loading {model", '{"step":1}', '{"unclosed":[1,2', '{"step":2}'];
    assertEquals(frameWrites(writes).messages, writes);
  });
  await t.step("a raw line break in a string: text, not a document, however it is read", () => {
    const write = '{"s":"a\nb"} and more';
    assertEquals(frameWrites([write]).messages, [write]);
    assertEquals(frameWrites([write], { pieces: write.length }).messages, [write]);
    assertEquals(frameWrites(['{"s":"' + "x".repeat(5000) + '\t"} tail']).messages.length, 1);
  });
  await t.step("an unterminated string", () => {
    assertEquals(frameWrites(['{"s":"open', '{"step":1}']).messages, ['{"s":"open', '{"step":1}']);
  });
  await t.step("writes that reached the pipe together (a fast writer) are split again", () => {
    const writes = [
      "loading {model",
      '{"step":1}',
      "50% [done",
      '{"step":2}',
      '{"unclosed":[1,2',
      '{"step":3}',
    ];
    assertEquals(frame([writes.join("")]), writes);
    assertEquals(frame(byteByByte(writes.join(""))), writes);
  });
  await t.step("two documents in one write are still split", () => {
    assertEquals(frameWrites(['{"a":1}{"b":2}', '{"c":3}\n{"d":4}\n']).messages, [
      '{"a":1}',
      '{"b":2}',
      '{"c":3}',
      '{"d":4}',
    ]);
  });
});

Deno.test("ProgressFramer.end() flushes an incomplete document as it is", () => {
  assertEquals(frame(['{"a":1}{"b":{"c":']), ['{"a":1}', '{"b":{"c":']);
  assertEquals(frame(['{"open":"string']), ['{"open":"string']);
});

Deno.test("ProgressFramer emits nothing for whitespace only", () => {
  assertEquals(frame([" ", "\n\n", "\t\r\n", ""]), []);
  assertEquals(frame([]), []);
});

Deno.test("ProgressFramer starts afresh after end()", () => {
  const messages: string[] = [];
  const framer = new ProgressFramer((message) => messages.push(decoder.decode(message)));
  framer.push(encoder.encode('{"a":"'));
  framer.end();
  framer.push(encoder.encode('{"b":"}"}'));
  framer.end();
  assertEquals(messages, ['{"a":"', '{"b":"}"}']);
});

Deno.test("ProgressFramer emits messages the reader may reuse its buffer after", () => {
  const messages: Uint8Array[] = [];
  const framer = new ProgressFramer((message) => messages.push(message));
  const buffer = new Uint8Array(16);
  buffer.set(encoder.encode('{"a":'));
  framer.push(buffer.subarray(0, 5));
  buffer.fill(0x20).set(encoder.encode("1}"));
  framer.push(buffer.subarray(0, 2));
  buffer.fill(0x78);
  assertEquals(messages.map((m) => decoder.decode(m)), ['{"a":1}']);
});

Deno.test("ProgressFramer drops a message longer than maxBytes whole and counts it", async (t) => {
  await t.step("the default bound is 1 MiB", () => {
    assertEquals(MAX_PROGRESS_MESSAGE_BYTES, 1024 * 1024);
  });
  await t.step("a large document, read in many pieces, is dropped, never cut", () => {
    const big = `{"data":"${"x".repeat(1000)}"}`;
    const { messages, dropped } = frameWrites([big, '{"ok":true}'], { maxBytes: 64, pieces: 50 });
    assertEquals(messages, ['{"ok":true}']);
    assertEquals(dropped, [big.length]);
  });
  await t.step("large text that is not JSON is dropped up to its close", () => {
    const { messages, dropped } = frameWrites(["y".repeat(500), "small"], { maxBytes: 64 });
    assertEquals(messages, ["small"]);
    assertEquals(dropped, [500]);
  });
  await t.step("among documents of one write, only the large one goes", () => {
    const big = `{"big":"${"}{".repeat(100)}"}`;
    const { messages, dropped } = frameWrites([`{"a":1}${big}{"c":3}`], { maxBytes: 32 });
    assertEquals(messages, ['{"a":1}', '{"c":3}']);
    assertEquals(dropped, [big.length]);
  });
  await t.step("a message of exactly maxBytes passes", () => {
    const doc = `{"d":"${"z".repeat(56)}"}`;
    assertEquals(doc.length, 64);
    assertEquals(frameWrites([doc], { maxBytes: 64 }).messages, [doc]);
  });
});

Deno.test("isDoneMessage() is true only for a JSON object with a done key", async (t) => {
  const done = (text: string) => isDoneMessage(encoder.encode(text));
  await t.step("objects with done", () => {
    assert(done('{"done":true}'));
    assert(done('{"done":false}'), '{"done":false} counts');
    assert(done('{"done":null,"result":1}'));
    assert(done('{"progress":1,"done":{}}'));
    assert(done('{"do\\u006ee":true}'), "a key spelt with an escape");
    assert(done('{"p":"\\"","done":1}'), "after an escaped quote");
  });
  await t.step("anything else", () => {
    assert(!done('["done"]'));
    assert(!done('{"notdone":1}'));
    assert(!done('{"progress":"done"}'), "a value, not a key");
    assert(!done('{"progress":"\\u0064one"}'), "an escaped value, not a key");
    assert(!done('{"at":1765000000.123,"progress":0.5}'));
    assert(!done('{"nested":{"done":true}}'));
    assert(!done('{"done":'));
    assert(!done("done"));
    assert(!done('"done"'));
    assert(!done(""));
    assert(!done(' {"done":true}'), "a message starts at its first byte");
  });
});
