import { assertEquals } from "../helpers/assert.ts";
import { eitherAborted, whenAborted } from "../../src/util/abort.ts";
import { onStopSignals } from "../../src/util/stop_signals.ts";

// Settled or not once every pending callback has run.
async function stateOf(promise: Promise<unknown>): Promise<"settled" | "pending"> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return settled ? "settled" : "pending";
}

Deno.test("whenAborted() resolves with the reason once the signal aborts", async (t) => {
  await t.step("later", async () => {
    const controller = new AbortController();
    using wait = whenAborted(controller.signal);
    assertEquals(await stateOf(wait.promise), "pending");
    controller.abort("stop");
    assertEquals(await wait.promise, "stop");
  });
  await t.step("at once when it already has", async () => {
    using wait = whenAborted(AbortSignal.abort("gone"));
    assertEquals(await wait.promise, "gone");
  });
  await t.step("not once disposed: its listener is removed", async () => {
    const controller = new AbortController();
    const wait = whenAborted(controller.signal);
    wait[Symbol.dispose]();
    controller.abort("late");
    assertEquals(await stateOf(wait.promise), "pending");
  });
});

Deno.test("eitherAborted() aborts with the reason of the first signal to abort", async (t) => {
  await t.step("the first", () => {
    const [a, b] = [new AbortController(), new AbortController()];
    const either = eitherAborted(a.signal, b.signal);
    assertEquals(either.aborted, false);
    a.abort("cancelled");
    b.abort("shutdown");
    assertEquals(either.reason, "cancelled");
  });
  await t.step("the second", () => {
    const [a, b] = [new AbortController(), new AbortController()];
    const either = eitherAborted(a.signal, b.signal);
    b.abort("shutdown");
    assertEquals([either.aborted, either.reason], [true, "shutdown"]);
  });
  await t.step("at once when one has already", () => {
    const b = new AbortController();
    assertEquals(eitherAborted(b.signal, AbortSignal.abort("gone")).reason, "gone");
    assertEquals(eitherAborted(AbortSignal.abort("first"), AbortSignal.abort("x")).reason, "first");
  });
});

Deno.test("onStopSignals() calls first on the first stop and again on each later one", async (t) => {
  // Keeps the process alive should a SIGTERM find no other listener.
  let seenByTest = 0;
  let sawSignal = () => {};
  const keepAlive = () => {
    seenByTest++;
    sawSignal();
  };
  Deno.addSignalListener("SIGTERM", keepAlive);
  // The next SIGTERM the test sees; a deadline keeps the event loop alive meanwhile (signal
  // listeners do not) and fails the test if none comes.
  const nextSignal = async () => {
    let deadline: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => sawSignal = resolve),
        new Promise((_, reject) =>
          deadline = setTimeout(() => reject(new Error("No SIGTERM within 10 s")), 10_000)
        ),
      ]);
    } finally {
      clearTimeout(deadline);
    }
  };
  try {
    const calls: string[] = [];
    const handlers = { first: () => calls.push("first"), again: () => calls.push("again") };
    const controller = new AbortController();
    // Every SIGTERM counts here; the copies are the next test's.
    const signals = onStopSignals(handlers, { signal: controller.signal, copyWindowMs: 0 });
    await t.step("an abort of the signal is the first stop", () => {
      controller.abort();
      assertEquals(calls, ["first"]);
    });
    await t.step("each SIGTERM after it is another", async () => {
      for (const expected of [["first", "again"], ["first", "again", "again"]]) {
        const seen = nextSignal();
        Deno.kill(Deno.pid, "SIGTERM");
        await seen;
        assertEquals(calls, expected);
      }
    });
    await t.step("nothing once disposed", async () => {
      signals[Symbol.dispose]();
      const seen = nextSignal();
      Deno.kill(Deno.pid, "SIGTERM");
      await seen;
      assertEquals([calls.length, seenByTest], [3, 3]);
    });
    await t.step("a signal that has already aborted is the first stop at once", () => {
      const early: string[] = [];
      using _ = onStopSignals(
        { first: () => early.push("first"), again: () => early.push("again") },
        { signal: AbortSignal.abort() },
      );
      assertEquals(early, ["first"]);
    });
  } finally {
    Deno.removeSignalListener("SIGTERM", keepAlive);
  }
});

// SIGINT would stop `deno test` itself; SIGTERM then SIGINT is shutdown_test's.
Deno.test("onStopSignals() ignores the same signal again within the copy window", async () => {
  let sawSignal = () => {};
  const keepAlive = () => sawSignal();
  Deno.addSignalListener("SIGTERM", keepAlive);
  const send = async () => {
    const arrived = new Promise<void>((resolve) => sawSignal = resolve);
    const deadline = setTimeout(() => {}, 10_000); // keeps the event loop alive meanwhile
    Deno.kill(Deno.pid, "SIGTERM");
    await arrived;
    clearTimeout(deadline);
  };
  const calls: string[] = [];
  try {
    using _ = onStopSignals({
      first: () => calls.push("first"),
      again: () => calls.push("again"),
      copy: (signal) => calls.push(`copy ${signal}`),
    }, { copyWindowMs: 300 });
    await send();
    await send();
    assertEquals(calls, ["first", "copy SIGTERM"], "a forwarded copy is not a second stop");
    await new Promise((resolve) => setTimeout(resolve, 350));
    await send();
    assertEquals(calls, ["first", "copy SIGTERM", "again"], "the same, once the window passed");
  } finally {
    Deno.removeSignalListener("SIGTERM", keepAlive);
  }
});
