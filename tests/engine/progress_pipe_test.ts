import { assert, assertEquals } from "../helpers/assert.ts";
import { behave, runShellTask, testEngineSettings } from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { runTask } from "../../src/task/mod.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Runs behave.py writing each of `writes` in its own open-write-close of the progress pipe. */
async function progressOf(
  writes: string[],
  settings = testEngineSettings(),
): Promise<{ messages: string[]; dropped: number[]; outcome: string }> {
  const messages: string[] = [];
  const dropped: number[] = [];
  const result = await runTask(
    {
      id: crypto.randomUUID(),
      script: fixture("behave.py"),
      input: behave({ progress_raw: writes, output: "ok" }),
      timeoutMs: 20_000,
    },
    settings,
    {
      onProgress: (message) => messages.push(text(message)),
      onProgressDropped: (bytes) => dropped.push(bytes),
    },
  );
  return { messages, dropped, outcome: result.outcome };
}

Deno.test("runTask() keeps text that is not JSON from swallowing the progress after it", async () => {
  const writes = [
    "starting up",
    '{"step":1}',
    "loading {model",
    '{"step":2}',
    "50% [done",
    '{"step":3}',
    '{"unclosed":[1,2',
    '{"step":4}',
  ];
  // Written as fast as the task can: writes that reach the pipe together are split again.
  for (let run = 0; run < 3; run++) {
    const { messages, outcome } = await progressOf(writes);
    assertEquals(outcome, "success");
    assertEquals(messages, writes, `run ${run}`);
  }
});

Deno.test("runTask() drops a progress message over the limit, counts it, and forwards the rest", async () => {
  const big = JSON.stringify({ data: "x".repeat(5_000) });
  const { messages, dropped } = await progressOf(
    ['{"step":1}', big, '{"step":2}', "y".repeat(3_000), '{"step":3}'],
    testEngineSettings({ maxProgressBytes: 1_000 }),
  );
  assertEquals(messages, ['{"step":1}', '{"step":2}', '{"step":3}']);
  assertEquals(dropped, [big.length, 3_000]);
});

Deno.test("runTask() drops a 3 MB progress document whole under the default 1 MiB limit", async () => {
  const messages: string[] = [];
  const dropped: number[] = [];
  const { result } = await runShellTask(
    `{ printf '{"d":"'; head -c 3000000 /dev/zero | tr '\\0' x; printf '"}'; } > "$progress"
    printf '{"step":1}' > "$progress"
    printf '{"done":true}' > "$progress"
    printf ok > "$output"`,
    {
      hooks: {
        onProgress: (message) => messages.push(text(message)),
        onProgressDropped: (bytes) => dropped.push(bytes),
      },
    },
  );
  assertEquals(result.outcome, "success");
  assertEquals(messages, ['{"step":1}']);
  assertEquals(dropped, [3_000_008]);
});

Deno.test("runTask() passes a zero-byte progress write over and keeps reading", async () => {
  const messages: string[] = [];
  const { result } = await runShellTask(
    `: > "$progress"; printf '{"a":1}' > "$progress"; : > "$progress"; printf '{"b":2}' > "$progress"
    : > "$output"`,
    { hooks: { onProgress: (message) => messages.push(text(message)) } },
  );
  assert(result.outcome === "success", JSON.stringify(result));
  assertEquals(messages, ['{"a":1}', '{"b":2}']);
});
