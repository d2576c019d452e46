import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";
import {
  Logger,
  MAX_LOGGED_FIELD_CHARS,
  MAX_LOGGED_MESSAGE_CHARS,
} from "../../src/observability/log.ts";
import { TaskLogLimiter } from "../../src/observability/task_log_limiter.ts";

// deno-lint-ignore no-control-regex -- looking for raw control characters is the point
const RAW_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

function linesOf(format: "text" | "json", write: (logger: Logger) => void): string[] {
  const lines: string[] = [];
  write(new Logger({ format, sink: (line) => lines.push(line) }));
  return lines;
}

Deno.test("Logger escapes control characters, in text and in JSON", async (t) => {
  const nasty = "a\u0000b\u001b[31mc\rd\ne\u007f\u0085\u2028f";
  for (const format of ["text", "json"] as const) {
    await t.step(format, () => {
      const lines = linesOf(format, (log) => log.info(nasty, { script: nasty, n: 1 }));
      assertEquals(lines.length, 1);
      const line = lines[0]!;
      assert(line.endsWith("\n") && line.indexOf("\n") === line.length - 1, "one line");
      assert(!RAW_CONTROLS.test(line), `no raw control character in ${JSON.stringify(line)}`);
      if (format === "json") {
        const entry = JSON.parse(line);
        assertEquals(entry.msg, nasty, "JSON keeps the text, escaped");
        assertEquals(entry.script, nasty);
      } else {
        assertMatch(line, /INFO {2}a\\u0000b\\u001b\[31mc\\rd\\ne\\u007f\\u0085\\u2028f script="/);
      }
    });
  }
});

Deno.test("Logger cuts a long message and long fields, saying how much was left out", async (t) => {
  const script = `/srv/${"s".repeat(1_000_000)}.py`;
  const message = "m".repeat(100_000);
  for (const format of ["text", "json"] as const) {
    await t.step(format, () => {
      const [line] = linesOf(format, (log) => log.with({ script }).warn(message, { n: 1 }));
      assert(
        line!.length < MAX_LOGGED_MESSAGE_CHARS + MAX_LOGGED_FIELD_CHARS + 300,
        `${line!.length} chars`,
      );
      assert(line!.includes(`(${message.length - MAX_LOGGED_MESSAGE_CHARS} more characters)`));
      assert(line!.includes(`(${script.length - MAX_LOGGED_FIELD_CHARS} more characters)`));
    });
  }
  await t.step("secrets are masked before the cut", () => {
    const secret = "hunter2-secret";
    const text = `${"x".repeat(MAX_LOGGED_FIELD_CHARS - 5)}${secret}`;
    const lines: string[] = [];
    new Logger({ format: "json", sink: (line) => lines.push(line), secrets: [secret] })
      .info("m", { text });
    assertNotIncludes(lines[0]!, "hunt");
  });
});

Deno.test("TaskLogLimiter bounds the rate and the total, and counts the rest", async (t) => {
  await t.step("rate: a burst of one second's worth, then the sustained rate", () => {
    let now = 0;
    const limiter = new TaskLogLimiter({ linesPerSecond: 10, maxBytes: 1e9 }, { now: () => now });
    let admitted = 0;
    for (let i = 0; i < 100; i++) if (limiter.admit("x")) admitted++;
    assertEquals(admitted, 10);
    now += 500;
    for (let i = 0; i < 100; i++) if (limiter.admit("x")) admitted++;
    assertEquals(admitted, 15);
    assertEquals(limiter.suppressedLines, 185);
    assertEquals(limiter.suppressedBytes, 185 * 2);
  });
  await t.step("total", () => {
    let now = 0;
    const limiter = new TaskLogLimiter({ linesPerSecond: 1e6, maxBytes: 100 }, {
      now: () => now++,
    });
    let admitted = 0;
    for (let i = 0; i < 50; i++) if (limiter.admit("123456789")) admitted++;
    assertEquals(admitted, 10);
    assertEquals(limiter.suppressedLines, 40);
  });
});

/** A task that prints `lines` lines of flood after a NUL and a terminal escape, then succeeds. */
async function floodTask(lines: number): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ suffix: ".sh" });
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\n. "${fixture("_task_args.sh")}"\ncat "$input" >/dev/null\n` +
      `printf 'nul:\\000:end\\n'; printf 'esc:\\033[2J:end\\n'\n` +
      `yes 'flood line of the task' | head -n ${lines}\n: > "$output"\n`,
  );
  await Deno.chmod(path, 0o755);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

Deno.test("serve: a task's flood of output costs the log a bounded amount and one summary line", async (t) => {
  for (const format of ["json", "text"] as const) {
    await t.step(format, async () => {
      const names = uniqueNames(`flood${format}`);
      await using server = await ServerSide.open(names);
      await using cli = new CliChild([
        "serve",
        ...brokerFlags(names),
        "--log-format",
        format,
        "--task-log-rate",
        "50",
        "--task-log-max-bytes",
        "4000",
      ]);
      await cli.ready();
      const printed = 200_002;
      await using task = await floodTask(printed - 2);
      const request = makeRequest({ script: task.path, input: "x" }, names.routingKey);
      server.publishRequest(request);
      const responses = await server.terminal(request.id, 60_000);
      assertEquals(responses.at(-1)?.status, "SUCCESS", outputText(responses.at(-1)));
      await cli.waitForLines((line) => line.includes("over the log limits"));
      // A script name of 1 MB is logged cut, in every line that names it.
      const long = makeRequest(
        { script: `/nonexistent/${"n".repeat(1_000_000)}.py` },
        names.routingKey,
      );
      server.publishRequest(long);
      await server.terminal(long.id);
      await cli.stop();

      const log = cli.stderr;
      assert(!RAW_CONTROLS.test(log), "no raw control character in the log");
      assert(log.length < 60_000, `the log stays small: ${log.length} chars`);
      for (const line of cli.stderrLines) assert(line.length < 20_000, `a line of ${line.length}`);
      const taskLines = cli.stderrLines.filter((line) =>
        line.includes("stream=") || line.includes('"stream":')
      );
      const summaries = cli.stderrLines.filter((line) => line.includes("over the log limits"));
      assertEquals(summaries.length, 1);
      const suppressed = Number(/lines["=:]+(\d+)/.exec(summaries[0]!)?.[1]);
      assertEquals(taskLines.length + suppressed, printed);
      assert(taskLines.length >= 2 && taskLines.length < 200, `${taskLines.length} logged`);
      assert(
        taskLines.some((line) => line.includes("nul:\\u0000:end")),
        "the NUL is logged escaped",
      );
      assert(taskLines.some((line) => line.includes("esc:\\u001b[2J:end")), "and the escape");
    });
  }
});
