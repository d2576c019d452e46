import { relative } from "node:path";
import { assert, assertEquals, assertMatch, assertThrows } from "../helpers/assert.ts";
import {
  isScriptAllowed,
  MAX_SCRIPT_LENGTH,
  pipeArgs,
  resolveScriptCommand,
  type ScriptCommandOptions,
} from "../../src/task/script_command.ts";
import { TaskStartError } from "../../src/task/errors.ts";

/**
 * A temporary directory with executables `tool` and `python`, a plain file `data`, a
 * `task.py` and a directory `dir.py`.
 */
async function binDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "script_command_test_" });
  await Deno.writeTextFile(`${path}/tool`, "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(`${path}/data`, "not a program\n", { mode: 0o644 });
  await Deno.writeTextFile(`${path}/python`, "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(`${path}/task.py`, "print('hi')\n", { mode: 0o644 });
  await Deno.mkdir(`${path}/dir.py`);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

function options(overrides: Partial<ScriptCommandOptions> = {}): ScriptCommandOptions {
  return { python: "python3", allowedScripts: [], path: "", ...overrides };
}

function startError(script: string, opts = options()): TaskStartError {
  return assertThrows(() => resolveScriptCommand(script, opts), TaskStartError);
}

Deno.test("isScriptAllowed() matches glob patterns where * matches anything but /", async (t) => {
  await t.step("a prefix pattern", () => {
    assert(isScriptAllowed("gollm:embedding", ["gollm:*"]));
    assert(isScriptAllowed("gollm:", ["gollm:*"]), "* matches nothing too");
    assert(!isScriptAllowed("mira:x", ["gollm:*"]));
    assert(!isScriptAllowed("xgollm:embedding", ["gollm:*"]), "anchored at the start");
  });
  await t.step("an exact name matches only itself", () => {
    assert(isScriptAllowed("mira:x", ["mira:x"]));
    assert(!isScriptAllowed("mira:xy", ["mira:x"]), "anchored at the end");
    assert(!isScriptAllowed("mira:", ["mira:x"]));
  });
  await t.step("any of several patterns", () => {
    assert(isScriptAllowed("b.py", ["a.py", "b.py"]));
    assert(!isScriptAllowed("c.py", ["a.py", "b.py"]));
    assert(!isScriptAllowed("anything", []));
  });
  await t.step("* in the middle and a lone *", () => {
    assert(isScriptAllowed("/tasks/run.py", ["/tasks/*.py"]));
    // Changed with the glob semantics of the allow-list: * no longer crosses a /, ** does.
    assert(!isScriptAllowed("/tasks/gollm/run.py", ["/tasks/*.py"]));
    assert(isScriptAllowed("/tasks/gollm/run.py", ["/tasks/**/*.py"]));
    assert(!isScriptAllowed("/tasks/gollm/run.sh", ["/tasks/**/*.py"]));
    assert(isScriptAllowed("whatever\nnext line", ["*"]));
  });
  await t.step("regex metacharacters are literal", () => {
    assert(!isScriptAllowed("aXpy", ["a.py"]), ". is not any character");
    assert(isScriptAllowed("a.py", ["a.py"]));
    assert(!isScriptAllowed("aa", ["a+"]));
    assert(isScriptAllowed("a+", ["a+"]));
    assert(!isScriptAllowed("a", ["a?"]));
    assert(isScriptAllowed("x(1)|y", ["x(1)|y"]));
    assert(!isScriptAllowed("y", ["x(1)|y"]));
    assert(isScriptAllowed("[ab]", ["[ab]"]));
    assert(!isScriptAllowed("a", ["[ab]"]));
    assert(isScriptAllowed("^$\\{2}", ["^$\\{2}"]));
    assert(!isScriptAllowed("", ["^$"]));
  });
});

Deno.test("pipeArgs() spells the pipe arguments in the configured style", async (t) => {
  const pipes = { input: "/w/in", output: "/w/out", progress: "/w/progress" };
  await t.step("underscore", () => {
    assertEquals(pipeArgs("id-1", pipes, "underscore"), [
      "--id",
      "id-1",
      "--input_pipe",
      "/w/in",
      "--output_pipe",
      "/w/out",
      "--progress_pipe",
      "/w/progress",
    ]);
  });
  await t.step("hyphen", () => {
    assertEquals(pipeArgs("id-1", pipes, "hyphen"), [
      "--id",
      "id-1",
      "--input-pipe",
      "/w/in",
      "--output-pipe",
      "/w/out",
      "--progress-pipe",
      "/w/progress",
    ]);
  });
});

Deno.test("resolveScriptCommand() runs a .py script with the interpreter and its absolute path", async (t) => {
  await using dir = await binDir();
  const python = `${dir.path}/python`;
  await t.step("an absolute path", async () => {
    assertEquals(await resolveScriptCommand(`${dir.path}/task.py`, options({ python })), {
      program: python,
      args: [`${dir.path}/task.py`],
      name: python,
    });
  });
  await t.step("a relative path becomes absolute", async () => {
    const rel = relative(Deno.cwd(), `${dir.path}/task.py`);
    assert(!rel.startsWith("/"), rel);
    const command = await resolveScriptCommand(rel, options({ python }));
    assertEquals(command.args, [`${dir.path}/task.py`]);
  });
  await t.step("the interpreter is looked up on PATH", async () => {
    const command = await resolveScriptCommand(
      `${dir.path}/task.py`,
      options({ python: "python", path: dir.path }),
    );
    assertEquals(command.program, python);
  });
  await t.step("a missing interpreter", async () => {
    const error = await startError(`${dir.path}/task.py`, options({ python: "no-such-python" }));
    assertMatch(error.message, /interpreter "no-such-python" not found or not executable$/);
    assertEquals(
      error.javaText,
      'Cannot run program "no-such-python": error=2, No such file or directory',
    );
  });
  await t.step("a missing .py file", async () => {
    const error = await startError(`${dir.path}/missing.py`, options({ python }));
    assertMatch(error.message, /^Cannot start task ".*missing\.py": script file not found$/);
  });
  await t.step("a directory named .py", async () => {
    const error = await startError(`${dir.path}/dir.py`, options({ python }));
    assertMatch(error.message, /script file not found/);
  });
});

Deno.test("resolveScriptCommand() finds an executable on the given PATH", async (t) => {
  await using dir = await binDir();
  await t.step("by name", async () => {
    const command = await resolveScriptCommand(
      "tool",
      options({ path: `/nonexistent:${dir.path}` }),
    );
    assertEquals(command, { program: `${dir.path}/tool`, args: [], name: "tool" });
  });
  await t.step("by absolute path, PATH not searched", async () => {
    const command = await resolveScriptCommand(`${dir.path}/tool`, options());
    assertEquals(command.program, `${dir.path}/tool`);
  });
  await t.step("not on PATH", async () => {
    const error = await startError("tool", options({ path: "/nonexistent" }));
    assertEquals(error.message, 'Cannot start task "tool": executable not found on PATH');
  });
  await t.step("an empty PATH finds nothing", async () => {
    assertMatch((await startError("tool", options({ path: "" }))).message, /not found on PATH/);
  });
  await t.step("a missing path", async () => {
    const error = await startError(`${dir.path}/nothing`);
    assertMatch(error.message, /: file not found$/);
  });
  await t.step("a file without the execute bit", async () => {
    const error = await startError("data", options({ path: dir.path }));
    assertEquals(error.message, `Cannot start task "data": "${dir.path}/data" is not executable`);
    assertEquals(error.javaText, 'Cannot run program "data": error=13, Permission denied');
    const byPath = await startError(`${dir.path}/data`);
    assertMatch(byPath.message, /is not executable$/);
    assertEquals(
      byPath.javaText,
      `Cannot run program "${dir.path}/data": error=13, Permission denied`,
    );
  });
  await t.step("a directory by path, as the JDK's exec reports it", async () => {
    const error = await startError(`${dir.path}/dir.py/`);
    assertEquals(
      error.javaText,
      `Cannot run program "${dir.path}/dir.py/": error=13, Permission denied`,
    );
  });
  await t.step("a missing path, in the Java runner's words", async () => {
    const error = await startError(`${dir.path}/nothing`);
    assertEquals(
      error.javaText,
      `Cannot run program "${dir.path}/nothing": error=2, No such file or directory`,
    );
  });
  await t.step("an executable later on PATH wins over a non-executable earlier one", async () => {
    await using other = await binDir();
    await Deno.writeTextFile(`${other.path}/data`, "#!/bin/sh\n", { mode: 0o755 });
    const command = await resolveScriptCommand(
      "data",
      options({ path: `${dir.path}:${other.path}` }),
    );
    assertEquals(command.program, `${other.path}/data`);
  });
});

Deno.test("resolveScriptCommand() rejects malformed and disallowed script names", async (t) => {
  await using dir = await binDir();
  await t.step("too long", async () => {
    const error = await startError("x".repeat(MAX_SCRIPT_LENGTH + 1));
    assertMatch(error.message, /must be 1 to 1024 characters long/);
  });
  await t.step("empty", async () => {
    assertMatch((await startError("")).message, /must be 1 to 1024 characters long/);
  });
  await t.step("control characters and NUL", async () => {
    for (const script of ["tool\n", "a\tb", "x\u001b[31m", "tool\u0000.py", "del\u007f"]) {
      const error = await startError(script, options({ path: dir.path }));
      assertMatch(error.message, /contains control characters$/, JSON.stringify(script));
      // deno-lint-ignore no-control-regex
      assert(!/[\u0000-\u001f]/.test(error.message), "the message escapes them");
    }
  });
  await t.step("not on the allow-list", async () => {
    const opts = options({ path: dir.path, allowedScripts: ["gollm:*"] });
    assertEquals(
      (await startError("tool", opts)).message,
      'Cannot start task "tool": script not allowed',
    );
  });
  await t.step("on the allow-list", async () => {
    const opts = options({ path: dir.path, allowedScripts: ["to*"] });
    assertEquals((await resolveScriptCommand("tool", opts)).program, `${dir.path}/tool`);
  });
});
