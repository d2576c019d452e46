import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide, testNames } from "../helpers/broker_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";
import { TaskPipes } from "../../src/task/fifo.ts";

// "nobody" on Debian; any id works, it need not exist in /etc/passwd.
const TASK_UID = 65534;
const TASK_GID = 65534;
const isRoot = Deno.uid() === 0;

Deno.test({
  name: "--uid/--gid: the task runs as that user, with no supplementary groups",
  ignore: !isRoot,
  fn: async () => {
    const names = testNames("uid");
    await using server = await ServerSide.open(names);
    const workDir = await Deno.makeTempDir({ prefix: "taskrunner-uid-" });
    // The task user must be able to reach its FIFO directory inside the work directory.
    await Deno.chmod(workDir, 0o755);
    try {
      await using runner = startRunner(names, {
        uid: String(TASK_UID),
        gid: String(TASK_GID),
        workDir,
      });
      await runner.ready;
      const request = makeRequest(
        { script: fixture("whoami.sh"), input: "some input" },
        names.routingKey,
      );
      server.publishRequest(request);
      const responses = await server.terminal(request.id);
      assertEquals(
        responses.map((r) => r.status),
        ["RUNNING", "SUCCESS"],
        outputText(responses.at(-1)),
      );
      assertEquals(outputText(responses.at(-1)), `${TASK_UID}:${TASK_GID}:${TASK_GID}`);
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "TaskPipes.create() gives the directory and FIFOs to the owner, private to them",
  ignore: !isRoot,
  fn: async () => {
    const workDir = await Deno.makeTempDir({ prefix: "taskrunner-uid-" });
    try {
      using pipes = TaskPipes.create(workDir, "id", {
        owner: { uid: TASK_UID, gid: TASK_GID },
      });
      for (const path of [pipes.dir, pipes.input, pipes.output, pipes.progress]) {
        const info = await Deno.stat(path);
        assertEquals([info.uid, info.gid], [TASK_UID, TASK_GID], path);
        assertEquals((info.mode ?? 0) & 0o077, 0, `${path} is private`);
      }
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});

async function serveCli(args: string[]): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "serve", ...args],
    cwd: new URL("../..", import.meta.url).pathname,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { TERARIUM_MQ_ADDRESSES: "amqp://127.0.0.1:1" },
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("--uid without --gid is a configuration error (exit 2)", async () => {
  const { code, stderr } = await serveCli(["--uid", String(TASK_UID)]);
  assertEquals(code, 2);
  assertMatch(stderr, /--uid and --gid: give both or neither/);
});

Deno.test("--uid that is not a number is a configuration error (exit 2)", async () => {
  const { code, stderr } = await serveCli(["--uid", "nobody", "--gid", "1"]);
  assertEquals(code, 2);
  assert(stderr.includes("--uid"), stderr);
});
