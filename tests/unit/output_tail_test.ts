import {
  forEachChunk,
  type LineOptions,
  LineSplitter,
  MAX_LINE_CHARS,
} from "../../src/task/lines.ts";

/** A byte stream read as lines, as a task's stdout is read when it comes as a stream. */
async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  options: LineOptions = {},
): Promise<void> {
  const lines = new LineSplitter(onLine, options);
  await forEachChunk(stream, (chunk) => lines.push(chunk));
  lines.end();
}
import { assert, assertEquals } from "../helpers/assert.ts";
import { DEFAULT_LOG_TAIL_BYTES, OutputTail } from "../../src/task/output_tail.ts";

Deno.test("OutputTail keeps each line with a trailing newline", async (t) => {
  await t.step("nothing appended is empty text", () => {
    const tail = new OutputTail(100);
    assertEquals(tail.text, "");
  });
  await t.step("lines in order, empty lines included", () => {
    const tail = new OutputTail(100);
    for (const line of ["first", "", "third"]) tail.append(line);
    assertEquals(tail.text, "first\n\nthird\n");
  });
  await t.step("text reflects appends after it was read", () => {
    const tail = new OutputTail(100);
    tail.append("a");
    assertEquals(tail.text, "a\n");
    tail.append("b");
    assertEquals(tail.text, "a\nb\n");
  });
  await t.step("the default bound is 1 MiB", () => {
    assertEquals(DEFAULT_LOG_TAIL_BYTES, 1024 * 1024);
  });
});

Deno.test("OutputTail drops the oldest lines past its bound", async (t) => {
  await t.step("exactly at the bound keeps everything", () => {
    const tail = new OutputTail(8);
    tail.append("abc");
    tail.append("def");
    assertEquals(tail.text, "abc\ndef\n");
  });
  await t.step("one byte over drops the oldest line", () => {
    const tail = new OutputTail(8);
    for (const line of ["abc", "def", "g"]) tail.append(line);
    assertEquals(tail.text, "def\ng\n");
  });
  await t.step("a long line drops several older ones", () => {
    const tail = new OutputTail(10);
    for (const line of ["a", "b", "c", "d", "12345678"]) tail.append(line);
    assertEquals(tail.text, "12345678\n");
  });
});

Deno.test("OutputTail cuts a line longer than its bound to the line's end", () => {
  const tail = new OutputTail(10);
  tail.append("old");
  tail.append("0123456789abcdefghij");
  assertEquals(tail.text, "bcdefghij\n");
  assert(tail.text.length <= 10);
});

Deno.test("OutputTail stays within its bound over many appends", () => {
  const bound = 1024;
  const tail = new OutputTail(bound);
  for (let i = 0; i < 100_000; i++) {
    tail.append(`line ${i} ${"x".repeat(i % 50)}`);
    if (i % 10_007 === 0) assert(tail.text.length <= bound, `after ${i} lines`);
  }
  const text = tail.text;
  assert(text.length <= bound, `kept ${text.length} characters`);
  assert(text.length > bound - 60, "fills the bound up to the last line that fits");
  assert(text.endsWith(`line 99999 ${"x".repeat(99_999 % 50)}\n`), "ends with the newest line");
  assert(text.startsWith("line "), "starts at a whole line");
});

Deno.test("forEachLine() passes a run without line ends on in bounded pieces", async () => {
  const text = "x".repeat(MAX_LINE_CHARS * 2 + 10) + "\nend";
  const stream = new Blob([text]).stream();
  const lines: string[] = [];
  await forEachLine(stream, (line) => lines.push(line));
  assertEquals(lines.map((line) => line.length), [MAX_LINE_CHARS, MAX_LINE_CHARS, 10, 3]);
  assertEquals(lines.join(""), text.replace("\n", ""));
});

Deno.test("forEachLine() keeps a line of 200 KiB whole, as Java's readLine() did", async () => {
  const long = "y".repeat(200 * 1024);
  const lines: string[] = [];
  await forEachLine(new Blob([`${long}\nnext`]).stream(), (line) => lines.push(line));
  assertEquals(lines.map((line) => line.length), [long.length, 4]);
});

Deno.test("forEachLine() ends a line at \\r, \\n and \\r\\n, as Java's readLine() did", async (t) => {
  const cases: [string, string[], string[]][] = [
    ["tqdm redraws", ["10%|#    |\r50%|#####|\r100%|#########|\n"], [
      "10%|#    |",
      "50%|#####|",
      "100%|#########|",
    ]],
    ["CRLF is one line end", ["a\r\nb\r\n"], ["a", "b"]],
    ["CRLF split across reads", ["a\r", "\nb\r", "\r\n"], ["a", "b", ""]],
    ["a lone CR before a new read", ["a\r", "b\n"], ["a", "b"]],
    ["empty lines are kept", ["\n\r\r\nx"], ["", "", "", "x"]],
    ["a CR at the very end", ["last\r"], ["last"]],
  ];
  for (const [name, chunks, expected] of cases) {
    await t.step(name, async () => {
      const encoder = new TextEncoder();
      const stream = ReadableStream.from(chunks.map((chunk) => encoder.encode(chunk)));
      const lines: string[] = [];
      await forEachLine(stream, (line) => lines.push(line));
      assertEquals(lines, expected);
    });
  }
});

Deno.test("forEachLine() keeps the pieces of a long line within maxLineChars", async () => {
  const lines: string[] = [];
  await forEachLine(new Blob(["abcdefg\r\nhi"]).stream(), (line) => lines.push(line), {
    maxLineChars: 3,
  });
  assertEquals(lines, ["abc", "def", "g", "hi"]);
});

Deno.test("LineSplitter splits bytes pushed as they come, a character split across pushes", () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  const bytes = new TextEncoder().encode("héllo\r\nwörld\rlast");
  // Split inside "é" (2 bytes), inside the CRLF, and inside "ö".
  for (const [from, to] of [[0, 2], [2, 7], [7, 11], [11, 16], [16, bytes.length]]) {
    splitter.push(bytes.subarray(from, to));
  }
  assertEquals(lines, ["héllo", "wörld"]);
  splitter.end();
  assertEquals(lines, ["héllo", "wörld", "last"]);
});
