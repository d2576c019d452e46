import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../helpers/assert.ts";
import { type HeldEntry, TaskTable, withHeldTasks } from "../../src/observability/task_table.ts";
import {
  MAX_SCRIPT_LABELS,
  OTHER_SCRIPT,
  ScriptLabels,
} from "../../src/observability/script_labels.ts";
import { effectiveSettings, REDACTED } from "../../src/commands/startup_line.ts";
import { formatSeconds, formatTaskTable } from "../../src/commands/ps.ts";
import { fetchTasks, runnerEndpoint } from "../../src/commands/runner_endpoint.ts";
import { freePort } from "../helpers/ops_harness.ts";
import { BROKER_SETTINGS, ConfigError, resolveSettings } from "../../src/config/settings.ts";

// A clock the test moves by hand.
function clock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let now = start;
  return { now: () => now, advance: (ms: number) => now += ms };
}

Deno.test("TaskTable follows a request from its delivery to its settlement", () => {
  const time = clock();
  const table = new TaskTable({ now: time.now });
  table.add("a", { script: "gollm:chat" });
  assertEquals(table.get("a")?.state, "starting");
  assertEquals(table.runningCount, 0, "no process yet");

  time.advance(500);
  table.started("a", 4242);
  time.advance(2_000);
  table.progress("a", 17);
  table.redelivered("a");
  const running = table.get("a")!;
  assertEquals(running.state, "running");
  assertEquals(running.pid, 4242);
  assertEquals(running.elapsed, 2, "seconds since the spawn");
  assertEquals(running.progressMessages, 1);
  assertEquals(running.lastProgressBytes, 17);
  assertEquals(running.lastProgress, "2026-01-01T00:00:02.500Z");
  assertEquals(running.deliveries, 2);
  assertEquals(table.runningCount, 1);

  table.cancelRequested("a");
  assertEquals(table.get("a")?.state, "cancelling");
  assertEquals(table.get("a")?.cancelRequested, true);
  table.exited("a");
  assertEquals(table.runningCount, 0, "an exited process is not running");
  table.remove("a");
  assertEquals(table.get("a"), undefined);
  assertEquals(table.list(), []);
});

Deno.test("withHeldTasks() lists a task whose terminal response the publisher holds", () => {
  const time = clock();
  const table = new TaskTable({ now: time.now });
  table.add("a", { script: "s" });
  table.started("a", 1);
  const start = time.now();
  let held: HeldEntry[] = [];
  const tasks = withHeldTasks(table, () => held, time.now);
  // A task still in the table shows as its row, whatever the publisher holds of it.
  held = [{
    taskId: "a",
    script: "s",
    status: "RUNNING",
    routingKey: "gone",
    reason: "unrouted",
    heldSince: start,
    giveUpAt: start + 300_000,
  }];
  assertEquals(tasks.list().map((row) => row.state), ["running"]);
  // Once its request is acknowledged, its held response is what is left of it.
  table.remove("a");
  time.advance(1_000);
  held.push({ ...held[0]!, status: "SUCCESS", heldSince: start + 500 });
  const row = tasks.get("a")!;
  assertEquals(row.state, "held");
  assertEquals(row.script, "s");
  assertEquals(row.elapsed, 0.5);
  assertEquals(row.held, {
    status: "SUCCESS",
    routingKey: "gone",
    reason: "unrouted",
    since: "2026-01-01T00:00:00.500Z",
    giveUpAt: "2026-01-01T00:05:00.000Z",
  });
  assertEquals(tasks.list().map((row) => [row.id, row.state]), [["a", "held"]]);
  // A response with no task id (a hostile request's) is no task.
  held = [{ ...held[0]!, taskId: undefined }];
  assertEquals(tasks.list(), []);
  assertEquals(tasks.get("a"), undefined);
});

Deno.test("TaskTable: a cancellation before the spawn makes the task cancelling once spawned", () => {
  const table = new TaskTable();
  table.add("a", { script: "s", lostRuns: 2 });
  table.cancelRequested("a");
  assertEquals(table.get("a")?.state, "starting");
  table.started("a", 7);
  assertEquals(table.get("a")?.state, "cancelling");
  assertEquals(table.get("a")?.lostRuns, 2);
});

Deno.test("ScriptLabels folds scripts outside the allow-list and over the cap into one value", () => {
  const labels = new ScriptLabels((script) => script.startsWith("ok-"), { max: 3 });
  assertEquals(labels.of("ok-a"), "ok-a");
  assertEquals(labels.of("evil"), OTHER_SCRIPT);
  assertEquals(labels.of(undefined), OTHER_SCRIPT);
  assertEquals(labels.of("ok-b"), "ok-b");
  assertEquals(labels.of("ok-c"), OTHER_SCRIPT, "the cap counts `other`");
  assertEquals(labels.of("ok-a"), "ok-a", "a value in use stays");
  assertEquals(MAX_SCRIPT_LABELS, 50);
});

Deno.test("effectiveSettings() shows every setting but secrets and credentials", () => {
  const broker = resolveSettings(BROKER_SETTINGS, {
    options: {
      amqpUrl: "amqp://alice:UrlS3cret@rabbit:5672/vh,amqps://bob:Other5ecret@backup",
      mqPassword: "FlagS3cret",
      mqPasswordFile: "/run/secrets/mq",
    },
    env: {},
  });
  const shown = effectiveSettings({ broker }, { broker: BROKER_SETTINGS });
  const text = JSON.stringify(shown);
  for (const secret of ["UrlS3cret", "Other5ecret", "FlagS3cret"]) {
    assert(!text.includes(secret), `${secret} is not shown: ${text}`);
  }
  assertEquals(shown["mq-password"], REDACTED);
  assertEquals(shown["mq-password-file"], "/run/secrets/mq", "the path, not the content");
  assertMatch(String(shown["amqp-url"]), /rabbit:5672\/vh/);
  assertEquals(shown["connect-timeout"], 20);
  assert(!("mq-ca-file" in shown), "unset settings are left out");
});

Deno.test("formatTaskTable() lines up one row per task", () => {
  assertEquals(formatTaskTable([], 0), "No tasks running");
  const table = new TaskTable({ now: () => 10_000 });
  table.add("0f0e", { script: "gollm:chat" });
  table.started("0f0e", 31337);
  table.progress("0f0e", 120);
  const lines = formatTaskTable(table.list(), 12_500).split("\n");
  assertEquals(lines.length, 2);
  assertMatch(
    lines[0]!,
    /^ID\s+SCRIPT\s+STATE\s+PID\s+ELAPSED\s+LAST PROGRESS\s+CANCEL\s+DELIVERIES$/,
  );
  assertMatch(
    lines[1]!,
    /^0f0e\s+gollm:chat\s+running\s+31337\s+0\.0s\s+2\.5s ago, 120 B\s+no\s+1$/,
  );
  assertEquals(formatSeconds(185), "3m05s");
  assertEquals(formatSeconds(7_260), "2h01m");
});

Deno.test("runnerEndpoint() takes --http-url, else the runner's port and host variables", () => {
  assertEquals(runnerEndpoint("http://runner:9000", {}).href, "http://runner:9000/");
  assertEquals(runnerEndpoint("http://proxy/r1", {}).href, "http://proxy/r1/");
  assertEquals(
    runnerEndpoint(undefined, { TERARIUM_TASKRUNNER_HTTP_PORT: "9100" }).href,
    "http://127.0.0.1:9100/",
    "a runner on every address is asked on loopback",
  );
  assertEquals(
    runnerEndpoint(undefined, {
      TERARIUM_TASKRUNNER_HTTP_PORT: "9100",
      TERARIUM_TASKRUNNER_HTTP_HOST: "10.0.0.7",
    }).href,
    "http://10.0.0.7:9100/",
  );
  assertMatch(assertThrows(() => runnerEndpoint(undefined, {}), ConfigError).message, /is off/);
  const off = assertThrows(
    () => runnerEndpoint(undefined, { TERARIUM_TASKRUNNER_HTTP_PORT: "0" }),
    ConfigError,
  );
  assertMatch(off.message, /is off/);
  assertMatch(
    assertThrows(() => runnerEndpoint("ftp://x", {}), ConfigError).message,
    /not an http\(s\) URL/,
  );
});

Deno.test("fetchTasks() says which endpoint it cannot reach", async () => {
  const endpoint = runnerEndpoint(`http://127.0.0.1:${freePort()}`, {});
  const error = await assertRejects(() => fetchTasks(endpoint), Error);
  assertMatch(
    error.message,
    /^Cannot reach the runner's HTTP endpoint at http:\/\/127\.0\.0\.1:\d+: /,
  );
});
