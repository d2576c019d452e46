import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { CliChild, jsonLines, outputOf, runCli } from "../helpers/cli_run.ts";
import { fixture } from "../helpers/serve_harness.ts";

const ECHO_PY = new URL("../../examples/tasks/echo_progress.py", import.meta.url).pathname;
const TASK = fixture("pylib_task.py");

Deno.test("the Python example task runs through taskrunner run", async (t) => {
  const input = JSON.stringify({ progress_steps: 2, x: "é" });
  for (const style of ["underscore", "hyphen"]) {
    await t.step(`with --pipe-args ${style}`, async () => {
      const result = await runCli([
        "run",
        ECHO_PY,
        "--pipe-args",
        style,
        "--input-json",
        input,
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.text, input);
      assertMatch(result.stderr, /^\[progress\] 1\/2 50% step 1 of 2$/m);
      assertMatch(result.stderr, /^\[progress\] 2\/2 100% step 2 of 2$/m);
    });
  }
});

Deno.test("the Python library reads bytes, str and dict input", async (t) => {
  await t.step("bytes: any byte values, unchanged", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const input = new Uint8Array(4096).map((_, i) => (i * 7) % 256);
      await Deno.writeFile(`${dir}/in`, input);
      const result = await runCli(["run", TASK, "--input", `${dir}/in`], {
        env: { PYLIB_READ: "bytes" },
      });
      assertEquals(result.code, 0, result.stderr);
      assertEquals([...result.stdout], [...input]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("str: decoded as UTF-8", async () => {
    const result = await runCli(["run", TASK, "--pipe-args", "hyphen"], {
      stdin: new TextEncoder().encode("héllo wörld"),
      env: { PYLIB_READ: "str" },
    });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.text, "HÉLLO WÖRLD");
  });
  await t.step("dict: parsed JSON, with progress and dict output", async () => {
    const result = await runCli([
      "run",
      TASK,
      "--json",
      "--id",
      "py-1",
      "--input-json",
      '{"progress": 2, "k": [1, 2]}',
    ]);
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    assertEquals(JSON.parse(outputOf(responses[2]!)), { progress: 2, total: 2 });
    assertEquals(JSON.parse(outputOf(responses[3]!)), {
      id: "py-1",
      got: { progress: 2, k: [1, 2] },
    });
  });
});

Deno.test("the Python library takes --input without pipes", async () => {
  const { code, stdout, stderr } = await new Deno.Command("python3", {
    args: [TASK, "--id", "x", "--input", '{"progress": 1}'],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  // Without pipes, progress and output go to stdout.
  assertMatch(text, /^\{"progress": 1, "total": 1\}$/m);
  assertMatch(text, /^\{"id": "x", "got": \{"progress": 1\}\}$/m);
});

Deno.test("the Python library calls the cancellation handler on SIGINT of taskrunner run", async () => {
  const dir = await Deno.makeTempDir();
  const marker = `${dir}/cancelled`;
  try {
    await using cli = new CliChild(
      ["run", TASK, "--id", "py-cancel", "--input-json", '{"ready": true, "sleep": 60}'],
      { env: { PYLIB_CANCEL_MARKER: marker } },
    );
    await cli.waitFor(({ stderr }) => stderr.includes("[stdout] ready"), "the task to be ready");
    cli.signal("SIGINT");
    const result = await cli.finished();
    assertEquals(result.code, 130, result.stderr);
    assert(
      (await Deno.stat(marker).catch(() => undefined))?.isFile,
      "the handler wrote no marker",
    );
    assertEquals(await Deno.readTextFile(marker), "cancelled py-cancel");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Fidelity to Terarium's TaskRunnerInterface (packages/taskrunner/taskrunner.py in the terarium
// repository). Each test encodes what the original does, read from its source; where this
// library deliberately differs (a hang or crash of the original turned into working code), the
// test says so.
// ---------------------------------------------------------------------------------------------

const LIBRARY_DIR = new URL("../../tasklib/python", import.meta.url).pathname;
const TERARIUM_STYLE_TASK = fixture("terarium_style_task.py");

// A Python run that takes longer than this has hung (the original's timeouts never return).
const PYTHON_GUARD_MS = 30_000;

/** How a Python snippet ended; `result` is the JSON it printed on a line `RESULT <json>`. */
interface PythonRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  seconds: number;
  result: unknown;
}

/**
 * Runs `python3 -c <code> <args>` with the library importable, stdin closed; `DIR` in its
 * environment is a fresh temporary directory, removed afterwards.
 */
async function runPython(code: string, args: string[] = []): Promise<PythonRun> {
  const dir = await Deno.makeTempDir({ prefix: "pylib-" });
  try {
    const started = performance.now();
    const output = await new Deno.Command("python3", {
      args: ["-c", code, ...args],
      env: { PYTHONPATH: LIBRARY_DIR, PYTHONDONTWRITEBYTECODE: "1", DIR: dir },
      stdin: "null",
      signal: AbortSignal.timeout(PYTHON_GUARD_MS),
    }).output();
    const seconds = (performance.now() - started) / 1000;
    const stdout = new TextDecoder().decode(output.stdout);
    const line = stdout.split("\n").find((text) => text.startsWith("RESULT "));
    return {
      code: output.code,
      signal: output.signal,
      stdout,
      stderr: new TextDecoder().decode(output.stderr),
      seconds,
      result: line === undefined ? undefined : JSON.parse(line.slice("RESULT ".length)),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PRELUDE = `
import inspect, json, os, sys, threading, time
from taskrunner import TaskRunnerInterface
DIR = os.environ["DIR"]
def result(value):
    print("RESULT " + json.dumps(value), flush=True)
def file_text(name):
    with open(os.path.join(DIR, name)) as f:
        return f.read()
def make_file(name, text="untouched"):
    path = os.path.join(DIR, name)
    with open(path, "w") as f:
        f.write(text)
    return path
def make_fifo(name):
    path = os.path.join(DIR, name)
    os.mkfifo(path)
    return path
`;

Deno.test("the Python library parses the original's command line", async (t) => {
  const dump = `${PRELUDE}
t = TaskRunnerInterface(description="d")
result({k: getattr(t, k) for k in ("id", "input", "input_pipe", "output_pipe", "progress_pipe",
    "has_written_output")} | {"self_destruct": t.self_destructor.self_destruct_timeout_seconds})
t.shutdown()
`;
  const expected = {
    id: "x",
    input: null,
    input_pipe: "/i",
    output_pipe: "/o",
    progress_pipe: "/p",
    has_written_output: false,
    self_destruct: 7,
  };
  await t.step("the runner's arguments, the self-destruct default of one day", async () => {
    const run = await runPython(dump, [
      "--id",
      "x",
      "--input_pipe",
      "/i",
      "--output_pipe",
      "/o",
      "--progress_pipe",
      "/p",
    ]);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, { ...expected, self_destruct: 86400 });
  });
  await t.step("abbreviations, as argparse allows them in the original", async () => {
    const args = [
      "--id",
      "x",
      "--input_p",
      "/i",
      "--output",
      "/o",
      "--progress",
      "/p",
      "--self",
      "7",
    ];
    const run = await runPython(dump, args);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, expected);
  });
  await t.step("the hyphen spellings too (not in the original), also with =", async () => {
    const args = ["--id", "x", "--input-pipe=/i", "--output-pipe", "/o", "--progress-pipe", "/p"];
    const run = await runPython(dump, [...args, "--self-destruct-timeout-seconds", "7"]);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, expected);
  });
  await t.step("without --input and --input_pipe: ValueError, no timer thread", async () => {
    const run = await runPython(
      `${PRELUDE}
try:
    TaskRunnerInterface(description="d")
except ValueError as e:
    result({"error": str(e), "threads": threading.active_count()})
`,
      ["--id", "x", "--output_pipe", "/o"],
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, {
      error: "Either `input` or `input_pipe` must be specified",
      threads: 1,
    });
  });
  await t.step("without --id: argparse's usage error, exit 2", async () => {
    const run = await runPython(`${PRELUDE}\nTaskRunnerInterface(description="d")`, [
      "--input",
      "{}",
    ]);
    assertEquals(run.code, 2);
    assertMatch(run.stderr, /the following arguments are required: --id/);
  });
});

Deno.test("the Python library's methods take the original's arguments and defaults", async () => {
  const run = await runPython(`${PRELUDE}
import taskrunner
def params(f):
    return [p.name + ("=" + repr(p.default) if p.default is not p.empty else "")
            for p in inspect.signature(f).parameters.values()]
cls = TaskRunnerInterface
names = [n for n in dir(cls) if not n.startswith("_")]
result({"methods": {n: params(getattr(cls, n)) for n in names},
        "init": params(cls.__init__),
        "self_destruct": params(taskrunner.SelfDestructThread.__init__),
        "chunk": taskrunner.READ_CHUNK_SIZE})
`);
  assertEquals(run.code, 0, run.stderr);
  assertEquals(run.result, {
    methods: {
      log: ["self", "msg"],
      on_cancellation: ["self", "func"],
      read_input_bytes_with_timeout: ["self", "timeout_seconds=30"],
      read_input_dict_with_timeout: ["self", "timeout_seconds=30"],
      read_input_str_with_timeout: ["self", "timeout_seconds=30"],
      shutdown: ["self"],
      // Not in the original: write_output_bytes_with_timeout.
      write_output_bytes_with_timeout: ["self", "output", "timeout_seconds=30"],
      write_output_dict_with_timeout: ["self", "output", "timeout_seconds=30"],
      write_output_str_with_timeout: ["self", "output", "timeout_seconds=30"],
      // The original has no default here (a call without the timeout fails there).
      write_progress_dict_with_timeout: ["self", "progress", "timeout_seconds=30"],
      write_progress_str_with_timeout: ["self", "progress", "timeout_seconds=30"],
    },
    // Not in the original: args (the original always parses sys.argv).
    init: ["self", "description", "args=None"],
    self_destruct: ["self", "self_destruct_timeout_seconds"],
    chunk: 1024 * 1024,
  });
});

Deno.test("the Python library with --input returns the argument itself, as the original", async () => {
  const run = await runPython(
    `${PRELUDE}
t = TaskRunnerInterface(description="d")
raw = t.read_input_bytes_with_timeout()
result({"bytes": [type(raw).__name__, raw], "str": t.read_input_str_with_timeout(),
        "dict": t.read_input_dict_with_timeout()})
t.shutdown()
`,
    ["--id", "x", "--input", '{"é": 1}'],
  );
  assertEquals(run.code, 0, run.stderr);
  // The original returns the str from read_input_bytes_with_timeout; its str and dict readers then
  // fail on it (AttributeError: 'str' object has no attribute 'decode'), which is not kept.
  assertEquals(run.result, { bytes: ["str", '{"é": 1}'], str: '{"é": 1}', dict: { "é": 1 } });
  assertEquals(run.stdout.split("\n").filter((line) => line.startsWith("Reading")).length, 3);
  assertMatch(run.stdout, /^Reading input from input argument$/m);
});

Deno.test("the Python library's timeouts raise the original's TimeoutError and return", async (t) => {
  await t.step("reading the input pipe", async () => {
    const run = await runPython(`${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input_pipe", make_fifo("in")])
started = time.monotonic()
try:
    t.read_input_bytes_with_timeout(1)
except Exception as e:
    result({"type": type(e).__name__, "builtin": type(e) is TimeoutError, "message": str(e),
            "waited": time.monotonic() - started})
`);
    assertEquals(run.code, 0, run.stderr);
    const { waited, ...error } = run.result as Record<string, unknown>;
    assertEquals(error, {
      type: "TimeoutError",
      builtin: true,
      message: "Reading from input pipe timed out",
    });
    assert(typeof waited === "number" && waited >= 0.9, `returned after ${waited}s`);
  });
  await t.step("writing progress: a line on stdout, then the error", async () => {
    const run = await runPython(`${PRELUDE}
fifo = make_fifo("progress")
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", "", "--progress_pipe", fifo])
try:
    t.write_progress_dict_with_timeout({"progress": 1}, 1)
except TimeoutError as e:
    result({"message": str(e)})
`);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, { message: "Writing to progress pipe timed out" });
    assertMatch(run.stdout, /^Writing to progress pipe \S+\/progress timed out$/m);
  });
  await t.step("writing the output: the error, no line on stdout", async () => {
    const run = await runPython(`${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", "",
    "--progress_pipe", make_file("progress"), "--output_pipe", make_fifo("out")])
try:
    t.write_output_str_with_timeout("result", 1)
except TimeoutError as e:
    result({"message": str(e), "progress": file_text("progress")})
`);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, {
      message: "Writing to output pipe timed out",
      progress: '{"done": true}',
    });
    assert(!/^Writing to output pipe .* timed out$/m.test(run.stdout), run.stdout);
  });
});

Deno.test("the Python library writes the output as the original does", async (t) => {
  await t.step("done on the progress pipe, then the output; a second write fails", async () => {
    const run = await runPython(`${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", "",
    "--progress_pipe", make_file("progress"), "--output_pipe", make_file("out")])
t.write_output_dict_with_timeout({"a": [1, "é"]})
try:
    t.write_output_str_with_timeout("again")
except ValueError as e:
    result({"progress": file_text("progress"), "out": file_text("out"), "again": str(e)})
t.shutdown()
`);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, {
      progress: '{"done": true}',
      out: '{"a": [1, "\\u00e9"]}',
      again: "Output has already been written",
    });
    assertMatch(run.stdout, /^Writing output to output pipe$/m);
  });
  await t.step("without an output pipe: printed, nothing on the progress pipe", async () => {
    const run = await runPython(`${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", "",
    "--progress_pipe", make_file("progress")])
t.write_output_str_with_timeout("the result")
result({"progress": file_text("progress"), "written": t.has_written_output})
t.shutdown()
`);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, { progress: "untouched", written: true });
    assertMatch(run.stdout, /^Writing output to stdout\nthe result$/m);
  });
  await t.step("without a progress pipe: done printed, then the output written", async () => {
    const run = await runPython(`${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", "",
    "--output_pipe", make_file("out")])
t.write_output_str_with_timeout("the result")
result({"out": file_text("out")})
t.shutdown()
`);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, { out: "the result" });
    assertMatch(
      run.stdout,
      /^Writing progress to stdout\n\{"done": true\}\nWriting output to output pipe$/m,
    );
  });
});

Deno.test("the Python library's self-destruct timer kills a task unless shutdown() stops it", async (t) => {
  await t.step("still running after the timeout: SIGKILL", async () => {
    const run = await runPython(
      `${PRELUDE}\nt = TaskRunnerInterface(description="d")\nprint("started", flush=True)\ntime.sleep(25)`,
      ["--id", "x", "--input", "", "--self_destruct_timeout_seconds", "1"],
    );
    assertEquals(run.signal, "SIGKILL", run.stderr);
    assert(run.seconds < 20, `killed after ${run.seconds}s`);
    assertMatch(run.stderr, /Self-destruct timeout of 1s reached/);
  });
  await t.step("after shutdown(): the task ends normally", async () => {
    const run = await runPython(
      `${PRELUDE}\nt = TaskRunnerInterface(description="d")\nt.shutdown()\ntime.sleep(1.5)\nresult("ok")`,
      ["--id", "x", "--input", "", "--self_destruct_timeout_seconds", "1"],
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.result, "ok");
  });
});

Deno.test("a Funman-style error path exits 0 at once and never touches the output", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pylib-funman-" });
  try {
    await Deno.writeTextFile(`${dir}/in`, JSON.stringify({ fail: true }));
    await Deno.writeTextFile(`${dir}/out`, "untouched");
    await Deno.writeTextFile(`${dir}/progress`, "untouched");
    const output = await new Deno.Command("python3", {
      args: [TERARIUM_STYLE_TASK, "--id", "f-1", "--input_pipe", `${dir}/in`, "--output_pipe"]
        .concat([`${dir}/out`, "--progress_pipe", `${dir}/progress`]),
      env: { TERARIUM_STYLE: "funman", PYTHONDONTWRITEBYTECODE: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(PYTHON_GUARD_MS),
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    // No shutdown(): the self-destruct thread (a day) must not keep the process alive, and
    // nothing may be written on the task's behalf, so that the runner reports it failed.
    assertEquals(output.code, 0, stderr);
    assertMatch(stderr, /^Error: the work failed$/m);
    assertEquals(await Deno.readTextFile(`${dir}/out`), "untouched");
    assertEquals(await Deno.readTextFile(`${dir}/progress`), "untouched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("task entry points shaped like GoLLM, MIRA and Funman's run through taskrunner run", async (t) => {
  const input = JSON.stringify({ text: "a b c" });
  await t.step("gollm: dict in, {response} out", async () => {
    const result = await runCli(["run", TERARIUM_STYLE_TASK, "--json", "--input-json", input], {
      env: { TERARIUM_STYLE: "gollm" },
    });
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "SUCCESS"]);
    assertEquals(JSON.parse(outputOf(responses[1])), { response: { words: 3 } });
  });
  await t.step("mira: str in, the task id used", async () => {
    const result = await runCli([
      "run",
      TERARIUM_STYLE_TASK,
      "--json",
      "--id",
      "m-1",
      "--input-json",
      input,
    ], { env: { TERARIUM_STYLE: "mira" } });
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), ["RUNNING", "SUCCESS"]);
    assertEquals(JSON.parse(outputOf(responses[1])), { response: { words: 3, id: "m-1" } });
  });
  await t.step("funman: progress with a 5 s timeout, then the output", async () => {
    const result = await runCli(["run", TERARIUM_STYLE_TASK, "--json", "--input-json", input], {
      env: { TERARIUM_STYLE: "funman" },
    });
    assertEquals(result.code, 0, result.stderr);
    const responses = jsonLines(result.text);
    assertEquals(responses.map((response) => response.status), [
      "RUNNING",
      "RUNNING",
      "RUNNING",
      "SUCCESS",
    ]);
    assertEquals(JSON.parse(outputOf(responses[2])), {
      progress: 1,
      coverage_of_search_space: 0.5,
    });
    assertEquals(JSON.parse(outputOf(responses[3])), { response: '{"words": 3}' });
  });
  await t.step("gollm and mira errors: exit 1, FAILED", async () => {
    for (const style of ["gollm", "mira"]) {
      const result = await runCli([
        "run",
        TERARIUM_STYLE_TASK,
        "--json",
        "--input-json",
        '{"fail": true}',
      ], { env: { TERARIUM_STYLE: style } });
      assertEquals(result.code, 1, result.stderr);
      const responses = jsonLines(result.text);
      assertEquals(responses.at(-1)?.status, "FAILED", style);
      assertMatch(String(responses.at(-1)?.stderr), /RuntimeError: the work failed/);
    }
  });
  await t.step(
    "funman error: exit 0 without output, FAILED exited early (no empty SUCCESS)",
    async () => {
      const result = await runCli([
        "run",
        TERARIUM_STYLE_TASK,
        "--json",
        "--id",
        "f-2",
        "--input-json",
        '{"fail": true}',
      ], { env: { TERARIUM_STYLE: "funman" } });
      assertEquals(result.code, 1, result.stderr);
      const responses = jsonLines(result.text);
      assertEquals(responses.map((response) => response.status), ["RUNNING", "FAILED"]);
      assertMatch(outputOf(responses[1]), /^Process for task f-2 exited early with code 0/);
    },
  );
});

Deno.test("the Python library's cancellation handler runs on SIGTERM, then the task exits 1", async (t) => {
  for (const handler of ["returns", "raises"]) {
    await t.step(`when the handler ${handler}`, async () => {
      const code = `${PRELUDE}
t = TaskRunnerInterface(description="d", args=["--id", "x", "--input", ""])
def cleanup():
    print("cleanup", flush=True)
    if ${handler === "raises" ? "True" : "False"}:
        raise RuntimeError("cleanup failed")
t.on_cancellation(cleanup)
print("ready", flush=True)
time.sleep(25)
`;
      const dir = await Deno.makeTempDir({ prefix: "pylib-cancel-" });
      try {
        const child = new Deno.Command("python3", {
          args: ["-c", code],
          env: { PYTHONPATH: LIBRARY_DIR, PYTHONDONTWRITEBYTECODE: "1", DIR: dir },
          stdin: "null",
          stdout: "piped",
          stderr: "null",
          signal: AbortSignal.timeout(PYTHON_GUARD_MS),
        }).spawn();
        let stdout = "";
        const decoder = new TextDecoder();
        const lines = child.stdout.getReader();
        while (!stdout.includes("ready\n")) {
          const { value, done } = await lines.read();
          if (done) break;
          stdout += decoder.decode(value, { stream: true });
        }
        const started = performance.now();
        child.kill("SIGTERM");
        for (let read = await lines.read(); !read.done; read = await lines.read()) {
          stdout += decoder.decode(read.value, { stream: true });
        }
        const status = await child.status;
        // The original exits too, but only after the runner's SIGKILL: its self-destruct thread
        // (not a daemon) keeps the interpreter alive.
        assertEquals(status.code, 1, stdout);
        assert(performance.now() - started < 10_000, "the task took its time to exit");
        assertEquals(stdout, "ready\ncleanup\n");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});
