import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { eventually } from "../helpers/engine.ts";
import { brokerCtl, uniqueNames } from "../helpers/ops_harness.ts";

// A task that does what "$STATE_DIR/mode" says, and counts its runs in "$STATE_DIR/runs":
// kill: SIGKILLs the runner that started it (its parent: setsid and setpriv exec in place);
// kill-once: kills its runner the first time, then echoes; sleep-once: sleeps the first time.
const TASK = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --input_pipe) i=$2 ;; --output_pipe) o=$2 ;; --progress_pipe) p=$2 ;; esac
  shift 2
done
echo run >> "$STATE_DIR/runs"
mode=$(cat "$STATE_DIR/mode")
if [ ! -e "$STATE_DIR/once" ]; then
  case "$mode" in
    kill-once) touch "$STATE_DIR/once"; kill -9 $PPID; sleep 30 ;;
    sleep-once) touch "$STATE_DIR/once"; sleep 60 ;;
  esac
fi
[ "$mode" = kill ] && { kill -9 $PPID; sleep 30; }
printf '{"done":true}' > "$p"
cat "$i" > "$o"
`;

interface Setup extends AsyncDisposable {
  task: string;
  workDir: string;
  env: Record<string, string>;
  runs(): Promise<number>;
}

async function setup(mode: "kill" | "kill-once" | "sleep-once"): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "crash_loop_" });
  await Deno.mkdir(`${dir}/state`);
  await Deno.mkdir(`${dir}/work`);
  await Deno.writeTextFile(`${dir}/state/mode`, mode);
  await Deno.writeTextFile(`${dir}/task.sh`, TASK, { mode: 0o755 });
  return {
    task: `${dir}/task.sh`,
    workDir: `${dir}/work`,
    env: { STATE_DIR: `${dir}/state` },
    runs: async () =>
      (await Deno.readTextFile(`${dir}/state/runs`).catch(() => "")).split("\n").filter(Boolean)
        .length,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function startRunner(
  names: ReturnType<typeof uniqueNames>,
  s: Setup,
  extra: string[] = [],
  env: Record<string, string> = {},
) {
  return new CliChild(
    ["serve", ...brokerFlags(names), "--work-dir", s.workDir, "--kill-grace", "1", ...extra],
    { env: { ...s.env, ...env } },
  );
}

Deno.test("a request whose task kills runner after runner gets FAILED after the third", async () => {
  const names = uniqueNames("crashloop");
  await using server = await ServerSide.open(names);
  await using s = await setup("kill");
  const request = makeRequest({ script: s.task, input: "x" }, names.routingKey);
  for (let lost = 0; lost < 3; lost++) {
    const runner = startRunner(names, s); // the default --max-lost-runs, 3
    await runner.ready();
    if (lost === 0) server.publishRequest(request);
    const { code } = await runner.finished();
    assertEquals(code, 137, `runner ${lost + 1} was killed by its task`);
    assertEquals(await s.runs(), lost + 1);
  }
  await using last = startRunner(names, s);
  await last.ready();
  const responses = await server.terminal(request.id, 30_000);
  assertEquals(responses.at(-1)?.status, "FAILED");
  assertMatch(outputText(responses.at(-1)), /^Runner lost 3 times while running this task/);
  assertEquals(responses.filter((r) => r.status === "FAILED").length, 1);
  assertEquals(await s.runs(), 3, "not run a fourth time");
  assert(await eventually(async () => await server.queueDepth() === 0), "acknowledged");
  await last.waitForLines((line) => line.includes("its task keeps killing the runner"));
});

Deno.test("a request whose task killed its runner once runs again and succeeds", async () => {
  const names = uniqueNames("crashonce");
  await using server = await ServerSide.open(names);
  await using s = await setup("kill-once");
  const request = makeRequest({ script: s.task, input: "again" }, names.routingKey);
  const first = startRunner(names, s);
  await first.ready();
  server.publishRequest(request);
  assertEquals((await first.finished()).code, 137);
  await using second = startRunner(names, s);
  await second.ready();
  const responses = await server.terminal(request.id, 30_000);
  assertEquals(responses.at(-1)?.status, "SUCCESS");
  assertEquals(outputText(responses.at(-1)), "again");
  assertEquals(await s.runs(), 2);
  assert(
    second.stderrLines.some((line) => line.includes("requeued") && line.includes("lostRuns=1")),
    second.stderrLines.join("\n"),
  );
  assert(await eventually(async () => await server.queueDepth() === 0), "acknowledged");
});

Deno.test("a request requeued by a shutdown is not counted as a lost run", async () => {
  const names = uniqueNames("drainloss");
  await using server = await ServerSide.open(names);
  await using s = await setup("sleep-once");
  const request = makeRequest({ script: s.task, input: "later" }, names.routingKey);
  // With a limit of 1, a requeue counted as a lost run would get FAILED at once.
  const first = startRunner(names, s, ["--drain", "0", "--max-lost-runs", "1"]);
  await first.ready();
  server.publishRequest(request);
  await server.status(request.id, "RUNNING");
  assert(await eventually(async () => await s.runs() === 1), "the task started");
  // Stopped before it has marked its first run, the task would sleep on the second run too.
  const marked = () => Deno.stat(`${s.env.STATE_DIR}/once`).then(() => true, () => false);
  assert(await eventually(marked), "the task sleeps");
  first.signal("SIGTERM");
  assertEquals((await first.finished()).code, 0);
  assertEquals(server.statuses(request.id), ["RUNNING"], "no terminal response");
  await using second = startRunner(names, s, ["--max-lost-runs", "1"]);
  await second.ready();
  const responses = await server.terminal(request.id, 30_000);
  assertEquals(responses.at(-1)?.status, "SUCCESS", outputText(responses.at(-1)));
  assertEquals(outputText(responses.at(-1)), "later");
  assertEquals(await s.runs(), 2);
});

Deno.test("--max-lost-runs 0 turns the count off: a redelivery runs as it is", async () => {
  const names = uniqueNames("crashoff");
  await using server = await ServerSide.open(names);
  await using s = await setup("kill-once");
  const request = makeRequest({ script: s.task, input: "as is" }, names.routingKey);
  const first = startRunner(names, s, ["--max-lost-runs", "0"]);
  await first.ready();
  server.publishRequest(request);
  assertEquals((await first.finished()).code, 137);
  await using second = startRunner(names, s, ["--max-lost-runs", "0"]);
  await second.ready();
  const responses = await server.terminal(request.id, 30_000);
  assertEquals(responses.at(-1)?.status, "SUCCESS");
  assert(!second.stderrLines.some((line) => line.includes("requeued")), "no copy was made");
});

Deno.test("a lost run whose copy cannot be published runs as it comes, uncounted", async () => {
  const names = uniqueNames("crashnocopy");
  // A broker user that may publish anywhere but to the default exchange, where copies go.
  const user = `taskrunner-test-${crypto.randomUUID().slice(0, 8)}`;
  const password = crypto.randomUUID();
  await brokerCtl(["add_user", user, password]);
  try {
    await brokerCtl(["set_permissions", "-p", "/", user, ".*", "^(?!amq\\.default$).*", ".*"]);
    await using server = await ServerSide.open(names);
    await using s = await setup("kill-once");
    const request = makeRequest({ script: s.task, input: "uncounted" }, names.routingKey);
    const asUser = ["--mq-username", user, "--mq-password", password];
    const first = startRunner(names, s, asUser);
    await first.ready();
    server.publishRequest(request);
    assertEquals((await first.finished()).code, 137);
    await using second = startRunner(names, s, asUser);
    await second.ready();
    const responses = await server.terminal(request.id, 30_000);
    assertEquals(responses.at(-1)?.status, "SUCCESS", outputText(responses.at(-1)));
    assertEquals(await s.runs(), 2, "run once more, not held back");
    assert(
      second.stderrLines.some((line) => line.includes("so it runs uncounted")),
      second.stderrLines.join("\n"),
    );
  } finally {
    await brokerCtl(["delete_user", user]).catch(() => {});
  }
});
