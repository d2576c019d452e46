import { assertEquals } from "../helpers/assert.ts";
import { IdleRelease } from "../../src/runner/idle_release.ts";

/** An IdleRelease whose releases are counted, and can be awaited one by one. */
function counted(delayMs: number) {
  let count = 0;
  let next = Promise.withResolvers<void>();
  const release = new IdleRelease(() => {
    count++;
    next.resolve();
    next = Promise.withResolvers<void>();
    return Promise.resolve();
  }, delayMs);
  return { release, count: () => count, released: () => next.promise };
}

Deno.test("IdleRelease releases once after work, when idle for the delay", async () => {
  const { release, count, released } = counted(5);
  using _ = release;
  release.idle(); // nothing ran yet: nothing to give back
  release.busy();
  release.idle();
  release.idle(); // idle twice: still one release
  await released();
  assertEquals(count(), 1);
  release.busy();
  release.idle();
  await released();
  assertEquals(count(), 2);
});

Deno.test("IdleRelease: a task starting within the delay cancels the release", async () => {
  const { release, count, released } = counted(5);
  using _ = release;
  release.busy();
  release.idle();
  release.busy(); // back to work before the delay: no collection in between
  const waiting = released();
  const waited = await Promise.race([
    waiting.then(() => "released"),
    new Promise<string>((resolve) => setTimeout(() => resolve("not released"), 50)),
  ]);
  assertEquals([waited, count()], ["not released", 0]);
  release.idle();
  await waiting;
  assertEquals(count(), 1);
});

Deno.test("IdleRelease: disposed, it releases nothing more", async () => {
  const { release, count } = counted(1);
  release.busy();
  release.idle();
  release[Symbol.dispose]();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assertEquals(count(), 0);
});
