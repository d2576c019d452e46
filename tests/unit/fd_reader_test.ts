import { assertEquals, assertRejects } from "../helpers/assert.ts";
import { FdReader } from "../../src/os/fd_reader.ts";
import { O_CLOEXEC, O_NONBLOCK, requireLibc } from "../../src/os/libc.ts";

const lib = requireLibc();
const F_GETFD = 1;
const decoder = new TextDecoder();

/** A non-blocking pipe: `[read end, write end]`. */
function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assertEquals(lib.pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  return [fds[0]!, fds[1]!];
}

function write(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  assertEquals(Number(lib.write(fd, bytes, BigInt(bytes.length))), bytes.length);
}

function isOpen(fd: number): boolean {
  return lib.fcntl(fd, F_GETFD, 0) >= 0;
}

Deno.test("FdReader passes on every chunk until end of file, then closes its descriptor", async () => {
  const [read, writeEnd] = pipe();
  const reader = new FdReader(read, lib);
  const chunks: string[] = [];
  const done = reader.readAll((chunk) => chunks.push(decoder.decode(chunk)));
  write(writeEnd, "one\n");
  await new Promise((resolve) => setTimeout(resolve, 20));
  write(writeEnd, "two");
  lib.close(writeEnd);
  await done;
  assertEquals(chunks.join(""), "one\ntwo");
  assertEquals(isOpen(read), false);
});

Deno.test("FdReader: close() ends a read that waits (a daemon keeps the pipe open)", async () => {
  const [read, writeEnd] = pipe();
  try {
    const reader = new FdReader(read, lib);
    const chunks: string[] = [];
    const done = reader.readAll((chunk) => chunks.push(decoder.decode(chunk)));
    write(writeEnd, "before");
    await new Promise((resolve) => setTimeout(resolve, 20));
    reader.close();
    await done;
    assertEquals(chunks, ["before"]);
    assertEquals(isOpen(read), false);
  } finally {
    lib.close(writeEnd);
  }
});

Deno.test("FdReader reads once: a second readAll() rejects", async () => {
  const [read, writeEnd] = pipe();
  const reader = new FdReader(read, lib);
  const done = reader.readAll(() => {});
  await assertRejects(() => reader.readAll(() => {}), Error);
  lib.close(writeEnd);
  await done;
});
