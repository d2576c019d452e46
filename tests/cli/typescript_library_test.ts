import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { CliChild, jsonLines, outputOf, runCli } from "../helpers/cli_run.ts";

const ECHO_TS = new URL("../../examples/tasks/echo_progress.ts", import.meta.url).pathname;

Deno.test("the TypeScript example task runs through taskrunner run", async (t) => {
  const input = JSON.stringify({ progress_steps: 3, x: "é" });
  for (const style of ["underscore", "hyphen"]) {
    await t.step(`with --pipe-args ${style}`, async () => {
      const result = await runCli(["run", ECHO_TS, "--pipe-args", style, "--input-json", input]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.text, input);
      assertMatch(result.stderr, /^\[progress\] 1\/3 33% step 1 of 3$/m);
      assertMatch(result.stderr, /^\[progress\] 3\/3 100% step 3 of 3$/m);
    });
  }
  await t.step("with --json", async () => {
    const result = await runCli(["run", ECHO_TS, "--json", "--input-json", input]);
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    assertEquals(outputOf(responses[4]!), input);
  });
});

Deno.test("the TypeScript example task is cancelled by SIGINT of taskrunner run", async () => {
  await using cli = new CliChild([
    "run",
    ECHO_TS,
    "--input-json",
    JSON.stringify({ progress_steps: 100, step_seconds: 1 }),
  ]);
  await cli.waitFor(({ stderr }) => stderr.includes("[progress] 1/100"), "the first progress");
  cli.signal("SIGINT");
  const result = await cli.finished();
  assertEquals(result.code, 130, result.stderr);
  assertMatch(result.stderr, /^\[stdout\] echo_progress: cancelled, cleaning up$/m);
});
