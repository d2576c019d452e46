import { assert, assertEquals } from "../helpers/assert.ts";
import { testEngineSettings } from "../helpers/engine.ts";
import { exitCodeOf } from "../../src/local/exit_codes.ts";
import {
  encodeResponse,
  failedResponse,
  notStartedResponse,
  terminalResponse,
} from "../../src/protocol/mod.ts";
import {
  checkInputSize,
  runTask,
  TaskInputTooLargeError,
  type TaskResult,
  TaskStartError,
} from "../../src/task/mod.ts";

const tails = { stdout: "out\n", stderr: "err\n", durationMs: 12 };
const bytes = (text: string) => new TextEncoder().encode(text);

function success(chunks: Uint8Array[]): TaskResult {
  const size = chunks.reduce((total, chunk) => total + chunk.length, 0);
  return {
    ...tails,
    outcome: "success",
    outputChunks: chunks,
    outputSize: size,
    get output(): Uint8Array {
      throw new Error("The terminal response sends the chunks, never the joined output");
    },
    releaseOutput() {
      chunks.length = 0;
    },
  };
}

Deno.test("terminalResponse() answers each way a task ends with one terminal status", async (t) => {
  await t.step("success: SUCCESS with the output chunks as read", () => {
    const chunks = [bytes("ab"), bytes("c")];
    assertEquals(terminalResponse(success(chunks)), {
      status: "SUCCESS",
      output: chunks,
      outputBytes: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
  });
  await t.step("failure: FAILED with the message, not timed out", () => {
    const result: TaskResult = { ...tails, outcome: "failure", message: "why", exitCode: 3 };
    assertEquals(terminalResponse(result), {
      status: "FAILED",
      output: "why",
      timedOut: false,
      stdout: "out\n",
      stderr: "err\n",
    });
  });
  await t.step("timeout: FAILED with the message, timed out", () => {
    const result: TaskResult = { ...tails, outcome: "timeout", message: "late", limit: "duration" };
    assertEquals(terminalResponse(result), {
      status: "FAILED",
      output: "late",
      timedOut: true,
      stdout: "out\n",
      stderr: "err\n",
    });
  });
  await t.step("cancelled and shutdown: CANCELLED with the tails and no output", () => {
    for (const outcome of ["cancelled", "shutdown"] as const) {
      assertEquals(terminalResponse({ ...tails, outcome }), {
        status: "CANCELLED",
        stdout: "out\n",
        stderr: "err\n",
      });
    }
  });
});

Deno.test("notStartedResponse() puts the Java runner's words first and sends empty tails", () => {
  const error = new TaskStartError("no such file", { javaText: "Script file: x.py not found" });
  assertEquals(notStartedResponse(error), {
    status: "FAILED",
    output: "Script file: x.py not found: no such file",
    timedOut: false,
    stdout: "",
    stderr: "",
  });
  assertEquals(failedResponse("lost").output, "lost");
});

Deno.test("a terminal response encodes as the response the hmi-server reads", () => {
  const json = (response: Parameters<typeof encodeResponse>[1]) =>
    JSON.parse(new TextDecoder().decode(encodeResponse({ id: "t", routingKey: "k" }, response)));
  const succeeded = json(terminalResponse(success([bytes("ab"), bytes("c")])));
  assertEquals([succeeded.status, succeeded.output, succeeded.stdout], [
    "SUCCESS",
    "YWJj",
    "out\n",
  ]);
  const cancelled = json(terminalResponse({ ...tails, outcome: "cancelled" }));
  assertEquals([cancelled.status, cancelled.output], ["CANCELLED", null]);
  const failed = json(failedResponse("no"));
  assertEquals([failed.status, failed.output, failed.stdout, failed.stderr], [
    "FAILED",
    "bm8=",
    "",
    "",
  ]);
});

Deno.test("exitCodeOf() gives run's exit code for each terminal response", () => {
  const result = (outcome: "failure" | "timeout"): TaskResult =>
    outcome === "failure"
      ? { ...tails, outcome, message: "m", exitCode: 1 }
      : { ...tails, outcome, message: "m", limit: "inactivity" };
  assertEquals(exitCodeOf(terminalResponse(success([]))), 0);
  assertEquals(exitCodeOf(terminalResponse(result("failure"))), 1);
  assertEquals(exitCodeOf(terminalResponse(result("timeout"))), 124);
  assertEquals(exitCodeOf(terminalResponse({ ...tails, outcome: "cancelled" })), 130);
  assertEquals(exitCodeOf(failedResponse("x")), 1);
});

Deno.test("checkInputSize() refuses only an input over the limit", () => {
  checkInputSize(new Uint8Array(10), 10);
  checkInputSize(new Uint8Array(10), undefined);
  try {
    checkInputSize(new Uint8Array(11), 10);
    throw new Error("not refused");
  } catch (error) {
    assert(error instanceof TaskInputTooLargeError, String(error));
    assert(error instanceof TaskStartError, "a start failure, which front doors answer FAILED");
    assertEquals([error.bytes, error.limit], [11, 10]);
    assertEquals(error.message, "Task input of 11 bytes exceeds the limit of 10 bytes");
  }
});

Deno.test("runTask() refuses an input over maxInputBytes before it makes anything", async () => {
  const workDir = `${await Deno.makeTempDir()}/never-made`;
  const settings = testEngineSettings({ workDir, maxInputBytes: 4 });
  let started = false;
  const error = await runTask(
    { id: crypto.randomUUID(), script: "/no/such/script.sh", input: bytes("12345"), timeoutMs: 1 },
    settings,
    { onStart: () => started = true },
  ).then(() => undefined, (error: unknown) => error);
  assert(error instanceof TaskInputTooLargeError, `refused for its size first: ${error}`);
  assert(!started, "nothing was started");
  const made = await Deno.stat(workDir).then(() => true, () => false);
  assert(!made, "no work directory was made");
  await Deno.remove(workDir.replace(/\/never-made$/, ""), { recursive: true });
});
