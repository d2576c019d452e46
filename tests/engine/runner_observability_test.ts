/**
 * What the Runner reports to its metrics and task table, on fakes of the broker
 * (tests/helpers/runner_fakes.ts) and real task processes: the requeues and lost runs that a
 * live broker reaches only through faults.
 *
 * @module
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { behaveJson, eventually, testEngineSettings } from "../helpers/engine.ts";
import { parsePrometheus, type Sample, sampleValue } from "../helpers/ops_harness.ts";
import {
  FakeCancellations,
  FakeDelivery,
  FakeSink,
  requestFields,
} from "../helpers/runner_fakes.ts";
import { Logger } from "../../src/observability/log.ts";
import { RunnerMetrics } from "../../src/observability/metrics.ts";
import { Runner } from "../../src/runner/runner.ts";

const BEHAVE = new URL("../fixtures/behave.py", import.meta.url).pathname;
const ECHO = new URL("../fixtures/echo.sh", import.meta.url).pathname;

function observedRunner(options: { maxLostRuns?: number } = {}) {
  const metrics = new RunnerMetrics();
  const sink = new FakeSink();
  const cancellations = new FakeCancellations();
  const runner = new Runner({
    publisher: sink,
    cancellations,
    engine: testEngineSettings({ killGraceMs: 500 }),
    logger: new Logger({ sink: () => {} }),
    observer: metrics,
    maxLostRuns: options.maxLostRuns ?? 0,
  });
  metrics.bind({ running: () => runner.tasks.runningCount });
  return {
    runner,
    sink,
    cancellations,
    samples: async (): Promise<Sample[]> => parsePrometheus(await metrics.text()),
    async [Symbol.asyncDispose]() {
      await runner.drain(0);
    },
  };
}

async function waitingInput(): Promise<{ input: string; release(): Promise<void> }> {
  const file = `${await Deno.makeTempDir()}/go`;
  return {
    input: behaveJson({ wait_file: file, progress: 2, output: "done" }),
    release: () => Deno.writeTextFile(file, ""),
  };
}

// A delivery whose publisher stamped it (AMQP timestamp) two seconds ago.
class StampedDelivery extends FakeDelivery {
  readonly publishedAt = Date.now() - 2_000;
}

Deno.test("Runner shows a running task in its table and counts it as one running process", async () => {
  await using fake = observedRunner();
  const waiting = await waitingInput();
  const request = requestFields(BEHAVE, waiting.input);
  const delivery = new StampedDelivery(request);
  fake.runner.handle(delivery);
  assertEquals(fake.runner.tasks.get(request.id)?.state, "starting");
  await fake.sink.when(request.id, "RUNNING");
  assert(
    await eventually(() => fake.runner.tasks.get(request.id)?.progressMessages === 2),
    "both progress messages shown",
  );
  const row = fake.runner.tasks.get(request.id)!;
  assertEquals(row.state, "running");
  assert(row.pid !== null && row.pid > 0, "the pid is shown");
  assertEquals(row.progressMessages, 2);
  let samples = await fake.samples();
  assertEquals(sampleValue(samples, "taskrunner_tasks_running"), 1);
  assertEquals(
    sampleValue(samples, "taskrunner_queue_wait_seconds_count", { since: "published" }),
    1,
  );
  assert(
    sampleValue(samples, "taskrunner_queue_wait_seconds_sum", { since: "published" })! >= 2,
    "measured from the publication",
  );

  await waiting.release();
  assertEquals(await delivery.outcome(), { action: "ack" });
  assertEquals(fake.runner.tasks.list(), [], "gone once settled");
  samples = await fake.samples();
  assertEquals(sampleValue(samples, "taskrunner_tasks_running"), 0);
  assertEquals(
    sampleValue(samples, "taskrunner_tasks_finished_total", { status: "SUCCESS", script: BEHAVE }),
    1,
  );
});

Deno.test("Runner counts requeues by reason and a crash loop as a lost_runs failure", async (t) => {
  await t.step("a shutdown requeues a running request", async () => {
    await using fake = observedRunner();
    const request = requestFields(BEHAVE, (await waitingInput()).input);
    fake.runner.handle(new FakeDelivery(request));
    await fake.sink.when(request.id, "RUNNING");
    await fake.runner.drain(0);
    const samples = await fake.samples();
    assertEquals(
      sampleValue(samples, "taskrunner_requests_requeued_total", { reason: "shutdown" }),
      1,
    );
    assertEquals(sampleValue(samples, "taskrunner_tasks_running"), 0);
  });
  await t.step("a redelivery after a lost runner is requeued as a counting copy", async () => {
    await using fake = observedRunner({ maxLostRuns: 3 });
    const delivery = new FakeDelivery(requestFields(ECHO, "hi"), {
      redelivered: true,
      lostRuns: 1,
    });
    fake.runner.handle(delivery);
    assertEquals(await delivery.outcome(), { action: "requeue", lostRuns: 2 });
    const samples = await fake.samples();
    assertEquals(
      sampleValue(samples, "taskrunner_requests_requeued_total", { reason: "lost_run" }),
      1,
    );
  });
  await t.step("at the limit it is answered FAILED and counted as lost_runs", async () => {
    await using fake = observedRunner({ maxLostRuns: 3 });
    const request = requestFields(ECHO, "hi");
    const delivery = new FakeDelivery(request, { redelivered: true, lostRuns: 2 });
    fake.runner.handle(delivery);
    assertEquals(await delivery.outcome(), { action: "ack" });
    const samples = await fake.samples();
    assertEquals(
      sampleValue(samples, "taskrunner_task_failures_total", { reason: "lost_runs", script: ECHO }),
      1,
    );
    assertEquals(
      sampleValue(samples, "taskrunner_tasks_started_total", { script: ECHO }),
      undefined,
    );
  });
});
