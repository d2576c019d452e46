/**
 * The engine's behaviour as the hmi-server sees it through the real broker: no empty SUCCESS,
 * timeoutMinutes as an inactivity limit, CANCELLING with the output as of the cancel, and the
 * Java runner's FAILED texts.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide, testNames } from "../helpers/broker_harness.ts";
import { behave, behaveJson, eventually } from "../helpers/engine.ts";
import { fixture, startRunner, type TestRunner } from "../helpers/serve_harness.ts";
import { freePort } from "../helpers/ops_harness.ts";
import { CliChild, jsonLines, runCli } from "../helpers/cli_run.ts";

/** Opens the server side and a runner on fresh names, and tears both down. */
async function withRunner(
  label: string,
  test: (server: ServerSide, runner: TestRunner) => Promise<void>,
  options: Record<string, unknown> = {},
): Promise<void> {
  const names = testNames(label);
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, { killGrace: "0.3", ...options });
  await runner.ready;
  await test(server, runner);
}

/** A shell task (the pipe paths in $input, $output, $progress), removed on dispose. */
async function shellTask(body: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ suffix: ".sh" });
  await Deno.writeTextFile(path, `#!/bin/sh\n. "${fixture("_task_args.sh")}"\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

Deno.test("serve: a task that exits 0 without writing its output gives FAILED, exited early", async () => {
  await withRunner("noout", async (server) => {
    await using task = await shellTask('cat "$input" >/dev/null; echo "caught: boom" >&2');
    const request = makeRequest({ script: task.path, input: "x" }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "FAILED"]);
    assertMatch(
      outputText(responses[1]),
      new RegExp(`^Process for task ${request.id} exited early with code 0: .*: caught: boom$`),
    );
    assertEquals(responses[1]!.stderr, "caught: boom\n");
  });
});

Deno.test("serve: a task that opens and closes its output without a byte gives SUCCESS", async () => {
  await withRunner("emptyout", async (server) => {
    await using task = await shellTask('cat "$input" >/dev/null; : > "$output"');
    const request = makeRequest({ script: task.path, input: "x" }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "SUCCESS"]);
    assertEquals(outputText(responses[1]), "");
  });
});

Deno.test("serve: progress keeps a task alive past timeoutMinutes; silence does not", async (t) => {
  await withRunner("inactivity", async (server) => {
    await t.step("progress every 0.3 s for 2.4 s, timeoutMinutes 0.02 (1.2 s)", async () => {
      const request = makeRequest({
        script: fixture("behave.py"),
        input: behave({ progress: 8, progress_interval: 0.3, output: "alive" }),
        timeoutMinutes: 0.02,
      }, server.names.routingKey);
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertEquals(responses.at(-1)?.status, "SUCCESS", outputText(responses.at(-1)));
      assertEquals(outputText(responses.at(-1)), "alive");
      assertEquals(responses.length, 10);
    });
    await t.step("silent after one progress message", async () => {
      const request = makeRequest({
        script: fixture("behave.py"),
        input: behave({ progress: 1, sleep: 60 }),
        timeoutMinutes: 0.01,
      }, server.names.routingKey);
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertEquals(responses.map((response) => response.status), ["RUNNING", "RUNNING", "FAILED"]);
      assertMatch(
        outputText(responses[2]),
        new RegExp(
          `^Reading from pipe took too long for task ${request.id}: .* timed out after 600 ms without progress`,
        ),
      );
    });
  });
});

Deno.test("serve: --max-task-duration stops a task that keeps reporting progress", async () => {
  await withRunner("maxduration", async (server) => {
    const request = makeRequest({
      script: fixture("behave.py"),
      input: behave({ progress: 100, progress_interval: 0.1 }),
      timeoutMinutes: 1,
    }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.at(-1)?.status, "FAILED");
    assertMatch(
      outputText(responses.at(-1)),
      /^Process did not exit within the timeout: .* the maximum task duration \(--max-task-duration\)$/,
    );
  }, { maxTaskDuration: "0.015" });
});

Deno.test("serve: CANCELLING carries the stdout and stderr printed since the last progress", async () => {
  await withRunner("cancellingtails", async (server, runner) => {
    const flag = `${await Deno.makeTempDir()}/go`;
    await using task = await shellTask(
      `flag=$(tr -d '"' < "$input"); printf '{"step":1}' > "$progress"
      while [ ! -f "$flag" ]; do sleep 0.02; done
      echo "printed after the progress"; echo "and on stderr" >&2; sleep 60`,
    );
    const request = makeRequest({ script: task.path, input: flag }, server.names.routingKey);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
    await Deno.writeTextFile(flag, "");
    assert(
      await eventually(() => runner.logs.some((line) => line.includes("and on stderr")), 20_000),
      "the task's lines are read",
    );
    await server.cancel(request.id);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "CANCELLING",
      "CANCELLED",
    ]);
    assertEquals(responses[1]!.stdout, "", "the progress came before the line");
    assertEquals(responses[2]!.stdout, "printed after the progress\n");
    assertEquals(responses[2]!.stderr, "and on stderr\n");
    assert(responses[3]!.stdout?.includes("printed after the progress"));
    await Deno.remove(flag);
  });
});

Deno.test("serve: an oversized progress message is dropped with a warning and counted in /metrics", async () => {
  const port = freePort();
  await withRunner("progressdrop", async (server, runner) => {
    await using task = await shellTask(
      `cat "$input" >/dev/null; printf '{"step":1}' > "$progress"
      { printf '{"d":"'; head -c 5000 /dev/zero | tr '\\0' x; printf '"}'; } > "$progress"
      printf 'not json either %01500d' 0 > "$progress"
      printf '{"step":2}' > "$progress"; printf ok > "$output"`,
    );
    const request = makeRequest({ script: task.path, input: "x" }, server.names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((response) => outputText(response)), [
      "",
      '{"step":1}',
      '{"step":2}',
      "ok",
    ]);
    const warnings = runner.logs.filter((line) => line.includes("Progress message dropped"));
    assertEquals(warnings.length, 2);
    assertMatch(warnings[0]!, /bytes=5008 limit=1000/);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assertMatch(metrics, /^taskrunner_progress_messages_dropped_total 2$/m);
    assertMatch(metrics, /^taskrunner_progress_messages_total 2$/m);
  }, { maxProgressBytes: "1000", httpPort: String(port), httpHost: "127.0.0.1" });
});

Deno.test("run: --timeout is an inactivity limit, and CANCELLING carries the output as of the cancel", async (t) => {
  await t.step("progress every 0.3 s for 2.4 s passes a 1 s --timeout", async () => {
    const result = await runCli([
      "run",
      fixture("behave.py"),
      "--timeout",
      "1s",
      "--input-json",
      behaveJson({ progress: 8, progress_interval: 0.3, output: "alive" }),
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.text, "alive");
  });
  await t.step("--json: CANCELLING has the line printed after the last progress", async () => {
    const flag = `${await Deno.makeTempDir()}/go`;
    await using task = await shellTask(
      `flag=$(tr -d '"' < "$input"); printf '{"step":1}' > "$progress"
      while [ ! -f "$flag" ]; do sleep 0.02; done; echo after; sleep 60`,
    );
    await using cli = new CliChild(["run", task.path, "--json", "--input-json", `"${flag}"`]);
    await cli.waitFor(({ stdout }) => stdout.includes('"output":"eyJzdGVwIjoxfQ=="'), "progress");
    await Deno.writeTextFile(flag, "");
    await cli.waitFor(({ stderr }) => stderr.includes("[stdout] after"), "its line");
    cli.signal("SIGINT");
    const result = await cli.finished();
    assertEquals(result.code, 130, result.stderr);
    const lines = jsonLines(result.text);
    assertEquals(lines.map((line) => line.status), [
      "RUNNING",
      "RUNNING",
      "CANCELLING",
      "CANCELLED",
    ]);
    assertEquals(lines[1]?.stdout, "", "the progress came before the line");
    assertEquals(lines[2]?.stdout, "after\n");
    await Deno.remove(flag);
  });
});

Deno.test("serve: a script that cannot start gives FAILED in the Java runner's words first", async (t) => {
  await withRunner("nostartjava", async (server) => {
    for (
      const [name, script, text] of [
        [
          "missing .py",
          "/nonexistent/model.py",
          'Script file: /nonexistent/model.py not found: Cannot start task "/nonexistent/model.py": script file not found',
        ],
        [
          "not on PATH",
          "gollm:does-not-exist",
          'Cannot run program "gollm:does-not-exist": error=2, No such file or directory: Cannot start task "gollm:does-not-exist": executable not found on PATH',
        ],
        [
          "not executable",
          "/etc/passwd",
          'Cannot run program "/etc/passwd": error=13, Permission denied: Cannot start task "/etc/passwd": "/etc/passwd" is not executable',
        ],
      ] as const
    ) {
      await t.step(name, async () => {
        const request = makeRequest({ script }, server.names.routingKey);
        server.publishRequest(request);
        const responses = await server.terminal(request.id);
        assertEquals(responses.map((response) => response.status), ["FAILED"]);
        assertEquals(outputText(responses[0]), text);
      });
    }
  });
});
