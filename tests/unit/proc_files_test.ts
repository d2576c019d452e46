import { assert, assertEquals } from "../helpers/assert.ts";
import { eventually } from "../helpers/engine.ts";
import { requireLibc, WNOHANG } from "../../src/os/libc.ts";
import { environValue, mainThreadChildren, readProcFile } from "../../src/os/proc_files.ts";
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

Deno.test("environValue() finds a variable in a process's environment by its whole name", async () => {
  const lib = requireLibc();
  const start = (env: Record<string, string>) =>
    new Deno.Command("/bin/sleep", { args: ["30"], clearEnv: true, env }).spawn();
  // Names that hold the variable's name, before it, after it or around its `=`, are not it.
  const decoys = {
    XTASKRUNNER_TASK_DIR: "decoy-prefix",
    TASKRUNNER_TASK_DIRX: "decoy-suffix",
    OTHER: "TASKRUNNER_TASK_DIR=decoy-value",
  };
  const without = start(decoys);
  const withIt = start({ ...decoys, TASKRUNNER_TASK_DIR: "/tmp/task-1=2", LAST: "" });
  const empty = start({ TASKRUNNER_TASK_DIR: "" });
  try {
    // Until its exec, a child shows the environment (and command line) it was forked with.
    const execed = (pid: number) =>
      new TextDecoder().decode(readProcFile(lib, `/proc/${pid}/cmdline`)).startsWith("/bin/sleep");
    for (const child of [without, withIt, empty]) {
      assert(await eventually(() => execed(child.pid)), "sleep started");
    }
    assertEquals(environValue(lib, without.pid, "TASKRUNNER_TASK_DIR"), undefined);
    assertEquals(environValue(lib, withIt.pid, "TASKRUNNER_TASK_DIR"), "/tmp/task-1=2");
    assertEquals(environValue(lib, withIt.pid, "LAST"), "");
    assertEquals(environValue(lib, empty.pid, "TASKRUNNER_TASK_DIR"), "");
  } finally {
    for (const child of [without, withIt, empty]) {
      child.kill("SIGKILL");
      await child.status;
    }
  }
  assertEquals(environValue(lib, without.pid, "TASKRUNNER_TASK_DIR"), undefined, "a process gone");
});
