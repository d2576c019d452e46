/**
 * The Runner on fakes of the broker (tests/helpers/runner_fakes.ts) and real task processes:
 * what otherwise only a live broker and faults injected into it can reach.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { behaveJson, testEngineSettings } from "../helpers/engine.ts";
import {
  Events,
  FakeCancellations,
  FakeDelivery,
  FakeSink,
  requestFields,
} from "../helpers/runner_fakes.ts";
import {
  PublisherClosedError,
  ResponseTooLargeError,
  UnroutableResponseError,
} from "../../src/broker/publisher.ts";
import { Logger } from "../../src/observability/log.ts";
import { Runner, type RunnerObserver } from "../../src/runner/runner.ts";
import type { TaskEngineSettings } from "../../src/task/mod.ts";

const BEHAVE = new URL("../fixtures/behave.py", import.meta.url).pathname;
const ECHO = new URL("../fixtures/echo.sh", import.meta.url).pathname;
const TASK_ARGS = new URL("../fixtures/_task_args.sh", import.meta.url).pathname;

/** A runner on fakes, with what it logged and reported; disposing it drains it. */
function fakeRunner(
  options: {
    hold?: readonly string[];
    maxLostRuns?: number;
    engine?: Partial<TaskEngineSettings>;
  } = {},
) {
  const sink = new FakeSink(options.hold ? { hold: options.hold } : {});
  const cancellations = new FakeCancellations();
  const logged = new Events<string>();
  const reported: string[] = [];
  const observer: RunnerObserver = {
    taskStarted: () => reported.push("started"),
    taskFinished: (status) => reported.push(`finished ${status}`),
    requestRejected: (reason) => reported.push(`rejected ${reason}`),
  };
  const runner = new Runner({
    publisher: sink,
    cancellations,
    engine: testEngineSettings({ killGraceMs: 500, ...options.engine }),
    logger: new Logger({ sink: (line) => logged.push(line) }),
    observer,
    maxLostRuns: options.maxLostRuns ?? 0,
  });
  return {
    runner,
    sink,
    cancellations,
    logged,
    reported,
    async [Symbol.asyncDispose]() {
      await runner.drain(0);
    },
  };
}

/** A task that waits until the returned file exists; `release()` makes it. */
async function waitingTask(): Promise<{ input: string; release(): Promise<void> }> {
  const file = `${await Deno.makeTempDir()}/go`;
  return {
    input: behaveJson({ wait_file: file, output: "done" }),
    release: () => Deno.writeTextFile(file, ""),
  };
}

// Until the runner's own work on a request is over: nothing is left running.
async function idle(runner: Runner): Promise<void> {
  await runner.drain(60_000);
}

Deno.test("Runner acknowledges a request only once its terminal response is confirmed", async () => {
  await using fake = fakeRunner({ hold: ["SUCCESS"] });
  const request = requestFields(ECHO, "hi");
  const delivery = new FakeDelivery(request);
  fake.runner.handle(delivery);
  const success = await fake.sink.when(request.id, "SUCCESS");
  assertEquals(atob(success.response.output!), "hi");
  // Held as the publisher holds a response no queue has taken yet: the request waits.
  await Promise.resolve();
  assertEquals(delivery.settled.all, [], "not settled while its response is unconfirmed");
  assertEquals(fake.runner.activeCount, 1);
  success.confirm();
  assertEquals(await delivery.outcome(), { action: "ack" });
  assertEquals(fake.sink.statuses(request.id), ["RUNNING", "SUCCESS"]);
  assertEquals(fake.reported, ["started", "finished SUCCESS"]);
});

Deno.test("Runner acknowledges a request whose terminal response is held or cannot be published, and leaves one not confirmed", async (t) => {
  await t.step("held by the publisher: acknowledged at once, and counted as finished", async () => {
    await using fake = fakeRunner({ hold: ["SUCCESS"] });
    const request = requestFields(ECHO, "hi");
    const delivery = new FakeDelivery(request);
    fake.runner.handle(delivery);
    (await fake.sink.when(request.id, "SUCCESS")).confirm("held");
    assertEquals(await delivery.outcome(), { action: "ack" });
    assertEquals(fake.reported, ["started", "finished SUCCESS"]);
  });
  await t.step(
    "not publishable at all: acknowledged, running it again would end the same",
    async () => {
      await using fake = fakeRunner({ hold: ["SUCCESS"] });
      const request = requestFields(ECHO, "hi");
      const delivery = new FakeDelivery(request);
      fake.runner.handle(delivery);
      (await fake.sink.when(request.id, "SUCCESS")).fail(new UnroutableResponseError("gone"));
      assertEquals(await delivery.outcome(), { action: "ack" });
      assertEquals(fake.reported, ["started"], "not counted as finished");
    },
  );
  await t.step("too large for the broker: FAILED saying so, then acknowledged", async () => {
    await using fake = fakeRunner({ hold: ["SUCCESS"] });
    const request = requestFields(ECHO, "hi");
    const delivery = new FakeDelivery(request);
    fake.runner.handle(delivery);
    (await fake.sink.when(request.id, "SUCCESS")).fail(
      new ResponseTooLargeError(17_000_000, 16_777_216),
    );
    const failed = await fake.sink.when(request.id, "FAILED");
    const output = atob(failed.response.output ?? "");
    assert(output.includes("larger than the broker's limit"), output);
    assert(output.includes("16777216"), output);
    assertEquals(await delivery.outcome(), { action: "ack" });
    assertEquals(fake.sink.statuses(request.id), ["RUNNING", "SUCCESS", "FAILED"]);
  });
  await t.step(
    "the publisher closed (shutdown): left unsettled for the broker to redeliver",
    async () => {
      await using fake = fakeRunner({ hold: ["SUCCESS"] });
      const request = requestFields(ECHO, "hi");
      const delivery = new FakeDelivery(request);
      fake.runner.handle(delivery);
      (await fake.sink.when(request.id, "SUCCESS")).fail(new PublisherClosedError());
      await idle(fake.runner);
      assertEquals(delivery.settled.all, []);
      assertEquals(fake.runner.activeCount, 0);
    },
  );
});

Deno.test("Runner attaches a redelivery to the running task and acknowledges both once", async () => {
  await using fake = fakeRunner();
  const task = await waitingTask();
  const request = requestFields(BEHAVE, task.input);
  const first = new FakeDelivery(request);
  fake.runner.handle(first);
  await fake.sink.when(request.id, "RUNNING");
  const again = new FakeDelivery(request, { redelivered: true });
  fake.runner.handle(again);
  await task.release();
  assertEquals(await first.outcome(), { action: "ack" });
  assertEquals(await again.outcome(), { action: "ack" });
  assertEquals(fake.sink.statuses(request.id), ["RUNNING", "SUCCESS"]);
  assertEquals(fake.cancellations.watched, [request.id], "one run");
  assertEquals(fake.reported, ["started", "finished SUCCESS"]);
});

Deno.test("Runner only acknowledges a late redelivery of a request it has finished", async () => {
  await using fake = fakeRunner({ maxLostRuns: 3 });
  const request = requestFields(ECHO, "hi");
  const delivery = new FakeDelivery(request);
  fake.runner.handle(delivery);
  await delivery.outcome();
  await idle(fake.runner);
  const late = new FakeDelivery(request, { redelivered: true });
  fake.runner.handle(late);
  assertEquals(await late.outcome(), { action: "ack" });
  assertEquals(late.requeueTries, [], "not taken for a lost run");
  assertEquals(fake.sink.statuses(request.id), ["RUNNING", "SUCCESS"]);
  assertEquals(fake.cancellations.watched, [request.id], "not run again");
});

Deno.test("Runner requeues a running request on shutdown as a copy with its count unchanged", async (t) => {
  await t.step("the copy replaces the delivery; no terminal response", async () => {
    await using fake = fakeRunner({ maxLostRuns: 5 });
    const request = requestFields(BEHAVE, (await waitingTask()).input);
    const delivery = new FakeDelivery(request, { lostRuns: 2 });
    fake.runner.handle(delivery);
    await fake.sink.when(request.id, "RUNNING");
    await fake.runner.drain(0);
    assertEquals(delivery.settled.all, [{ action: "requeue", lostRuns: 2 }]);
    assertEquals(fake.sink.statuses(request.id), ["RUNNING"]);
    assertEquals(fake.reported, ["started"]);
  });
  await t.step("no copy could be made: the delivery itself goes back", async () => {
    await using fake = fakeRunner();
    const request = requestFields(BEHAVE, (await waitingTask()).input);
    const delivery = new FakeDelivery(request, { copyWorks: false });
    fake.runner.handle(delivery);
    await fake.sink.when(request.id, "RUNNING");
    await fake.runner.drain(0);
    assertEquals(delivery.requeueTries, [0]);
    assertEquals(delivery.settled.all, [{ action: "reject", requeue: true }]);
    assertEquals(fake.sink.statuses(request.id), ["RUNNING"]);
  });
});

Deno.test("Runner counts runs lost with their runner and refuses a crash loop at the limit", async (t) => {
  await t.step(
    "under the limit: requeued as a copy that counts the lost run, not run",
    async () => {
      await using fake = fakeRunner({ maxLostRuns: 3 });
      const request = requestFields(ECHO, "hi");
      const delivery = new FakeDelivery(request, { redelivered: true, lostRuns: 1 });
      fake.runner.handle(delivery);
      assertEquals(await delivery.outcome(), { action: "requeue", lostRuns: 2 });
      await idle(fake.runner);
      assertEquals(fake.sink.statuses(request.id), []);
      assertEquals(fake.cancellations.watched, []);
    },
  );
  await t.step("at the limit: FAILED only, acknowledged, never started", async () => {
    await using fake = fakeRunner({ maxLostRuns: 3 });
    const request = requestFields(ECHO, "hi");
    const delivery = new FakeDelivery(request, { redelivered: true, lostRuns: 2 });
    fake.runner.handle(delivery);
    assertEquals(await delivery.outcome(), { action: "ack" });
    assertEquals(fake.sink.statuses(request.id), ["FAILED"]);
    const failed = fake.sink.sent.all[0]!.response;
    assertEquals(
      atob(failed.output!),
      "Runner lost 3 times while running this task; not run again (limit 3)",
    );
    assertEquals(fake.cancellations.watched, []);
    assertEquals(fake.reported, ["finished FAILED"]);
  });
});

Deno.test("Runner answers a request cancelled before it started with CANCELLED only", async () => {
  await using fake = fakeRunner();
  const request = requestFields(ECHO, "hi");
  fake.cancellations.cancelFirst(request.id);
  const delivery = new FakeDelivery(request);
  fake.runner.handle(delivery);
  assertEquals(await delivery.outcome(), { action: "ack" });
  assertEquals(fake.sink.statuses(request.id), ["CANCELLED"]);
  assertEquals(fake.reported, ["finished CANCELLED"], "never started");
  await fake.cancellations.unwatched.when((id) => id === request.id);
});

Deno.test("Runner sends CANCELLING with stdout and stderr as of the cancel, then CANCELLED", async () => {
  await using fake = fakeRunner();
  const dir = await Deno.makeTempDir();
  const script = `${dir}/task.sh`;
  await Deno.writeTextFile(
    script,
    `#!/bin/sh\n. "${TASK_ARGS}"\ncat "$input" >/dev/null\nprintf '{"step":1}' > "$progress"\n` +
      `while [ ! -e "${dir}/go" ]; do sleep 0.02; done\necho after-progress\nexec sleep 30\n`,
  );
  await Deno.chmod(script, 0o755);
  const request = requestFields(script, "");
  const delivery = new FakeDelivery(request);
  fake.runner.handle(delivery);
  const progress = await fake.sink.when(request.id, "RUNNING", 2);
  await Deno.writeTextFile(`${dir}/go`, "");
  // The runner logs each line a task prints as it reads it: the event for "the task printed".
  await fake.logged.when((line) => line.includes("after-progress"));
  fake.cancellations.cancel(request.id);
  const cancelling = await fake.sink.when(request.id, "CANCELLING");
  assertMatch(cancelling.response.stdout!, /after-progress/, "as of the cancel");
  assert(!progress.response.stdout!.includes("after-progress"), "printed after the progress");
  assertEquals(await delivery.outcome(), { action: "ack" });
  assertEquals(fake.sink.statuses(request.id), ["RUNNING", "RUNNING", "CANCELLING", "CANCELLED"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Runner passes a large input through byte for byte, and a drain waits for its arrival", async (t) => {
  // Large enough for the runner to release memory before parsing it and around its task.
  const input = new Uint8Array(12 * 1024 * 1024).map((_, i) => (i * 131 + (i >> 12)) % 256);
  await t.step("echoed: the output is the input", async () => {
    await using fake = fakeRunner();
    const request = requestFields(ECHO, "", { input: input.toBase64() });
    const delivery = new FakeDelivery(request);
    fake.runner.handle(delivery);
    assertEquals(await delivery.outcome(), { action: "ack" });
    const output = Uint8Array.fromBase64(
      (await fake.sink.when(request.id, "SUCCESS")).response.output!,
    );
    assertEquals(output.length, input.length);
    assert(output.every((byte, i) => byte === input[i]), "output intact");
  });
  await t.step("a drain as it arrives settles it before returning", async () => {
    await using fake = fakeRunner();
    const request = requestFields(BEHAVE, "", { input: input.toBase64() });
    const delivery = new FakeDelivery(request);
    fake.runner.handle(delivery);
    await fake.runner.drain(0);
    assertEquals(delivery.settled.all.length, 1, "settled: not started after the drain");
    assertEquals(fake.runner.activeCount, 0);
  });
});

Deno.test("Runner answers an input over the engine's limit with FAILED, counted as too large", async () => {
  await using fake = fakeRunner({ engine: { maxInputBytes: 4 } });
  const request = requestFields(ECHO, "12345");
  const delivery = new FakeDelivery(request);
  fake.runner.handle(delivery);
  assertEquals(await delivery.outcome(), { action: "ack" });
  assertEquals(fake.sink.statuses(request.id), ["FAILED"]);
  assertEquals(
    atob(fake.sink.sent.all[0]!.response.output!),
    "Task input of 5 bytes exceeds the limit of 4 bytes",
  );
  assertEquals(fake.reported, ["rejected too_large", "finished FAILED"]);
});
