import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { behave, runShellTask, taskSpec as spec, testEngineSettings } from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { runTask, type TaskResult } from "../../src/task/mod.ts";
import { classifyTaskEnd, type TaskEnd } from "../../src/task/outcome.ts";
import { readOomKillCount, runnerMemoryEventsPath } from "../../src/task/oom_kills.ts";

const settings = testEngineSettings({ killGraceMs: 200 });
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

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

Deno.test("classifyTaskEnd() decides how a task ended from what was seen of it, without a process", async (t) => {
  const ok: Deno.CommandStatus = { success: true, code: 0, signal: null };
  const end = (change: Partial<TaskEnd> = {}): TaskEnd => ({
    id: "t-1",
    script: "task.py",
    status: ok,
    phase: "exit",
    outputClosed: true,
    outputTooLarge: false,
    stderr: "",
    timeoutMs: 60_000,
    maxDurationMs: 0,
    maxOutputBytes: 100,
    ...change,
  });
  await t.step("exit 0 with the output closed is a success", () => {
    assertEquals(classifyTaskEnd(end()), undefined);
  });
  await t.step("exit 0 without the output is a failure with exit code 0", () => {
    const failure = classifyTaskEnd(end({ outputClosed: false, stderr: "boom\n" }));
    assertEquals(failure, {
      outcome: "failure",
      exitCode: 0,
      message: 'Process for task t-1 exited early with code 0: task "task.py" exited without ' +
        "writing its output pipe: boom",
    });
  });
  await t.step("a non-zero exit after the output has the Java runner's exit-code text", () => {
    const failure = classifyTaskEnd(end({ status: { success: false, code: 3, signal: null } }));
    assertEquals(failure?.outcome, "failure");
    assertMatch(failure!.message, /^Python script exited with non-zero exit code: 3: /);
  });
  await t.step("a signal gives no exit code", () => {
    const status: Deno.CommandStatus = { success: false, code: 137, signal: "SIGKILL" };
    const failure = classifyTaskEnd(end({ status, outputClosed: false }));
    assertEquals(failure?.outcome === "failure" && failure.exitCode, null);
    assertMatch(failure!.message, /was killed by SIGKILL$/);
  });
  await t.step("too much output fails even after exit 0", () => {
    const failure = classifyTaskEnd(end({ outputTooLarge: true }));
    assertMatch(failure!.message, /more output than the limit of 100 bytes/);
  });
  await t.step("the inactivity limit names the phase", () => {
    const failure = classifyTaskEnd(end({ limit: "inactivity", phase: "input" }));
    assertEquals(failure?.outcome === "timeout" && failure.limit, "inactivity");
    assertMatch(failure!.message, /^Writing to pipe took too long for task t-1: .* after 60 s /);
  });
  await t.step("the duration cap wins over whatever the task did", () => {
    const failure = classifyTaskEnd(end({ limit: "duration", maxDurationMs: 180_000 }));
    assertEquals(failure?.outcome === "timeout" && failure.limit, "duration");
    assertMatch(failure!.message, /^Process did not exit within the timeout: .* after 3 min,/);
  });
});

Deno.test("runTask() says the kernel's OOM killer killed a task when the cgroup's oom_kill count rose", async (t) => {
  const dir = await Deno.makeTempDir();
  const events = `${dir}/memory.events`;
  const oomSettings = testEngineSettings({ killGraceMs: 200, memoryEventsPath: events });
  // Stands for the kernel: the count rises, then the task dies of SIGKILL.
  const oomKilled =
    `printf 'low 0\\nhigh 0\\nmax 2\\noom 1\\noom_kill 1\\n' > "${events}"; kill -9 $$`;
  try {
    await t.step("the count rose: killed by SIGKILL, by the OOM killer", async () => {
      await Deno.writeTextFile(events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
      const { result, id } = await runShell(oomKilled, { settings: oomSettings });

      assertMatch(
        messageOf(result),
        new RegExp(
          `^Process for task ${id} exited early with code 137: task ".+" was killed by SIGKILL, by the kernel's out-of-memory killer \\(oom_kill in "${events}" went from 0 to 1 while it ran\\)$`,
        ),
      );
    });
    await t.step("the count did not rise: killed by SIGKILL, nothing more", async () => {
      await Deno.writeTextFile(events, "oom 1\noom_kill 1\n");
      const { result } = await runShell(oomKilled, { settings: oomSettings });
      assertMatch(messageOf(result), /was killed by SIGKILL$/);
    });
    await t.step("no such file: killed by SIGKILL, nothing more", async () => {
      const { result } = await runShell("kill -9 $$", {
        settings: testEngineSettings({ memoryEventsPath: `${dir}/missing` }),
      });
      assertMatch(messageOf(result), /was killed by SIGKILL$/);
    });
    await t.step("a task stopped by its time limit is not said to be OOM-killed", async () => {
      await Deno.writeTextFile(events, "oom_kill 5\n");
      const { result } = await runShell(
        `printf 'oom_kill 6\\n' > "${events}"; trap '' TERM; sleep 30`,
        { settings: oomSettings, timeoutMs: 300 },
      );
      assertEquals(result.outcome, "timeout");
      assert(!messageOf(result).includes("out-of-memory"));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readOomKillCount() reads cgroup v2 memory.events and cgroup v1 memory.oom_control", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/v2`,
      "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
    );
    await Deno.writeTextFile(`${dir}/v1`, "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n");
    await Deno.writeTextFile(`${dir}/old`, "oom_kill_disable 0\nunder_oom 0\n");
    assertEquals(readOomKillCount(`${dir}/v2`), 2);
    assertEquals(readOomKillCount(`${dir}/v1`), 7);
    assertEquals(readOomKillCount(`${dir}/old`), undefined);
    assertEquals(readOomKillCount(`${dir}/missing`), undefined);
    const own = runnerMemoryEventsPath();
    if (own !== null) assert(readOomKillCount(own) !== undefined, own);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
