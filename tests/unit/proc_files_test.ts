import { assert } from "../helpers/assert.ts";
import { eventually } from "../helpers/engine.ts";
import { requireLibc, WNOHANG } from "../../src/os/libc.ts";
import { mainThreadChildren } from "../../src/os/proc_files.ts";
import { becomeSubreaper } from "../../src/task/subreaper.ts";

Deno.test("mainThreadChildren() lists an orphan re-parented to the runner, afresh at each call", async () => {
  const lib = requireLibc();
  assert(becomeSubreaper(), "a child subreaper");
  assert(!mainThreadChildren(lib).includes(0), "a first look-up");
  // The shell exits at once; its background sleep comes back to this process's main thread.
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!"],
    stdout: "piped",
  }).output();
  const orphan = Number(new TextDecoder().decode(stdout).trim());
  assert(orphan > 0, "the orphan's pid");
  try {
    assert(await eventually(() => mainThreadChildren(lib).includes(orphan)), "the orphan listed");
  } finally {
    lib.kill(orphan, 9);
    const status = new Int32Array(1);
    assert(await eventually(() => lib.waitpid(orphan, status, WNOHANG) === orphan), "reaped");
  }
  assert(!mainThreadChildren(lib).includes(orphan), "the reaped orphan no longer listed");
});
