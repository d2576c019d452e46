import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { CliChild, jsonLines, outputOf, runCli } from "../helpers/cli_run.ts";
import { behaveJson, isAlive } from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";

const ECHO_PY = new URL("../../examples/tasks/echo_progress.py", import.meta.url).pathname;

Deno.test("run shows progress on stderr and writes the output to stdout", async () => {
  const input = JSON.stringify({ progress_steps: 3, x: 1 });
  const result = await runCli(["run", ECHO_PY, "--input-json", input]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.text, input);
  assertMatch(result.stderr, /^RUNNING .*echo_progress\.py \(id [0-9a-f-]{36}, pid \d+\)$/m);
  assertMatch(result.stderr, /^\[progress\] 1\/3 33% step 1 of 3$/m);
  assertMatch(result.stderr, /^\[progress\] 3\/3 100% step 3 of 3$/m);
  assertMatch(result.stderr, /^\[stdout\] Reading input from input pipe$/m);
  assertMatch(result.stderr, /^SUCCESS after .*, 26 bytes of output$/m);
});

Deno.test("run reads the input from a file or from stdin", async (t) => {
  await t.step("--input FILE", async () => {
    const file = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(file, "from a file");
      const result = await runCli(["run", fixture("echo.sh"), "--input", file]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.text, "from a file");
    } finally {
      await Deno.remove(file);
    }
  });
  await t.step("stdin, when it is not a terminal", async () => {
    const stdin = new TextEncoder().encode("from stdin");
    const result = await runCli(["run", fixture("echo.sh")], { stdin });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.text, "from stdin");
  });
  await t.step("--input-json must be JSON", async () => {
    const result = await runCli(["run", fixture("echo.sh"), "--input-json", "{nope"]);
    assertEquals(result.code, 2);
    assertMatch(result.stderr, /Invalid --input-json/);
  });
});

Deno.test("run exits 1 when the task fails", async (t) => {
  await t.step("non-zero exit", async () => {
    const result = await runCli([
      "run",
      fixture("behave.py"),
      "--input-json",
      behaveJson({ exit: 3, stdout: ["working"], stderr: ["boom"] }),
    ]);
    assertEquals(result.code, 1, result.stderr);
    assertEquals(result.text, "");
    assertMatch(result.stderr, /^\[stdout\] working$/m);
    assertMatch(result.stderr, /^\[stderr\] boom$/m);
    // The Java runner's words first (issue 9.8): the output was written before the exit.
    assertMatch(
      result.stderr,
      /^FAILED: Python script exited with non-zero exit code: 3: task ".*behave\.py" exited with code 3: boom$/m,
    );
  });
  await t.step("script that cannot start", async () => {
    const result = await runCli(["run", "tests/fixtures/no_such_task.py", "--input-json", "{}"]);
    assertEquals(result.code, 1);
    // The Java runner's words first (issue 9.8).
    assertMatch(
      result.stderr,
      /^FAILED: Script file: tests\/fixtures\/no_such_task\.py not found: Cannot start task .*script file not found$/m,
    );
  });
});

Deno.test("run exits 124 when the task times out", async () => {
  const result = await runCli([
    "run",
    fixture("behave.py"),
    "--timeout",
    "1s",
    "--input-json",
    behaveJson({ sleep: 60 }),
  ]);
  assertEquals(result.code, 124, result.stderr);
  // The Java runner's words first (issue 9.8); the limit is one of inactivity (issue 9.3).
  assertMatch(
    result.stderr,
    /^FAILED: Reading from pipe took too long for task .*: task ".*behave\.py" timed out after 1 s without progress/m,
  );
});

Deno.test("run --timeout rejects a duration it cannot read", async () => {
  const result = await runCli(["run", fixture("echo.sh"), "--timeout", "soon"]);
  assertEquals(result.code, 2);
  assertMatch(result.stderr, /Invalid duration "soon"/);
});

Deno.test("run exits 130 on SIGINT and kills the whole process group", async () => {
  const dir = await Deno.makeTempDir();
  const pidFile = `${dir}/grandchild.pid`;
  try {
    await using cli = new CliChild([
      "run",
      fixture("behave.py"),
      "--input-json",
      behaveJson({ grandchild: true, pid_file: pidFile, stdout: ["ready"], sleep: 60 }),
    ]);
    // behave.py writes the pid file before it prints.
    await cli.waitFor(({ stderr }) => stderr.includes("[stdout] ready"), "the task to start");
    const grandchild = Number(await Deno.readTextFile(pidFile));
    assert(isAlive(grandchild), "the grandchild runs before the cancel");
    cli.signal("SIGINT");
    const result = await cli.finished();
    assertEquals(result.code, 130, result.stderr);
    assertMatch(result.stderr, /^CANCELLED after /m);
    assert(!isAlive(grandchild), `grandchild ${grandchild} survived the cancel`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run exits 130 on SIGTERM", async () => {
  await using cli = new CliChild([
    "run",
    fixture("behave.py"),
    "--input-json",
    behaveJson({ stdout: ["ready"], sleep: 60 }),
  ]);
  await cli.waitFor(({ stderr }) => stderr.includes("[stdout] ready"), "the task to start");
  cli.signal("SIGTERM");
  assertEquals((await cli.finished()).code, 130);
});

async function sha256(bytes: Uint8Array): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>))
    .toHex();
}

Deno.test("run passes 32 MiB of output byte for byte", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const input = new Uint8Array(32 * 1024 * 1024);
    for (let offset = 0; offset < input.length; offset += 65_536) {
      crypto.getRandomValues(input.subarray(offset, offset + 65_536));
    }
    const expected = await sha256(input);
    await Deno.writeFile(`${dir}/in`, input);
    await t.step("from --input FILE to --output FILE", async () => {
      const args = ["run", fixture("echo.sh"), "--input", `${dir}/in`, "--output", `${dir}/out`];
      const result = await runCli(args);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout.length, 0, "nothing on stdout with --output");
      const output = await Deno.readFile(`${dir}/out`);
      assertEquals(output.length, input.length);
      assertEquals(await sha256(output), expected);
    });
    await t.step("to stdout", async () => {
      const result = await runCli(["run", fixture("echo.sh"), "--input", `${dir}/in`]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout.length, input.length);
      assertEquals(await sha256(result.stdout), expected);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run --json prints the responses serve would publish", async (t) => {
  await t.step("success", async () => {
    const input = JSON.stringify({ progress_steps: 2 });
    const result = await runCli([
      "run",
      ECHO_PY,
      "--json",
      "--id",
      "local-1",
      "--input-json",
      input,
    ]);
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    for (const response of responses) {
      assertEquals(response.id, "local-1");
      assertEquals(response.script, ECHO_PY);
      assertEquals(Object.keys(response).length, 12);
    }
    const progress = JSON.parse(outputOf(responses[1]!));
    assertEquals(progress, { progress: 1, total: 2, message: "step 1 of 2" });
    assertEquals(outputOf(responses[3]!), input);
  });
  await t.step("failure", async () => {
    const result = await runCli([
      "run",
      fixture("behave.py"),
      "--json",
      "--input-json",
      behaveJson({ exit: 2 }),
    ]);
    assertEquals(result.code, 1);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "FAILED"]);
    assertMatch(outputOf(responses[1]!), /exited with code 2/);
  });
  await t.step("cannot start", async () => {
    const result = await runCli(["run", "missing.py", "--json"]);
    assertEquals(result.code, 1);
    assertEquals(jsonLines(result.text).map((response) => response.status), ["FAILED"]);
  });
});

Deno.test("run ends the output with a newline on a terminal, not in a pipe", async () => {
  const input = '{"a":1}';
  // util-linux `script` gives the CLI a terminal; its output comes back with CR LF endings.
  const command = [
    Deno.execPath(),
    "run",
    ...RUN_PERMISSIONS,
    "main.ts",
    "run",
    fixture("echo.sh"),
    "--input-json",
    `'${input}'`,
    "2>/dev/null",
  ].join(" ");
  const terminal = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(terminal.code, 0, new TextDecoder().decode(terminal.stderr));
  assertEquals(new TextDecoder().decode(terminal.stdout), `${input}\r\n`);
  const piped = await runCli(["run", fixture("echo.sh"), "--input-json", input]);
  assertEquals(piped.text, input, "a pipe gets the bytes as they are");
});
