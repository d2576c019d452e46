/**
 * One status sequence for `serve` and `run`: both feed a task's events to the same
 * `ProgressResponses` (src/protocol/progress_responses.ts), `serve` to the broker and `run --json`
 * to JSON lines on stdout.
 *
 * @module
 */
import { assertEquals } from "../helpers/assert.ts";
import { CliChild, jsonLines } from "../helpers/cli_run.ts";
import { behaveJson } from "../helpers/engine.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { ProgressResponses } from "../../src/protocol/progress_responses.ts";
import type { ResponseUpdate } from "../../src/protocol/response.ts";
import type { RunningTask } from "../../src/task/mod.ts";

function sequence(): { sent: ResponseUpdate[]; responses: ProgressResponses } {
  const sent: ResponseUpdate[] = [];
  return { sent, responses: new ProgressResponses((update) => sent.push(update)) };
}

function task(stdout: string, stderr = ""): RunningTask {
  return { id: "t", pid: 1, stdout, stderr };
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("ProgressResponses sends RUNNING at the start and for each progress message", () => {
  const { sent, responses } = sequence();
  responses.start(task(""), false);
  responses.progress(bytes("{}"), task("a\n", "b\n"));
  responses.end();
  assertEquals(sent, [
    { status: "RUNNING", output: null, stdout: "", stderr: "" },
    { status: "RUNNING", output: bytes("{}"), stdout: "a\n", stderr: "b\n" },
  ]);
  assertEquals(responses.started, true);
});

Deno.test("ProgressResponses sends CANCELLING after RUNNING for a cancel that came before the start", () => {
  const { sent, responses } = sequence();
  responses.cancel(); // not started: nothing to say yet
  responses.start(task("up\n"), true);
  assertEquals(sent.map((update) => update.status), ["RUNNING", "CANCELLING"]);
  assertEquals(sent[1], { status: "CANCELLING", output: null, stdout: "up\n", stderr: "" });
});

Deno.test("ProgressResponses sends no CANCELLING for a task never started or already ended", () => {
  const never = sequence();
  never.responses.cancel();
  never.responses.end();
  assertEquals(never.sent, []);
  assertEquals(never.responses.started, false);
  const ended = sequence();
  ended.responses.start(task(""), false);
  ended.responses.end();
  ended.responses.cancel();
  assertEquals(ended.sent.map((update) => update.status), ["RUNNING"]);
});

Deno.test("run --json on SIGINT prints RUNNING, CANCELLING with the lines as of the cancel, CANCELLED", async () => {
  await using cli = new CliChild([
    "run",
    fixture("behave.py"),
    "--json",
    "--id",
    "local-cancel",
    "--input-json",
    behaveJson({ stdout: ["ready"], sleep: 60 }),
  ]);
  await cli.waitFor(({ stderr }) => stderr.includes("[stdout] ready"), "the task to start");
  cli.signal("SIGINT");
  const result = await cli.finished();
  assertEquals(result.code, 130, result.stderr);
  const responses = jsonLines(result.text);
  assertEquals(responses.map((response) => response.status), [
    "RUNNING",
    "CANCELLING",
    "CANCELLED",
  ]);
  assertEquals(responses[1]!.stdout, "ready\n");
  for (const response of responses) assertEquals(response.id, "local-cancel");
});
