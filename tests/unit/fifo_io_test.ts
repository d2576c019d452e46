import { assertEquals } from "../helpers/assert.ts";
import { FifoReader } from "../../src/task/fifo_io.ts";

/** A FIFO in a temporary directory, removed on disposal. */
async function tempFifo(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "fifo_io_test_" });
  const path = `${dir}/fifo`;
  await new Deno.Command("mkfifo", { args: [path] }).output();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

function collector() {
  const chunks: Uint8Array[] = [];
  let closes = 0;
  return {
    sink: {
      data: (chunk: Uint8Array) => chunks.push(chunk),
      closed: () => closes++,
      end: () => {},
    },
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk]))),
    closes: () => closes,
  };
}

Deno.test("FifoReader.stop() takes what a writer that outlived the task wrote as complete", async (t) => {
  await t.step("bytes written, the writer still connected: one complete write", async () => {
    await using fifo = await tempFifo();
    const seen = collector();
    const reader = new FifoReader(fifo.path, seen.sink, { closeOnStop: true });
    reader.start();
    // Stands for a daemon that inherited the task's output pipe and keeps it open.
    using writer = await Deno.open(fifo.path, { write: true });
    await writer.write(new TextEncoder().encode("result"));
    await reader.stop();
    assertEquals(seen.text(), "result");
    assertEquals(seen.closes(), 1);
  });
  await t.step("nothing written, the writer still connected: not a complete write", async () => {
    await using fifo = await tempFifo();
    const seen = collector();
    const reader = new FifoReader(fifo.path, seen.sink, { closeOnStop: true });
    reader.start();
    using _writer = await Deno.open(fifo.path, { write: true });
    await reader.stop();
    assertEquals(seen.closes(), 0);
  });
  await t.step("without closeOnStop (the progress pipe): not a complete write", async () => {
    await using fifo = await tempFifo();
    const seen = collector();
    const reader = new FifoReader(fifo.path, seen.sink);
    reader.start();
    using writer = await Deno.open(fifo.path, { write: true });
    await writer.write(new TextEncoder().encode('{"step":'));
    await reader.stop();
    assertEquals(seen.text(), '{"step":');
    assertEquals(seen.closes(), 0);
  });
});
