import { assert, assertEquals, assertMatch, assertRejects } from "../helpers/assert.ts";
import { runCli } from "../helpers/cli_run.ts";
import { testEngineSettings } from "../helpers/engine.ts";
import { runTask, TaskStartError } from "../../src/task/mod.ts";
import { globMatches, resolvePathPattern } from "../../src/task/allow_list.ts";

// A task that leaves "ran-<name>" next to the tree's `tasks` directory, then echoes its input.
const PY_TASK = `import os, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
open(os.environ["MARKER_DIR"] + "/ran-" + os.path.basename(__file__), "w").close()
open(args["--progress_pipe"], "w").write('{"done":true}')
data = open(args["--input_pipe"], "rb").read()
open(args["--output_pipe"], "wb").write(data)
`;
const SH_TASK = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --input_pipe) i=$2 ;; --output_pipe) o=$2 ;; --progress_pipe) p=$2 ;; esac
  shift 2
done
touch "$MARKER_DIR/ran-\${0##*/}"
printf '{"done":true}' > "$p"
cat "$i" > "$o"
`;

/**
 * A tree of tasks, some reachable only by walking around the allow-list:
 *
 * ```
 * tasks/x.py  tasks/sub/deep.py  tasks/link.py -> evil/evil.py
 * evil/evil.py  evil/evil.sh
 * linkdir -> tasks
 * bin/tool-ok  bin/tool-alias -> tool-ok  bin/tool-escape -> ../evil/evil.sh
 * ```
 */
async function taskTree(): Promise<AsyncDisposable & { root: string; ran(): Promise<string[]> }> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "allow_list_paths_" }));
  for (const dir of ["tasks/sub", "evil", "bin", "markers"]) {
    await Deno.mkdir(`${root}/${dir}`, { recursive: true });
  }
  for (const file of ["tasks/x.py", "tasks/sub/deep.py", "evil/evil.py"]) {
    await Deno.writeTextFile(`${root}/${file}`, PY_TASK);
  }
  for (const file of ["evil/evil.sh", "bin/tool-ok"]) {
    await Deno.writeTextFile(`${root}/${file}`, SH_TASK, { mode: 0o755 });
  }
  await Deno.symlink(`${root}/evil/evil.py`, `${root}/tasks/link.py`);
  await Deno.symlink(`${root}/tasks`, `${root}/linkdir`);
  await Deno.symlink("tool-ok", `${root}/bin/tool-alias`);
  await Deno.symlink("../evil/evil.sh", `${root}/bin/tool-escape`);
  return {
    root,
    ran: async () =>
      (await Array.fromAsync(Deno.readDir(`${root}/markers`))).map((entry) => entry.name).sort(),
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

function settings(root: string, allowedScripts: string[]) {
  const base = testEngineSettings({ allowedScripts });
  return {
    ...base,
    env: { ...base.env, MARKER_DIR: `${root}/markers`, PATH: `${root}/bin:${base.env.PATH ?? ""}` },
  };
}

function spec(script: string) {
  return {
    id: crypto.randomUUID(),
    script,
    input: new TextEncoder().encode("in"),
    timeoutMs: 30_000,
  };
}

async function refused(script: string, engine: ReturnType<typeof settings>): Promise<string> {
  const error = await assertRejects(() => runTask(spec(script), engine), TaskStartError);
  return error.message;
}

async function succeeds(script: string, engine: ReturnType<typeof settings>): Promise<void> {
  const result = await runTask(spec(script), engine);
  assertEquals(result.outcome, "success", JSON.stringify(result));
}

Deno.test("globMatches(): * stays within a path segment, ** crosses them", () => {
  assert(globMatches("/srv/tasks/x.py", "/srv/tasks/*.py"));
  assert(!globMatches("/srv/tasks/sub/x.py", "/srv/tasks/*.py"));
  assert(globMatches("/srv/tasks/sub/x.py", "/srv/tasks/**/*.py"));
  assert(globMatches("/srv/tasks/x.py", "/srv/tasks/**/*.py"), "**/ spans zero directories");
  assert(globMatches("/srv/tasks/a/b/c", "/srv/tasks/**"));
  assert(!globMatches("/srv/other/x.py", "/srv/tasks/**"));
  assert(globMatches("gollm:embedding", "gollm:*"));
  assert(!globMatches("gollm:a/b", "gollm:*"));
});

Deno.test("resolvePathPattern() resolves the fixed directories of a pattern", async () => {
  await using tree = await taskTree();
  const { root } = tree;
  assertEquals(resolvePathPattern(`${root}/linkdir/*.py`), `${root}/tasks/*.py`);
  assertEquals(resolvePathPattern(`${root}/linkdir/**`), `${root}/tasks/**`);
  assertEquals(resolvePathPattern(`${root}/tasks/link.py`), `${root}/evil/evil.py`);
  assertEquals(resolvePathPattern("tasks/*.py", root), `${root}/tasks/*.py`);
  assertEquals(resolvePathPattern(`${root}/none/*.py`), `${root}/none/*.py`);
});

Deno.test("runTask() refuses every walk around a path allow-list and runs nothing", async (t) => {
  await using tree = await taskTree();
  const { root } = tree;
  const engine = settings(root, [`${root}/tasks/*.py`]);
  await t.step("a .. segment after an allowed file", async () => {
    const message = await refused(`${root}/tasks/x.py/../../evil/evil.py`, engine);
    assertMatch(message, /script not allowed: a path with a "\.\." segment is refused$/);
  });
  await t.step("a .. segment out of the allowed directory", async () => {
    const message = await refused(`${root}/tasks/../evil/evil.py`, engine);
    assertMatch(message, /script not allowed: a path with a "\.\." segment is refused$/);
  });
  await t.step("a relative path with a .. segment", async () => {
    assertMatch(await refused("tasks/../../evil.py", engine), /"\.\." segment/);
  });
  await t.step("a symlink in the allowed directory that points outside", async () => {
    const message = await refused(`${root}/tasks/link.py`, engine);
    assertMatch(message, /script not allowed: its real path matches no allowed pattern$/);
  });
  await t.step("a script in a sub-directory", async () => {
    assertMatch(await refused(`${root}/tasks/sub/deep.py`, engine), /script not allowed$/);
  });
  await t.step("a missing file outside the allow-list is not allowed, not missing", async () => {
    assertMatch(await refused(`${root}/evil/none.py`, engine), /script not allowed$/);
    assertMatch(await refused(`${root}/tasks/none.py`, engine), /script file not found$/);
  });
  assertEquals(await tree.ran(), [], "no task ran");
});

Deno.test("runTask() runs what a path allow-list allows, by its real path", async (t) => {
  await using tree = await taskTree();
  const { root } = tree;
  await t.step("a file in the allowed directory", async () => {
    await succeeds(`${root}/tasks/x.py`, settings(root, [`${root}/tasks/*.py`]));
  });
  await t.step("the pattern names the directory through a symlink", async () => {
    const engine = settings(root, [`${root}/linkdir/*.py`]);
    await succeeds(`${root}/linkdir/x.py`, engine);
    await succeeds(`${root}/tasks/x.py`, engine);
    assertMatch(await refused(`${root}/linkdir/link.py`, engine), /script not allowed/);
  });
  await t.step("** allows sub-directories", async () => {
    await succeeds(`${root}/tasks/sub/deep.py`, settings(root, [`${root}/tasks/**/*.py`]));
  });
  await t.step("a pattern naming a symlink allows what it points to", async () => {
    await succeeds(`${root}/tasks/link.py`, settings(root, [`${root}/tasks/link.py`]));
  });
  assertEquals(await tree.ran(), ["ran-deep.py", "ran-evil.py", "ran-x.py"]);
});

Deno.test("runTask() matches names on PATH by name and by their real directory", async (t) => {
  await using tree = await taskTree();
  const { root } = tree;
  const engine = settings(root, ["tool-*"]);
  await t.step("an executable in a PATH directory", async () => {
    await succeeds("tool-ok", engine);
  });
  await t.step("a symlink to another file of a PATH directory", async () => {
    await succeeds("tool-alias", engine);
  });
  await t.step("a symlink on PATH that leads out of the PATH directories", async () => {
    const message = await refused("tool-escape", engine);
    assertMatch(
      message,
      /script not allowed: ".*\/bin\/tool-escape" leads out of the PATH directories$/,
    );
  });
  await t.step("a name pattern does not allow a path", async () => {
    assertMatch(await refused(`${root}/bin/tool-ok`, engine), /script not allowed$/);
  });
  await t.step("a path pattern allows a name whose real path it matches", async () => {
    await succeeds("tool-ok", settings(root, [`${root}/bin/*`]));
    assertMatch(await refused("tool-escape", settings(root, [`${root}/bin/*`])), /not allowed$/);
  });
  await t.step("a name not allowed is refused whether or not it exists", async () => {
    assertMatch(await refused("no-such-tool", settings(root, ["gollm:*"])), /script not allowed$/);
    assertMatch(await refused("tool-none", engine), /executable not found on PATH$/);
  });
  assertEquals(await tree.ran(), ["ran-tool-ok"]);
});

Deno.test("run refuses a walk around the allow-list with FAILED and exit 1", async () => {
  await using tree = await taskTree();
  const { root } = tree;
  const env = {
    MARKER_DIR: `${root}/markers`,
    TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS: `${root}/linkdir/*.py`,
  };
  for (const script of [`${root}/tasks/../evil/evil.py`, `${root}/linkdir/link.py`]) {
    const result = await runCli(["run", script, "--input-json", "{}"], { env });
    assertEquals(result.code, 1, result.stderr);
    assertMatch(result.stderr, /^FAILED: Cannot start task ".*": script not allowed/m);
  }
  const ok = await runCli(["run", `${root}/linkdir/x.py`, "--input-json", "{}"], { env });
  assertEquals(ok.code, 0, ok.stderr);
  assertEquals(ok.text, "{}");
  assertEquals(await tree.ran(), ["ran-x.py"]);
});
