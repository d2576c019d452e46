import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { behave, eventually, isAlive } from "../helpers/engine.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";

async function readPid(path: string): Promise<number> {
  let pid = 0;
  await eventually(async () => (pid = Number(await Deno.readTextFile(path).catch(() => "0"))) > 0);
  return pid;
}

async function tempWorkDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "taskrunner-work-" });
}

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name);
}

Deno.test("SIGTERM: no new requests, a running task finishes within the drain, exit 0", async () => {
  const names = uniqueNames("drain");
  await using server = await ServerSide.open(names);
  const workDir = await tempWorkDir();
  await using runner = new CliChild([
    "serve",
    ...brokerFlags(names),
    "--drain",
    "20",
    "--work-dir",
    workDir,
  ]);
  await runner.ready();
  const running = makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 1, sleep: 1 }),
  }, names.routingKey);
  server.publishRequest(running);
  await server.waitFor(() => server.statuses(running.id).length >= 2, 20_000, "progress");
  runner.signal("SIGTERM");
  await runner.waitForLines((line) => line.includes("Shutting down"));
  const late = makeRequest({ script: fixture("echo.sh"), input: "late" }, names.routingKey);
  server.publishRequest(late);
  const { code } = await runner.finished();
  assertEquals(code, 0);
  assertEquals(server.statuses(running.id).at(-1), "SUCCESS");
  assertEquals(server.statuses(late.id), [], "nothing new was taken after SIGTERM");
  assertEquals(await server.queueDepth(), 1, "the late request waits for another runner");
  assertEquals(await entries(workDir), [], "no FIFO directory left");
  await Deno.remove(workDir, { recursive: true });
});

Deno.test("SIGTERM: tasks still running after the drain are stopped and their requests requeued", async (t) => {
  for (
    const [name, extra, second] of [
      ["after the drain period", ["--drain", "0.5"], undefined],
      ["at once on a second signal", ["--drain", "60"], "SIGINT"],
    ] as const
  ) {
    await t.step(name, async () => {
      const names = uniqueNames("requeue");
      await using server = await ServerSide.open(names);
      const workDir = await tempWorkDir();
      const pidFile = `${workDir}.pid`;
      await using runner = new CliChild(
        ["serve", ...brokerFlags(names), ...extra, "--kill-grace", "1", "--work-dir", workDir],
      );
      await runner.ready();
      const request = makeRequest({
        script: fixture("behave.py"),
        input: behave({ progress: 1, sleep: 60, self_pid_file: pidFile }),
      }, names.routingKey);
      server.publishRequest(request);
      await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
      const taskPid = await readPid(pidFile);
      const started = performance.now();
      runner.signal("SIGTERM");
      if (second) {
        await runner.waitForLines((line) => line.includes("Waiting for running tasks"));
        runner.signal(second);
      }
      const { code } = await runner.finished();
      assertEquals(code, 0);
      assert(
        performance.now() - started < 10_000,
        `it did not wait for the task:\n${runner.stderrLines.join("\n")}`,
      );
      assertEquals(server.statuses(request.id), ["RUNNING", "RUNNING"], "no terminal response");
      assert(
        await eventually(async () => await server.queueDepth() === 1),
        "the request is back in the queue",
      );
      assert(!isAlive(taskPid), "the task was stopped");
      assertEquals(await entries(workDir), []);
      await Deno.remove(workDir, { recursive: true });
      await Deno.remove(pidFile);
    });
  }
});

Deno.test("a runner killed with SIGKILL: another runner completes the request, and the next start on its work dir kills its task", async () => {
  const names = uniqueNames("sigkill");
  await using server = await ServerSide.open(names);
  const [workA, workB] = [await tempWorkDir(), await tempWorkDir()];
  const pidFile = `${workA}.pid`;
  const runLog = `${workA}.runs`;
  const release = `${workA}.release`;
  // The task runs until this file exists: the first run outlives its runner until reaped.
  const input = behave({
    progress: 1,
    self_pid_file: pidFile,
    run_log: runLog,
    wait_file: release,
  });
  try {
    const first = new CliChild(["serve", ...brokerFlags(names), "--work-dir", workA]);
    await first.ready();
    const request = makeRequest({ script: fixture("behave.py"), input }, names.routingKey);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
    const firstTask = await readPid(pidFile);
    await using second = new CliChild(["serve", ...brokerFlags(names), "--work-dir", workB]);
    await second.ready();

    first.signal("SIGKILL");
    assertEquals((await first.finished()).code, 137);
    // The second runner takes the redelivered request and runs it from the start.
    await server.waitFor(() => server.statuses(request.id).length >= 4, 20_000, "the rerun");

    // Tasks are started without a helper process (no parent-death signal): outside a
    // container (where tini's exit ends them all), the next runner on the work dir kills them.
    // Its task directory and the owner record beside it (written first, atomically).
    assertEquals((await entries(workA)).length, 2, "the dead runner left its task directory");
    await using third = new CliChild(["serve", ...brokerFlags(names), "--work-dir", workA]);
    await third.ready();
    assert(await eventually(() => !isAlive(firstTask)), "the dead runner's task was killed");
    assertEquals(await entries(workA), [], "stale task directory removed at start-up");
    assert(
      third.stderrLines.some((line) =>
        line.includes("Cleaned up tasks left by a runner that died")
      ),
    );

    await Deno.writeTextFile(release, "");
    const responses = await server.terminal(request.id, 30_000);
    const statuses = responses.map((response) => response.status);
    assertEquals(
      statuses,
      ["RUNNING", "RUNNING", "RUNNING", "RUNNING", "SUCCESS"],
      "run again from the start",
    );
    assertEquals(outputText(responses.at(-1)), new TextDecoder().decode(input));
    assert(
      await eventually(async () => await server.queueDepth() === 0),
      "acknowledged by the second runner",
    );
    assertEquals(await server.consumers(), 2, "the dead runner's consumer is gone");
    assertEquals(await entries(workB), []);
  } finally {
    for (const path of [workA, workB, pidFile, runLog, release]) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
});
