import { assert } from "../helpers/assert.ts";
import { OpenWatcher } from "../../src/os/open_watcher.ts";

function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]).finally(() => clearTimeout(timer));
}

Deno.test("OpenWatcher sees an open awaited right as the reading of the previous one ends", async () => {
  const dir = await Deno.makeTempDir();
  const watcher = new OpenWatcher();
  const [pathA, pathB] = [`${dir}/a`, `${dir}/b`];
  await Deno.writeTextFile(pathA, "");
  await Deno.writeTextFile(pathB, "");
  const a = watcher.watch(pathA);
  const b = watcher.watch(pathB);
  try {
    // B's wait begins in the very turn A's ends, as a writer's does when its task finishes
    // and the next task's writer starts: the reading must go on for B.
    const aOpened = a.opened(1);
    const bOpened = aOpened.then(() => b.opened(1));
    Deno.openSync(pathA).close();
    await aOpened;
    Deno.openSync(pathB).close();
    assert(await within(bOpened, 2_000), "the open of B was seen");
  } finally {
    a.close();
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});
