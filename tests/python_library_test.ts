import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { CliChild, jsonLines, outputOf, runCli } from "./helpers/cli_run.ts";
import { fixture } from "./helpers/serve_harness.ts";

const ECHO_PY = new URL("../examples/tasks/echo_progress.py", import.meta.url).pathname;
const TASK = fixture("pylib_task.py");

Deno.test("the Python example task runs through taskrunner run", async (t) => {
  const input = JSON.stringify({ progress_steps: 2, x: "é" });
  for (const style of ["underscore", "hyphen"]) {
    await t.step(`with --pipe-args ${style}`, async () => {
      const result = await runCli([
        "run",
        ECHO_PY,
        "--pipe-args",
        style,
        "--input-json",
        input,
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.text, input);
      assertMatch(result.stderr, /^\[progress\] 1\/2 50% step 1 of 2$/m);
      assertMatch(result.stderr, /^\[progress\] 2\/2 100% step 2 of 2$/m);
    });
  }
});

Deno.test("the Python library reads bytes, str and dict input", async (t) => {
  await t.step("bytes: any byte values, unchanged", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const input = new Uint8Array(4096).map((_, i) => (i * 7) % 256);
      await Deno.writeFile(`${dir}/in`, input);
      const result = await runCli(["run", TASK, "--input", `${dir}/in`], {
        env: { PYLIB_READ: "bytes" },
      });
      assertEquals(result.code, 0, result.stderr);
      assertEquals([...result.stdout], [...input]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("str: decoded as UTF-8", async () => {
    const result = await runCli(["run", TASK, "--pipe-args", "hyphen"], {
      stdin: new TextEncoder().encode("héllo wörld"),
      env: { PYLIB_READ: "str" },
    });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.text, "HÉLLO WÖRLD");
  });
  await t.step("dict: parsed JSON, with progress and dict output", async () => {
    const result = await runCli([
      "run",
      TASK,
      "--json",
      "--id",
      "py-1",
      "--input-json",
      '{"progress": 2, "k": [1, 2]}',
    ]);
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    assertEquals(JSON.parse(outputOf(responses[2]!)), { progress: 2, total: 2 });
    assertEquals(JSON.parse(outputOf(responses[3]!)), {
      id: "py-1",
      got: { progress: 2, k: [1, 2] },
    });
  });
});

Deno.test("the Python library takes --input without pipes", async () => {
  const { code, stdout, stderr } = await new Deno.Command("python3", {
    args: [TASK, "--id", "x", "--input", '{"progress": 1}'],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  // Without pipes, progress and output go to stdout.
  assertMatch(text, /^\{"progress": 1, "total": 1\}$/m);
  assertMatch(text, /^\{"id": "x", "got": \{"progress": 1\}\}$/m);
});

Deno.test("the Python library calls the cancellation handler on SIGINT of taskrunner run", async () => {
  const dir = await Deno.makeTempDir();
  const marker = `${dir}/cancelled`;
  try {
    await using cli = new CliChild(
      ["run", TASK, "--id", "py-cancel", "--input-json", '{"ready": true, "sleep": 60}'],
      { env: { PYLIB_CANCEL_MARKER: marker } },
    );
    await cli.waitFor(({ stderr }) => stderr.includes("[stdout] ready"), "the task to be ready");
    cli.signal("SIGINT");
    const result = await cli.finished();
    assertEquals(result.code, 130, result.stderr);
    assert(
      (await Deno.stat(marker).catch(() => undefined))?.isFile,
      "the handler wrote no marker",
    );
    assertEquals(await Deno.readTextFile(marker), "cancelled py-cancel");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
