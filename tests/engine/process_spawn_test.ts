import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { eventually, testEngineSettings } from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { runTask, type TaskEngineSettings } from "../../src/task/mod.ts";
import type { SpawnMethod } from "../../src/task/process_group.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function spec(script: string, input: string, timeoutMs = 20_000) {
  return { id: crypto.randomUUID(), script, input: new TextEncoder().encode(input), timeoutMs };
}

/** Whether /proc still lists the process, alive or as a zombie (through `cat`, see engine.ts). */
function processExists(pid: number): boolean {
  return new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null", stdout: "null" })
    .outputSync().success;
}

async function readPid(path: string): Promise<number> {
  let pid = 0;
  await eventually(async () => (pid = Number(await Deno.readTextFile(path).catch(() => "0"))) > 0);
  return pid;
}

const METHODS: SpawnMethod[] = ["posix_spawn", "command"];

Deno.test("runTask() behaves the same through posix_spawn and through Deno.Command", async (t) => {
  for (const method of METHODS) {
    const settings = testEngineSettings({ spawnMethod: method });
    await t.step(
      `${method}: input to output, stdout and stderr, the task id variable`,
      async () => {
        const result = await runTask(spec(fixture("env_echo.sh"), "hello"), settings);
        assertEquals(result.outcome, "success", JSON.stringify(result));
        if (result.outcome !== "success") return;
        assertEquals(text(result.output), "hello");
        assertMatch(result.stdout, /^task [0-9a-f-]{36}\n$/);
        assertEquals(result.stderr, "on stderr\n");
      },
    );
    await t.step(`${method}: a non-zero exit and a signal are reported`, async () => {
      const failed = await runTask(spec(fixture("env_echo.sh"), "exit 3"), settings);
      assertEquals(failed.outcome, "failure");
      if (failed.outcome === "failure") {
        assertEquals(failed.exitCode, 3);
        assertMatch(failed.message, /exited with code 3/);
      }
      const killed = await runTask(spec(fixture("env_echo.sh"), "kill"), settings);
      assertEquals(killed.outcome, "failure");
      if (killed.outcome === "failure") {
        assertEquals(killed.exitCode, null);
        assertMatch(killed.message, /was killed by SIGKILL/);
      }
    });
    await t.step(`${method}: the task's SIGPIPE is the default (Deno ignores it)`, async () => {
      const result = await runTask(spec(fixture("env_echo.sh"), "sigpipe"), settings);
      assertEquals(result.outcome, "success", JSON.stringify(result));
      if (result.outcome === "success") assertEquals(text(result.output), "SIGPIPE default");
    });
  }
});

Deno.test("runTask() hands a file the kernel cannot execute to /bin/sh, as Java's ProcessBuilder does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Executable bits but no valid format: exec says ENOEXEC, and execvp (Java) runs sh on it.
    const bad = `${dir}/not-a-program`;
    await Deno.writeFile(bad, new TextEncoder().encode("exit 3\n\u0001\u0002"), { mode: 0o755 });
    const result = await runTask(spec(bad, ""), testEngineSettings());
    assertEquals(result.outcome, "failure", JSON.stringify(result));
    if (result.outcome === "failure") assertEquals(result.exitCode, 3, "sh ran it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTask() kills a task's daemon (a grandchild in a session of its own) and reaps it", async (t) => {
  const dir = await Deno.makeTempDir();
  const settings: TaskEngineSettings = testEngineSettings({ killGraceMs: 500 });
  try {
    for (
      const [name, mode, stop] of [
        ["when the task ends", "exit", undefined],
        ["when the task ends, a daemon with an empty environment", "exit bare", undefined],
        ["on cancel", "wait", "cancel"],
        ["on timeout", "wait", "timeout"],
      ] as const
    ) {
      await t.step(name, async () => {
        const pidFile = `${dir}/${crypto.randomUUID()}`;
        const controller = new AbortController();
        const task = spec(
          fixture("daemon.sh"),
          `${pidFile} ${mode}`,
          stop === "timeout" ? 1_500 : 20_000,
        );
        const running = runTask(task, settings, { signal: controller.signal });
        const daemon = await readPid(pidFile);
        // A task that exits at once may be over, its daemon swept, by now.
        if (mode === "wait") assert(processExists(daemon), "the daemon was started");
        if (stop === "cancel") controller.abort("cancelled");
        const result = await running;
        assertEquals(
          result.outcome,
          stop === "cancel" ? "cancelled" : stop === "timeout" ? "timeout" : "success",
        );
        assert(!processExists(daemon), "the daemon is gone, not even a zombie");
      });
    }
    await t.step("not while its own task still runs", async () => {
      const [pidA, pidB] = [`${dir}/a`, `${dir}/b`];
      const controller = new AbortController();
      const a = runTask(spec(fixture("daemon.sh"), `${pidA} wait`), settings, {
        signal: controller.signal,
      });
      const daemonA = await readPid(pidA);
      const b = await runTask(spec(fixture("daemon.sh"), `${pidB} exit`), settings);
      assertEquals(b.outcome, "success");
      assert(!processExists(await readPid(pidB)), "B's daemon is gone");
      assert(processExists(daemonA), "A's daemon is left to A while A runs");
      controller.abort("cancelled");
      assertEquals((await a).outcome, "cancelled");
      assert(!processExists(daemonA), "A's daemon is gone with A");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTask() succeeds when a daemon of the task keeps its output pipe open", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    for (const method of METHODS) {
      for (const bare of ["", " bare"]) {
        await t.step(`${method}${bare ? ", a daemon with an empty environment" : ""}`, async () => {
          const pidFile = `${dir}/${crypto.randomUUID()}`;
          const started = performance.now();
          const result = await runTask(
            spec(fixture("daemon_holds_output.sh"), `${pidFile}${bare}`),
            testEngineSettings({ spawnMethod: method }),
          );
          assertEquals(result.outcome, "success", JSON.stringify(result));
          if (result.outcome === "success") assertEquals(text(result.output), "result");
          assert(!processExists(await readPid(pidFile)), "the daemon is gone, not even a zombie");
          assert(performance.now() - started < 10_000, "no wait for the daemon");
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runTask() never takes a task being spawned for another task's orphan", async () => {
  // Each task's end sweeps for orphans while others are being spawned (on another thread,
  // their processes already running before their pid is known).
  const settings = testEngineSettings();
  let next = 0;
  const outcomes: string[] = [];
  const worker = async () => {
    while (next < 96) {
      next++;
      const result = await runTask(spec(fixture("echo.sh"), "hello"), settings);
      outcomes.push(result.outcome === "failure" ? result.message : result.outcome);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  assertEquals(outcomes.filter((outcome) => outcome !== "success"), []);
});
