/**
 * What an operator sees of a serving runner: `GET /tasks`, `taskrunner ps` and `inspect`, the
 * metrics moving with real tasks, and the start-up line. A real runner on the real broker.
 *
 * @module
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { makeRequest, ServerSide } from "../helpers/broker_harness.ts";
import { runCli } from "../helpers/cli_run.ts";
import { behaveJson, eventually } from "../helpers/engine.ts";
import {
  freePort,
  get,
  parsePrometheus,
  type Sample,
  sampleValue,
  uniqueNames,
} from "../helpers/ops_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";
import { AMQP_URL } from "../helpers/broker_harness.ts";
import type { TaskSnapshot } from "../../src/observability/task_table.ts";
import { VERSION } from "../../src/version.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

async function metrics(base: string): Promise<Sample[]> {
  return parsePrometheus((await get(`${base}/metrics`)).body);
}

/** Waits until the metric reaches `value`; fails with what it last was. */
async function until(base: string, name: string, labels: Record<string, string>, value: number) {
  let last: number | undefined;
  const reached = await eventually(async () => {
    last = sampleValue(await metrics(base), name, labels);
    return last === value;
  }, 15_000);
  assert(reached, `${name}${JSON.stringify(labels)} is ${last}, expected ${value}`);
}

Deno.test("GET /tasks, ps and inspect show the task a serving runner runs, until it is cancelled", async (t) => {
  const names = uniqueNames("ps");
  await using server = await ServerSide.open(names);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  await using runner = startRunner(names, {
    httpPort: String(port),
    httpHost: "127.0.0.1",
    concurrency: "4",
  });
  await runner.ready;
  const cliEnv = {
    NO_COLOR: "1",
    TERARIUM_TASKRUNNER_HTTP_PORT: String(port),
    TERARIUM_TASKRUNNER_HTTP_HOST: "127.0.0.1",
  };
  const script = fixture("behave.py");
  const go = `${await Deno.makeTempDir()}/go`;
  const request = makeRequest(
    { script, input: behaveJson({ progress: 2, wait_file: go }) },
    names.routingKey,
  );
  await server.publishRequest(request);

  let row: TaskSnapshot | undefined;
  await t.step("/tasks lists it running, with its pid and progress", async () => {
    assert(
      await eventually(async () => {
        const { tasks } = JSON.parse((await get(`${base}/tasks`)).body) as {
          tasks: TaskSnapshot[];
        };
        row = tasks.find((task) => task.id === request.id);
        return row?.progressMessages === 2;
      }, 15_000),
      "listed with both progress messages",
    );
    assertEquals(row!.state, "running");
    assertEquals(row!.script, script);
    assert(row!.pid !== null && row!.pid > 0);
    assertEquals(row!.cancelRequested, false);
    assertEquals(row!.deliveries, 1);
    assert(row!.lastProgressBytes! > 0);
    const one = await get(`${base}/tasks/${request.id}`);
    assertEquals(one.status, 200);
    assertMatch(one.type, /^application\/json/);
    assertEquals((JSON.parse(one.body) as TaskSnapshot).pid, row!.pid);
    const missing = await get(`${base}/tasks/${crypto.randomUUID()}`);
    assertEquals(missing.status, 404);
    assertMatch(JSON.parse(missing.body).error, /No task/);
  });

  await t.step("the metrics count one running process and its queue wait", async () => {
    const samples = await metrics(base);
    assertEquals(sampleValue(samples, "taskrunner_tasks_running"), 1);
    assertEquals(sampleValue(samples, "taskrunner_concurrency_limit"), 4);
    assertEquals(
      sampleValue(samples, "taskrunner_queue_wait_seconds_count", { since: "delivered" }),
      1,
      "the hmi-server stamps no publication time: measured from the delivery",
    );
    assertEquals(sampleValue(samples, "taskrunner_tasks_started_total", { script }), 1);
  });

  await t.step("ps and inspect read it from the endpoint", async () => {
    const [table, json, inspect, unknown, off] = await Promise.all([
      runCli(["ps"], { env: cliEnv }),
      runCli(["ps", "--json"], { env: cliEnv }),
      runCli(["inspect", request.id], { env: cliEnv }),
      runCli(["inspect", "no-such-task"], { env: cliEnv }),
      runCli(["ps"], { env: { NO_COLOR: "1" } }),
    ]);
    assertEquals(table.code, 0, table.stderr);
    const lines = table.text.trimEnd().split("\n");
    assertMatch(lines[0]!, /^ID\s+SCRIPT\s+STATE\s+PID\s+ELAPSED\s+LAST PROGRESS/);
    assertMatch(
      lines[1]!,
      new RegExp(`^${request.id}\\s+\\S+behave\\.py\\s+running\\s+${row!.pid}\\s`),
    );
    assertEquals(json.code, 0, json.stderr);
    assertEquals(JSON.parse(json.text).tasks[0].id, request.id);
    assertEquals(inspect.code, 0, inspect.stderr);
    assertEquals(JSON.parse(inspect.text).pid, row!.pid);
    assertEquals(unknown.code, 1);
    assertMatch(unknown.stderr, /No task "no-such-task" on the runner/);
    assertEquals(off.code, 2, "the endpoint is off: a setting is missing");
    assertMatch(off.stderr, /HTTP endpoint is off or unknown/);
  });

  await t.step("a cancellation shows, is counted, and the row goes once answered", async () => {
    await server.cancel(request.id);
    await server.terminal(request.id);
    assertEquals(server.statuses(request.id).at(-1), "CANCELLED");
    await until(base, "taskrunner_task_failures_total", { reason: "cancelled", script }, 1);
    const samples = await metrics(base);
    assertEquals(sampleValue(samples, "taskrunner_cancellations_total"), 1);
    assertEquals(sampleValue(samples, "taskrunner_tasks_running"), 0);
    assertEquals(
      sampleValue(samples, "taskrunner_tasks_finished_total", { status: "CANCELLED", script }),
      1,
    );
    assertEquals(JSON.parse((await get(`${base}/tasks`)).body), { tasks: [] });
    const empty = await runCli(["ps"], { env: cliEnv });
    assertEquals([empty.code, empty.text.trim()], [0, "No tasks running"]);
  });
});

Deno.test("/metrics counts failures by reason and a bounded script label", async (t) => {
  const names = uniqueNames("fail");
  await using server = await ServerSide.open(names);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const dir = await Deno.makeTempDir();
  const killer = `${dir}/killer.sh`;
  await Deno.writeTextFile(killer, "#!/bin/sh\nkill -KILL $$\n");
  await Deno.chmod(killer, 0o755);
  await using runner = startRunner(names, {
    httpPort: String(port),
    httpHost: "127.0.0.1",
    allowScript: [`${FIXTURES}**`, `${dir}/**`],
    maxTaskDuration: "0.05", // 3 s: long enough for a loaded machine to start Python
  });
  await runner.ready;
  const behave = fixture("behave.py");
  const cases: { reason: string; script: string; label?: string; input?: string }[] = [
    { reason: "exit", script: behave, input: behaveJson({ exit: 3 }) },
    { reason: "no_output", script: behave, input: behaveJson({ skip_output: true }) },
    { reason: "timeout", script: behave, input: behaveJson({ sleep: 10 }) },
    { reason: "signal", script: killer },
    { reason: "not_found", script: `${FIXTURES}missing.sh` },
    { reason: "not_allowed", script: "/bin/true", label: "other" },
  ];
  const requests = cases.map((c) =>
    makeRequest({ script: c.script, input: c.input ?? "x" }, names.routingKey)
  );
  await Promise.all(requests.map((request) => server.publishRequest(request)));
  // Invalid, with an id and a routing key: answered FAILED, never run.
  const invalid = makeRequest({ script: behave, timeoutMinutes: "soon" }, names.routingKey);
  await server.publishRequest(invalid);
  await Promise.all([...requests, invalid].map((request) => server.terminal(request.id)));

  for (const [i, c] of cases.entries()) {
    await t.step(`${c.reason} is counted`, async () => {
      assertEquals(server.statuses(requests[i]!.id).at(-1), "FAILED");
      await until(base, "taskrunner_task_failures_total", {
        reason: c.reason,
        script: c.label ?? c.script,
      }, 1);
    });
  }
  await t.step("invalid is counted", async () => {
    const samples = await metrics(base);
    const counted = samples.filter((s) =>
      s.name === "taskrunner_task_failures_total" && s.labels.reason === "invalid"
    ).reduce((sum, s) => sum + s.value, 0);
    assertEquals(counted, 1);
  });
  await t.step("a script outside the allow-list never gets a label of its own", async () => {
    const samples = await metrics(base);
    assert(!samples.some((s) => s.labels.script === "/bin/true"), "folded into other");
    assertEquals(
      sampleValue(samples, "taskrunner_tasks_finished_total", {
        status: "FAILED",
        script: "other",
      }),
      1,
    );
    assertEquals(
      sampleValue(samples, "taskrunner_task_duration_seconds_count", {
        status: "FAILED",
        script: behave,
      }),
      3,
      "the three behave.py runs",
    );
  });
  await t.step("every operator metric is exposed", async () => {
    const text = (await get(`${base}/metrics`)).body;
    for (
      const name of [
        "taskrunner_task_failures_total",
        "taskrunner_tasks_started_total",
        "taskrunner_tasks_finished_total",
        "taskrunner_task_duration_seconds",
        "taskrunner_concurrency_limit",
        "taskrunner_queue_wait_seconds",
        "taskrunner_requests_requeued_total",
        "taskrunner_cancellations_total",
        "taskrunner_tasks_running",
        "nodejs_heap_size_used_bytes",
        "nodejs_heap_size_total_bytes",
        "nodejs_external_memory_bytes",
      ]
    ) {
      assertMatch(text, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    assertNotIncludes(text, "process_heap_bytes");
    const samples = parsePrometheus(text);
    for (const name of ["nodejs_heap_size_used_bytes", "nodejs_external_memory_bytes"]) {
      assert(sampleValue(samples, name)! > 0, name);
    }
    for (const reason of ["shutdown", "lost_run", "runner_error"]) {
      assertEquals(sampleValue(samples, "taskrunner_requests_requeued_total", { reason }), 0);
    }
  });
});

Deno.test("serve logs one start-up line with its version and settings, secrets redacted", async () => {
  const names = uniqueNames("start");
  await using _server = await ServerSide.open(names); // removes the queue the runner declares
  const dir = await Deno.makeTempDir();
  const passwordFile = `${dir}/password`;
  await Deno.writeTextFile(passwordFile, "FileS3cret\n");
  const broker = new URL(AMQP_URL);
  // Credentials in the URL win over the others: the runner still connects, with the URL's.
  await using runner = startRunner(names, {
    amqpUrl:
      `amqp://${broker.username}:${broker.password}@${broker.host},amqp://eve:UrlS3cret@127.0.0.1:1`,
    mqPassword: undefined,
    mqUsername: "someone",
    mqPasswordFile: passwordFile,
    concurrency: "3",
    logLevel: "info",
  });
  await runner.ready;
  const start = runner.logs.find((line) => line.includes("Starting taskrunner"));
  assert(start, "a start-up line");
  assertEquals(runner.logs.filter((line) => line.includes("Starting taskrunner")).length, 1);
  assertMatch(start, new RegExp(`version=${VERSION.replaceAll(".", "\\.")}`));
  assertMatch(start, / concurrency=3 /);
  assertMatch(start, new RegExp(`mq-password-file=${passwordFile}`));
  for (const secret of ["UrlS3cret", "FileS3cret", broker.password]) {
    assertNotIncludes(start, secret);
  }
  for (const line of runner.logs) assertNotIncludes(line, "S3cret");
});
