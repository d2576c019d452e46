import {
  assert,
  assertEquals,
  assertMatch,
  assertNotIncludes,
  assertRejects,
} from "../helpers/assert.ts";
import { childEnvironment } from "../../src/config/settings.ts";
import {
  behave,
  eventually,
  isAlive,
  taskSpec as spec,
  testEngineSettings,
} from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { runTask, taskDirsRemoved, type TaskResult, TaskStartError } from "../../src/task/mod.ts";

const settings = testEngineSettings();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function outputOf(result: TaskResult): string {
  assertEquals(result.outcome, "success", JSON.stringify(result));
  return result.outcome === "success" ? text(result.output) : "";
}

async function workDirEntries(): Promise<string[]> {
  await taskDirsRemoved();
  const names: string[] = [];
  for await (const entry of Deno.readDir(settings.workDir)) names.push(entry.name);
  return names;
}

Deno.test("runTask() makes the work dir again when it went missing", async () => {
  const workDir = await Deno.makeTempDir();
  await Deno.remove(workDir);
  try {
    const result = await runTask(
      spec(fixture("echo.sh"), new TextEncoder().encode("again")),
      testEngineSettings({ workDir }),
    );
    assertEquals(outputOf(result), "again");
  } finally {
    await taskDirsRemoved();
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("runTask() runs a script without #! under /bin/sh, as Java's ProcessBuilder does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/no-shebang`;
    // echo.sh without its first line: the kernel answers ENOEXEC, execvp (Java) runs sh.
    const body = (await Deno.readTextFile(fixture("echo.sh"))).split("\n").slice(1).join("\n")
      .replace(`"\${0%/*}/_task_args.sh"`, JSON.stringify(fixture("_task_args.sh")));
    await Deno.writeTextFile(script, body, { mode: 0o755 });
    const result = await runTask(spec(script, new TextEncoder().encode("sh ran it")), settings);
    assertEquals(outputOf(result), "sh ran it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTask() echoes input to output and forwards each progress message", async () => {
  const progress: string[] = [];
  let started = 0;
  const input = behave({ progress: 3, stdout: ["hello"], stderr: ["careful"] });
  const result = await runTask(spec(fixture("behave.py"), input), settings, {
    onStart: () => started++,
    onProgress: (message) => progress.push(text(message)),
  });
  assertEquals(outputOf(result), text(input));
  assertEquals(started, 1);
  assertEquals(
    progress,
    [1, 2, 3].map((step) =>
      JSON.stringify({ step, total: 3 }).replace(/,/g, ", ").replace(/:/g, ": ")
    ),
  );
  assertEquals(result.stdout, "hello\n");
  assertEquals(result.stderr, "careful\n");
  assertEquals(await workDirEntries(), [], "the FIFO directory is removed");
});

Deno.test("runTask() splits progress documents that arrive in one read", async (t) => {
  for (
    const [name, raw, expected] of [
      ["concatenated", ['{"a":1}{"b":"}{"}[1,2]'], ['{"a":1}', '{"b":"}{"}', "[1,2]"]],
      ["newline-separated", ['{"a":1}\n{"b":2}\n'], ['{"a":1}', '{"b":2}']],
      ["escaped quotes", ['{"s":"a\\"}b"}{"t":1}'], ['{"s":"a\\"}b"}', '{"t":1}']],
      ["plain text", ["50% done", "almost"], ["50% done", "almost"]],
    ] as const
  ) {
    await t.step(name, async () => {
      const progress: string[] = [];
      const result = await runTask(
        spec(fixture("behave.py"), behave({ progress_raw: raw, merged: true, output: "ok" })),
        settings,
        { onProgress: (message) => progress.push(text(message)) },
      );
      assertEquals(outputOf(result), "ok");
      // Merged text without JSON structure cannot be split; JSON always is.
      if (name === "plain text") assertEquals(progress.join(""), expected.join(""));
      else assertEquals(progress, [...expected]);
    });
  }
});

Deno.test("runTask() does not forward the done sentinel nor anything after it", async () => {
  const progress: string[] = [];
  const result = await runTask(
    spec(
      fixture("behave.py"),
      behave({ progress_raw: ['{"x":1}', '{"done":false}', '{"late":1}'], no_done: true }),
    ),
    settings,
    { onProgress: (message) => progress.push(text(message)) },
  );
  assertEquals(result.outcome, "success");
  assertEquals(progress, ['{"x":1}']);
});

Deno.test("runTask() finishes a task that never sends done and never opens its pipes", async () => {
  // Without an output there is no success (issue 9.2): it ends at once, as failed.
  const result = await runTask(
    spec(fixture("behave.py"), behave({ no_done: true, skip_output: true })),
    settings,
  );
  assertEquals(result.outcome, "failure");
  const quiet = await runTask(spec("true"), settings);
  assertEquals(quiet.outcome, "failure");
});

Deno.test("runTask() reports a non-zero exit as a failure with the last stderr line", async () => {
  const result = await runTask(
    spec(fixture("behave.py"), behave({ exit: 3, stderr: ["first", "it broke"] })),
    settings,
  );
  assertEquals(result.outcome, "failure");
  if (result.outcome !== "failure") return;
  assertEquals(result.exitCode, 3);
  assertMatch(result.message, /exited with code 3: it broke$/);
});

Deno.test("runTask() times out the whole task and kills its process group", async () => {
  const pidFile = await Deno.makeTempFile();
  try {
    const result = await runTask(
      spec(fixture("behave.py"), behave({ sleep: 60, grandchild: true, pid_file: pidFile }), 1_500),
      settings,
    );
    assertEquals(result.outcome, "timeout");
    if (result.outcome === "timeout") assertMatch(result.message, /timed out after 1\.5 s/);
    const grandchild = Number(await Deno.readTextFile(pidFile));
    assert(await eventually(() => !isAlive(grandchild)), "the grandchild is killed too");
  } finally {
    await Deno.remove(pidFile);
  }
});

Deno.test("runTask() cancels through its signal: SIGTERM, then SIGKILL for a task that ignores it", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const result = await runTask(
    spec(fixture("behave.py"), behave({ ignore_term: true, progress: 1, sleep: 60 })),
    testEngineSettings({ killGraceMs: 300 }),
    { signal: controller.signal, onProgress: () => controller.abort("cancelled") },
  );
  assertEquals(result.outcome, "cancelled");
  assert(performance.now() - started < 10_000);
});

Deno.test("runTask() does not start a task whose signal is already aborted", async () => {
  let started = false;
  const result = await runTask(spec(fixture("echo.sh"), "x"), settings, {
    signal: AbortSignal.abort("cancelled"),
    onStart: () => started = true,
  });
  assertEquals(result.outcome, "cancelled");
  assertEquals(started, false);
});

Deno.test("runTask() answers a cancel before start first, even when the script is missing", async () => {
  let release!: () => void;
  const beforeStart = new Promise<void>((resolve) => release = resolve);
  const controller = new AbortController();
  const run = runTask(spec("/nonexistent/task.py"), settings, {
    signal: controller.signal,
    beforeStart,
  });
  // The cancellation is found while the task waits to start, as the Java runner found it.
  controller.abort("cancelled");
  release();
  assertEquals((await run).outcome, "cancelled");
  // Not cancelled: the missing script is still refused once the task may start.
  await assertRejects(
    () => runTask(spec("/nonexistent/task.py"), settings, { beforeStart: Promise.resolve() }),
    TaskStartError,
  );
});

Deno.test("runTask() refuses scripts it cannot start, before running anything", async (t) => {
  await t.step("missing .py file", async () => {
    const error = await assertRejects(
      () => runTask(spec("/nonexistent/task.py"), settings),
      TaskStartError,
    );
    assertMatch(error.message, /script file not found/);
  });
  await t.step("executable not on PATH", async () => {
    const error = await assertRejects(
      () => runTask(spec("no-such-task:xyz"), settings),
      TaskStartError,
    );
    assertMatch(error.message, /executable not found on PATH/);
  });
  await t.step("file not executable", async () => {
    const file = await Deno.makeTempFile();
    try {
      const error = await assertRejects(() => runTask(spec(file), settings), TaskStartError);
      assertMatch(error.message, /is not executable/);
    } finally {
      await Deno.remove(file);
    }
  });
  await t.step("the spawn's own error, in Java's words", async () => {
    const dir = await Deno.makeTempDir();
    try {
      // A directory on PATH whose entry is executable but cannot be executed: EACCES.
      await Deno.mkdir(`${dir}/task-dir`, { mode: 0o755 });
      const error = await assertRejects(
        () => runTask(spec("task-dir"), testEngineSettings({ env: { PATH: dir } })),
        TaskStartError,
      );
      assertMatch(error.javaText ?? "", /^Cannot run program "task-dir": error=13, /);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("control characters", async () => {
    const error = await assertRejects(() => runTask(spec("echo\nrm"), settings), TaskStartError);
    assertMatch(error.message, /control characters/);
  });
  await t.step("not on the allow-list", async () => {
    const error = await assertRejects(
      () => runTask(spec(fixture("echo.sh")), testEngineSettings({ allowedScripts: ["gollm:*"] })),
      TaskStartError,
    );
    assertMatch(error.message, /script not allowed/);
  });
  assertEquals(await workDirEntries(), []);
});

Deno.test("runTask() passes 32 MiB through the pipes byte for byte", async () => {
  const input = new Uint8Array(32 * 1024 * 1024);
  for (let offset = 0; offset < input.length; offset += 65_536) {
    crypto.getRandomValues(input.subarray(offset, offset + 65_536));
  }
  const result = await runTask(spec(fixture("echo.sh"), input), settings);
  assertEquals(result.outcome, "success");
  if (result.outcome === "success") {
    assertEquals(result.output.length, input.length);
    assert(result.output.every((byte, i) => byte === input[i]), "output equals input");
  }
});

Deno.test("runTask() fails a task whose output exceeds the limit", async () => {
  const result = await runTask(
    spec(fixture("echo.sh"), new Uint8Array(200_000)),
    testEngineSettings({ maxOutputBytes: 100_000 }),
  );
  assertEquals(result.outcome, "failure");
  if (result.outcome === "failure") assertMatch(result.message, /limit of 100000 bytes/);
});

Deno.test("runTask() gives the task the pipe arguments in the configured spelling", async () => {
  const result = await runTask(
    spec(fixture("echo.sh"), "hyphen"),
    testEngineSettings({ pipeArgStyle: "hyphen" }),
  );
  assertEquals(outputOf(result), "hyphen");
});

Deno.test("runTask() keeps the broker credentials out of the task's environment", async () => {
  const script = await Deno.makeTempFile({ suffix: ".sh" });
  try {
    await Deno.writeTextFile(script, '#!/bin/sh\nenv\n: > "$6"\n');
    await Deno.chmod(script, 0o755);
    const env = childEnvironment({
      PATH: "/usr/bin:/bin",
      KEEP: "yes",
      TERARIUM_MQ_PASSWORD: "hunter2",
      TERARIUM_MQ_USERNAME: "someone",
    });
    const result = await runTask(spec(script), testEngineSettings({ env }));
    assertEquals(result.outcome, "success");
    assertMatch(result.stdout, /KEEP=yes/);
    assertNotIncludes(result.stdout, "hunter2");
    assertNotIncludes(result.stdout, "TERARIUM_MQ_");
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("runTask() runs more tasks at once than Deno has threads for blocking file I/O", async () => {
  // Deno reads files on a pool of 32 threads; a FIFO read that waits would hold one each, and
  // 48 tasks with two pipes apiece would starve the pool and hang every file operation.
  const results = await Promise.all(
    Array.from(
      { length: 48 },
      (_, i) => runTask(spec(fixture("sleepy_echo.sh"), `task ${i}`), settings),
    ),
  );
  assertEquals(results.map(outputOf), Array.from({ length: 48 }, (_, i) => `task ${i}`));
});

Deno.test("runTask() keeps reading both pipes when they become readable at the same moment", async () => {
  for (let i = 0; i < 3; i++) {
    const progress: string[] = [];
    const result = await runTask(spec(fixture("burst.sh"), "", 10_000), settings, {
      onProgress: (message) => progress.push(text(message)),
    });
    assertEquals(result.outcome, "success", JSON.stringify({ ...result, output: undefined }));
    if (result.outcome === "success") assertEquals(result.outputSize, 3_000_001);
    assertEquals(progress, ['{"step":1}']);
  }
});

Deno.test("runTask() treats a timeout beyond the timer range as that long, not as expired", async () => {
  const result = await runTask(spec(fixture("echo.sh"), "patient", 2 ** 33), settings);
  assertEquals(outputOf(result), "patient");
});
