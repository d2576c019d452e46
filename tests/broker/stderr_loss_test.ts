/**
 * A runner whose stderr fails (its reader went away, a full disk) keeps running: the task that
 * runs meanwhile finishes and its response is sent.
 *
 * @module
 */
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { assertEquals } from "../helpers/assert.ts";
import { makeRequest, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags } from "../helpers/cli_run.ts";
import { behave, eventually, TEST_PYTHON } from "../helpers/engine.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

// `serve` through `sh`, so that its stderr can be any file: `2>&1` sends it to the pipe read here.
function serveCommand(args: string[], stderr: "pipe" | "/dev/full"): Deno.Command {
  const quoted = [Deno.execPath(), "run", ...RUN_PERMISSIONS, "main.ts", "serve", ...args]
    .map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
  return new Deno.Command("sh", {
    args: ["-c", `exec ${quoted} ${stderr === "pipe" ? "2>&1" : "2>/dev/full"}`],
    cwd: ROOT,
    env: { TERARIUM_TASKRUNNER_PYTHON: TEST_PYTHON, TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  });
}

async function waitForLine(reader: ReadableStreamDefaultReader<string>, part: string) {
  let seen = "";
  while (!seen.includes(part)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stderr ended before "${part}":\n${seen}`);
    seen += value;
  }
}

Deno.test("serve survives a stderr that fails while a task runs, and sends its response", async (t) => {
  for (const stderr of ["pipe", "/dev/full"] as const) {
    await t.step(stderr === "pipe" ? "a log reader that went away" : "a full disk", async () => {
      const names = uniqueNames("stderr");
      await using server = await ServerSide.open(names);
      const workDir = await Deno.makeTempDir({ prefix: "taskrunner-stderr-" });
      const release = `${workDir}.release`;
      const child = serveCommand([...brokerFlags(names), "--work-dir", workDir], stderr).spawn();
      try {
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        if (stderr === "pipe") {
          await waitForLine(reader, "Consuming requests");
        } else {
          await eventually(async () => await server.consumers().catch(() => 0) === 1, 20_000);
        }
        const request = makeRequest({
          script: fixture("behave.py"),
          input: behave({ progress: 1, wait_file: release, stdout: ["after", "the", "reader"] }),
        }, names.routingKey);
        await server.publishRequest(request);
        await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
        // The reader goes away: every later write to stderr fails with EPIPE.
        await reader.cancel();
        await Deno.writeTextFile(release, "");
        const responses = await server.terminal(request.id);
        assertEquals(responses.at(-1)?.status, "SUCCESS");
        child.kill("SIGTERM");
        assertEquals((await child.status).code, 0, "it stopped as asked, not of a failed write");
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        await child.status;
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
        await Deno.remove(release).catch(() => {});
      }
    });
  }
});
