import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { behave, runShellTask, testEngineSettings } from "./helpers/engine.ts";
import { fixture } from "./helpers/serve_harness.ts";
import { runTask, type TaskResult } from "../src/task/mod.ts";

const settings = testEngineSettings({ killGraceMs: 200 });
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function spec(script: string, input: Uint8Array | string = "", timeoutMs = 20_000) {
  return {
    id: crypto.randomUUID(),
    script,
    input: typeof input === "string" ? new TextEncoder().encode(input) : input,
    timeoutMs,
  };
}

const runShell = (body: string, options: Parameters<typeof runShellTask>[1] = {}) =>
  runShellTask(body, { settings, ...options });

function messageOf(result: TaskResult): string {
  assert(result.outcome === "failure" || result.outcome === "timeout", JSON.stringify(result));
  return result.outcome === "failure" || result.outcome === "timeout" ? result.message : "";
}

Deno.test("runTask() fails a task that exits 0 without writing its output, in the Java runner's words", async () => {
  const { result, id } = await runShell(
    'cat "$input" >/dev/null; printf \'{"done":true}\' > "$progress"; echo "no model" >&2',
  );
  assertEquals(result.outcome, "failure");
  assertMatch(
    messageOf(result),
    new RegExp(
      `^Process for task ${id} exited early with code 0: task ".+" exited without writing its output pipe: no model$`,
    ),
  );
});

Deno.test("runTask() gives a task that opened and closed its output without a byte an empty success", async () => {
  const { result } = await runShell('cat "$input" >/dev/null; : > "$output"');
  assertEquals(result.outcome, "success");
  if (result.outcome === "success") assertEquals(result.output.length, 0);
});

Deno.test("runTask() tells an output that was closed from one that was never opened, quickly", async (t) => {
  // The output's close and the exit come close together; the close must never be missed.
  await t.step("twenty zero-byte outputs", async () => {
    for (let i = 0; i < 20; i++) {
      const { result } = await runShell(': > "$output"');
      assertEquals(result.outcome, "success", `run ${i}`);
    }
  });
  await t.step("twenty tasks that never open it", async () => {
    for (let i = 0; i < 20; i++) {
      const { result } = await runShell("exit 0");
      assertEquals(result.outcome, "failure", `run ${i}`);
    }
  });
});

Deno.test("runTask() words a non-zero exit as the Java runner did, before and after the output", async (t) => {
  await t.step("before the output: exited early", async () => {
    const { result, id } = await runShell('echo "it broke" >&2; exit 3');
    assertMatch(
      messageOf(result),
      new RegExp(
        `^Process for task ${id} exited early with code 3: task ".+" exited with code 3: it broke$`,
      ),
    );
    if (result.outcome === "failure") assertEquals(result.exitCode, 3);
  });
  await t.step("after the output: non-zero exit code", async () => {
    const { result } = await runShell('printf x > "$output"; exit 4');
    assertMatch(
      messageOf(result),
      /^Python script exited with non-zero exit code: 4: task ".+" exited with code 4$/,
    );
  });
  await t.step("killed by a signal: 128 + the signal's number", async () => {
    const { result, id } = await runShell("kill -9 $$");
    assertMatch(
      messageOf(result),
      new RegExp(
        `^Process for task ${id} exited early with code 137: task ".+" was killed by SIGKILL$`,
      ),
    );
  });
});

Deno.test("runTask() lets a task that keeps reporting progress run past timeoutMinutes", async () => {
  // 2.4 s in all, never 0.8 s without a progress message: the limit is one of inactivity.
  const progress: string[] = [];
  const started = performance.now();
  const result = await runTask(
    spec(
      fixture("behave.py"),
      behave({ progress: 8, progress_interval: 0.3, output: "late but alive" }),
      1_500,
    ),
    settings,
    { onProgress: (message) => progress.push(text(message)) },
  );
  assertEquals(result.outcome, "success", JSON.stringify(result));
  if (result.outcome === "success") assertEquals(text(result.output), "late but alive");
  assertEquals(progress.length, 8);
  assert(performance.now() - started > 1_500, "ran longer than the limit");
});

Deno.test("runTask() names the phase and the limit when the inactivity limit fires", async (t) => {
  await t.step("input never read: writing to pipe", async () => {
    const { result, id } = await runShell("sleep 30", { timeoutMs: 600, input: "unread" });
    assertEquals(result.outcome, "timeout");
    if (result.outcome === "timeout") assertEquals(result.limit, "inactivity");
    assertMatch(
      messageOf(result),
      new RegExp(
        `^Writing to pipe took too long for task ${id}: task ".+" timed out after 600 ms without progress \\(timeoutMinutes is an inactivity limit\\)$`,
      ),
    );
  });
  await t.step("silent after its input: reading from pipe", async () => {
    const { result, id } = await runShell('cat "$input" >/dev/null; sleep 30', { timeoutMs: 600 });
    assertMatch(messageOf(result), new RegExp(`^Reading from pipe took too long for task ${id}: `));
  });
  await t.step("output written, process stays: did not exit", async () => {
    const { result } = await runShell('cat "$input" > "$output"; sleep 30', { timeoutMs: 600 });
    assertMatch(messageOf(result), /^Process did not exit within the timeout: task ".+" timed out/);
  });
});

Deno.test("runTask() stops a task at the maximum task duration however much progress it sends", async () => {
  const started = performance.now();
  const result = await runTask(
    spec(fixture("behave.py"), behave({ progress: 100, progress_interval: 0.1 }), 5_000),
    testEngineSettings({ killGraceMs: 200, maxTaskMs: 1_000 }),
  );
  assertEquals(result.outcome, "timeout");
  if (result.outcome === "timeout") assertEquals(result.limit, "duration");
  assertMatch(
    messageOf(result),
    /^Process did not exit within the timeout: task ".+" timed out after 1 s, the maximum task duration \(--max-task-duration\)$/,
  );
  assert(performance.now() - started < 5_000, "stopped by the cap, not by inactivity");
});
