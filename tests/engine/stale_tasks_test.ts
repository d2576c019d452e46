import { assert, assertEquals } from "../helpers/assert.ts";
import { eventually, isAlive, testEngineSettings } from "../helpers/engine.ts";
import { runTask, taskDirsRemoved } from "../../src/task/mod.ts";
import { fixture } from "../helpers/serve_harness.ts";
import { reapStaleTasks, runnerTag } from "../../src/task/stale_tasks.ts";
import { TASK_DIR_VARIABLE } from "../../src/task/stale_processes.ts";
import { libc } from "../../src/os/libc.ts";
import { environValue, listDir, readStat } from "../../src/os/proc_files.ts";

const ID = "5f0c3a8e-0d7e-4a53-9d0e-2b1f3c4d5e6f";

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name).sort();
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** A process that lives until disposed, as a stand-in for another live runner. */
function liveProcess(): { pid: number } & AsyncDisposable {
  const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
  return {
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

/** A task directory as a runner with this pid and start time would name it. */
function taskDir(workDir: string, pid: number, startedAt: number, n: number): string {
  return `${workDir}/task-${ID}-r${pid}.${startedAt.toString(36)}-0000000${n}`;
}

Deno.test("reapStaleTasks() removes what a dead runner left at any point of a task's set-up", async () => {
  const workDir = await Deno.makeTempDir();
  try {
    const dead = await deadPid();
    const startedAt = Date.now() - 60_000;
    const record = (dir: string) => `${dir}.owner.json`;
    const dirs = [1, 2, 3, 4, 5].map((n) => taskDir(workDir, dead, startedAt, n));
    // Killed after making the directory (a record could not be read), with an empty or a
    // partial record, with a whole one, and before the directory (a record and a temp file).
    await Deno.mkdir(dirs[0]!);
    await Deno.mkdir(dirs[1]!);
    await Deno.writeTextFile(record(dirs[1]!), "");
    await Deno.mkdir(dirs[2]!);
    await Deno.writeTextFile(record(dirs[2]!), '{"runnerPid":');
    await Deno.mkdir(dirs[3]!);
    await Deno.writeTextFile(`${dirs[3]}/input`, "");
    await Deno.writeTextFile(
      record(dirs[3]!),
      JSON.stringify({ runnerPid: dead, runnerStartedAt: startedAt }),
    );
    await Deno.writeTextFile(`${record(dirs[4]!)}.tmp-1234abcd`, '{"run');
    // The previous runner in a restarted container: this very pid, another start time.
    const before = taskDir(workDir, Deno.pid, startedAt, 6);
    await Deno.mkdir(before);

    assertEquals(await reapStaleTasks(workDir), 6);
    assertEquals(await entries(workDir), []);
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("reapStaleTasks() leaves live runners' tasks alone, with a record or without", async () => {
  const workDir = await Deno.makeTempDir();
  try {
    await using other = liveProcess();
    const startedAt = Date.now() - 60_000;
    const bare = taskDir(workDir, other.pid, startedAt, 1);
    const recorded = taskDir(workDir, other.pid, startedAt, 2);
    await Deno.mkdir(bare);
    await Deno.mkdir(recorded);
    await Deno.writeTextFile(
      `${recorded}.owner.json`,
      JSON.stringify({ runnerPid: other.pid, runnerStartedAt: startedAt }),
    );
    const mine = `${workDir}/task-${ID}-${runnerTag()}-00000003`;
    await Deno.mkdir(mine);
    const unknown = `${workDir}/task-${ID}-abcdef`; // no record, no tag: not ours to judge
    await Deno.mkdir(unknown);
    const before = await entries(workDir);

    assertEquals(await reapStaleTasks(workDir), 0);
    assertEquals(await entries(workDir), before);
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("reapStaleTasks() kills the task group a dead runner recorded, in either format", async (t) => {
  const workDir = await Deno.makeTempDir();
  const tasks = [1, 2].map(() => new Deno.Command("setsid", { args: ["sleep", "60"] }).spawn());
  try {
    const dead = await deadPid();
    const [linked, recorded] = [1, 2].map((n) => taskDir(workDir, dead, Date.now(), n));
    await t.step("the record a runner writes: a link to the group", async () => {
      await Deno.mkdir(linked!);
      await Deno.symlink(String(tasks[0]!.pid), `${linked}.owner`);
    });
    await t.step("an earlier version's JSON record", async () => {
      await Deno.mkdir(recorded!);
      await Deno.writeTextFile(
        `${recorded}.owner.json`,
        JSON.stringify({ runnerPid: 999_999_999, runnerStartedAt: 1, pgid: tasks[1]!.pid }),
      );
    });
    assertEquals(await reapStaleTasks(workDir), 2);
    for (const task of tasks) {
      await task.status;
      assert(!isAlive(task.pid));
    }
    assertEquals(await entries(workDir), []);
  } finally {
    for (const task of tasks) {
      try {
        task.kill("SIGKILL");
      } catch {
        // already gone
      }
      await task.status;
    }
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("a runner SIGKILLed mid-task leaves nothing the next start does not reap", async () => {
  const workDir = await Deno.makeTempDir();
  try {
    for (let round = 0; round < 3; round++) {
      const runner = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          new URL("../../main.ts", import.meta.url).pathname,
          "run",
          fixture("behave.py"),
          "--input-json",
          JSON.stringify({ behave: { sleep: 60 } }),
          "--work-dir",
          workDir,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      assert(
        await eventually(async () => (await entries(workDir)).length >= 2, 15_000),
        "the task's directory and record appear",
      );
      runner.kill("SIGKILL");
      await runner.status;
      assert(await reapStaleTasks(workDir) >= 1, `round ${round}`);
      assertEquals(await entries(workDir), []);
    }
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

/** The live (not zombie) processes whose task directory lies in `workDir`. */
function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function taskProcessesIn(workDir: string): number[] {
  const lib = libc()!;
  return listDir(lib, "/proc").map(Number).filter((pid) => {
    if (!Number.isInteger(pid)) return false;
    const dir = environValue(lib, pid, TASK_DIR_VARIABLE);
    return dir?.startsWith(`${workDir}/`) === true && readStat(lib, pid)?.state !== "Z";
  });
}

/** A `taskrunner run` of a task that starts a daemon (its own session) and waits. */
function startRunner(workDir: string, pidFile: string): Deno.ChildProcess {
  const inputFile = `${pidFile}.input`;
  Deno.writeTextFileSync(inputFile, `${pidFile} wait\n`);
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../../main.ts", import.meta.url).pathname,
      "run",
      fixture("daemon.sh"),
      "--input",
      inputFile,
      "--work-dir",
      workDir,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

Deno.test("no task of a runner SIGKILLed at any instant of a task's start outlives the next start", async () => {
  const workDir = await Deno.makeTempDir();
  const scratch = await Deno.makeTempDir();
  const runners: Deno.ChildProcess[] = [];
  let leftBehind = 0;
  try {
    for (let batch = 0; batch < 2; batch++) {
      // Runners side by side, each killed at a random instant from its task directory's
      // appearance (before the spawn, between it and the record, the task's own start-up).
      const batchRunners = Array.from({ length: 4 }, (_, i) => {
        const runner = startRunner(workDir, `${scratch}/${i}-${batch}`);
        runners.push(runner);
        return runner;
      });
      await Promise.all(batchRunners.map(async (runner) => {
        const tag = `-r${runner.pid}.`;
        await eventually(
          async () => (await entries(workDir)).some((name) => name.includes(tag)),
          20_000,
        );
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
        runner.kill("SIGKILL");
        await runner.status;
      }));
      leftBehind += taskProcessesIn(workDir).length;
    }
    assert(leftBehind > 0, "the killed runners left task processes behind");
    // The next runner's start.
    await reapStaleTasks(workDir);
    assertEquals(taskProcessesIn(workDir), [], "no task process is left");
    assertEquals(await entries(workDir), []);
  } finally {
    for (const runner of runners) {
      try {
        runner.kill("SIGKILL");
      } catch {
        // already gone
      }
      await runner.status;
    }
    for (const pid of taskProcessesIn(workDir)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(workDir, { recursive: true });
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("reapStaleTasks() leaves the processes of a live runner's tasks alone", async () => {
  const workDir = await Deno.makeTempDir();
  const scratch = await Deno.makeTempDir();
  const runner = startRunner(workDir, `${scratch}/task`);
  try {
    // Once the daemon's pid is written, the task and its daemon are all there is: the task's
    // short-lived helpers (`mv`) are gone, and it execs `sleep` in its own pid.
    assert(
      await eventually(
        () => existsSync(`${scratch}/task`) && taskProcessesIn(workDir).length === 2,
        20_000,
      ),
      "the task and its daemon run",
    );
    const before = taskProcessesIn(workDir);
    assertEquals(await reapStaleTasks(workDir), 0);
    assertEquals(taskProcessesIn(workDir), before);
  } finally {
    runner.kill("SIGKILL");
    await runner.status;
    await reapStaleTasks(workDir);
    await Deno.remove(workDir, { recursive: true });
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("runTask() keeps a task directory inside the work dir whatever the task id", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const workDir = `${parent}/work`;
    const result = await runTask(
      {
        id: "../../../escaped/id",
        script: fixture("echo.sh"),
        input: new TextEncoder().encode("x"),
        timeoutMs: 20_000,
      },
      testEngineSettings({ workDir }),
    );
    assertEquals(result.outcome, "success");
    await taskDirsRemoved(); // removed in the background, after the result
    assertEquals(await entries(parent), ["work"]);
    assertEquals(await entries(workDir), []);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test({
  name: "reapStaleTasks() of another user takes a runner it may not signal (EPERM) for alive",
  ignore: Deno.uid() !== 0,
  async fn() {
    const workDir = await Deno.makeTempDir();
    await Deno.chmod(workDir, 0o777);
    const denoDir = await Deno.makeTempDir();
    await Deno.chmod(denoDir, 0o777);
    // A live runner of root, in a session of its own: a user's SIGCONT to it gets EPERM.
    const runner = new Deno.Command("setsid", { args: ["sleep", "60"], stdout: "null" }).spawn();
    const tag = `r${runner.pid}.${Date.now().toString(36)}`;
    const taskDir = `${workDir}/task-eperm-${tag}-abc`;
    // Its task, running as nobody in a session of its own.
    const task = new Deno.Command("setpriv", {
      args: [...NOBODY, "setsid", "env", `${TASK_DIR_VARIABLE}=${taskDir}`, "sleep", "60"],
      stdout: "null",
    }).spawn();
    const script = `${denoDir}/reap.ts`;
    await Deno.writeTextFile(
      script,
      `import { reapStaleTasks } from ${
        JSON.stringify(new URL("../../src/task/stale_tasks.ts", import.meta.url).href)
      };\nconsole.log(await reapStaleTasks(${JSON.stringify(workDir)}));\n`,
    );
    await Deno.chmod(script, 0o644);
    try {
      assert(await eventually(() => taskProcessesIn(workDir).length === 1, 10_000), "task runs");
      // A runner of nobody starts and reaps: the task belongs to a runner alive as root.
      const reaper = await new Deno.Command("setpriv", {
        args: [...NOBODY, "env", `HOME=${denoDir}`, `DENO_DIR=${denoDir}`, Deno.execPath(), "run"]
          .concat(["-A", "--no-config", "--no-lock", script]),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(reaper.stderr);
      assert(reaper.success, said);
      assertEquals(new TextDecoder().decode(reaper.stdout).trim(), "0", "no process killed");
      assertEquals(taskProcessesIn(workDir), [task.pid], "the live runner's task runs on");
    } finally {
      for (const child of [task, runner]) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
      await Deno.remove(workDir, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
    }
  },
});

const NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"];

Deno.test({
  name: "reapStaleTasks() leaves a task in another PID namespace (a container's) alone",
  ignore: Deno.uid() !== 0,
  async fn() {
    const workDir = await Deno.makeTempDir();
    // Named for a runner whose pid is dead here: in the container's namespace it may be alive,
    // and this pid says nothing of it.
    const tag = `r${await deadPid()}.${Date.now().toString(36)}`;
    const start = (dir: string, namespace: boolean) =>
      new Deno.Command(namespace ? "unshare" : "env", {
        args: [
          ...(namespace ? ["--pid", "--fork", "--mount-proc", "env"] : []),
          `${TASK_DIR_VARIABLE}=${dir}`,
          "sleep",
          "60",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
    const contained = start(`${workDir}/task-ns-${tag}-aaa`, true);
    const here = start(`${workDir}/task-here-${tag}-bbb`, false);
    try {
      assert(await eventually(() => taskProcessesIn(workDir).length === 2, 10_000), "both run");
      const inNamespace = taskProcessesIn(workDir).find((pid) =>
        environValue(libc()!, pid, TASK_DIR_VARIABLE)?.includes("task-ns-")
      )!;
      await reapStaleTasks(workDir);
      assertEquals((await here.status).signal, "SIGKILL", "the task of this namespace is killed");
      assert(isAlive(inNamespace), "the contained task runs on");
    } finally {
      for (const child of [contained, here]) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
      await Deno.remove(workDir, { recursive: true });
    }
  },
});
