import { assert, assertEquals } from "./helpers/assert.ts";
import {
  isDoneMessage,
  MAX_PROGRESS_MESSAGE_BYTES,
  ProgressFramer,
} from "../src/task/progress_framer.ts";

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

Deno.test("ProgressFramer passes text that is not JSON through, one message per line", async (t) => {
  await t.step("ends at a newline", () => {
    assertEquals(frame(["50% done\n75% done\n"]), ["50% done", "75% done"]);
  });
  await t.step("ends at the end of a push", () => {
    assertEquals(frame(["50% done", "75% done"]), ["50% done", "75% done"]);
  });
  await t.step("text after a document on the same line", () => {
    assertEquals(frame(['{"a":1} tail\n']), ['{"a":1}', "tail"]);
  });
  await t.step("an object right after text is a message of its own (two writes, one read)", () => {
    assertEquals(frame(['almost{"done":true}']), ["almost", '{"done":true}']);
    assertEquals(frame(['note: {"a":1}\n']), ["note:", '{"a":1}']);
  });
  await t.step("a number, a string, a keyword", () => {
    assertEquals(frame(['42\n"hi"\ntrue\n']), ["42", '"hi"', "true"]);
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

Deno.test("ProgressFramer cuts a message longer than maxBytes", async (t) => {
  await t.step("the default bound is 16 MiB", () => {
    assertEquals(MAX_PROGRESS_MESSAGE_BYTES, 16 * 1024 * 1024);
  });
  await t.step("an unterminated document is forwarded in bounded pieces", () => {
    const maxBytes = 64;
    const doc = `{"data":"${"x".repeat(1000)}`;
    const chunks = doc.match(/.{1,8}/gs)!;
    const messages = frame(chunks, { maxBytes });
    assert(messages.length > 1, "cut into several messages");
    for (const message of messages) {
      assert(message.length <= maxBytes + 8, `message of ${message.length} bytes`);
    }
    assertEquals(messages.join(""), doc, "no byte lost");
  });
  await t.step("the framer keeps working after a cut", () => {
    const messages = frame([`{"big":"${"y".repeat(100)}`, '"}', '{"ok":true}'], {
      maxBytes: 32,
    });
    assertEquals(messages.at(-1), '{"ok":true}');
  });
});

Deno.test("isDoneMessage() is true only for a JSON object with a done key", async (t) => {
  const done = (text: string) => isDoneMessage(encoder.encode(text));
  await t.step("objects with done", () => {
    assert(done('{"done":true}'));
    assert(done('{"done":false}'), '{"done":false} counts');
    assert(done('{"done":null,"result":1}'));
    assert(done('{"progress":1,"done":{}}'));
  });
  await t.step("anything else", () => {
    assert(!done('["done"]'));
    assert(!done('{"notdone":1}'));
    assert(!done('{"nested":{"done":true}}'));
    assert(!done('{"done":'));
    assert(!done("done"));
    assert(!done('"done"'));
    assert(!done(""));
    assert(!done(' {"done":true}'), "a message starts at its first byte");
  });
});
