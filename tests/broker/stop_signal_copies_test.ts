/**
 * One Ctrl-C is one stop, however the runner was started: under a parent that forwards the
 * signal (`deno task`), a signal sent to the whole process group reaches the runner twice.
 *
 * @module
 */
import { RUN_PERMISSIONS } from "../../src/permissions.ts";
import { SIGNAL_COPY_WINDOW_MS } from "../../src/util/stop_signals.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { behave, TEST_PYTHON } from "../helpers/engine.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";
import { fixture } from "../helpers/serve_harness.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const SETSID = ["/usr/bin/setsid", "/bin/setsid"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

// The runner's log, line by line, with a wait for a line.
class LogLines {
  readonly lines: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let rest = "";
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + text).split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
        for (const waiter of this.#waiters) waiter();
      }
      for (const waiter of this.#waiters) waiter();
    })();
  }

  count(part: string): number {
    return this.lines.filter((line) => line.includes(part)).length;
  }

  waitFor(part: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`No log line with "${part}":\n${this.lines.join("\n")}`));
      }, timeoutMs);
      const check = () => {
        if (this.count(part) === 0) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
  }
}

Deno.test({
  name: "serve drains once when one signal reaches it twice, through its parent and its group",
  ignore: SETSID === undefined,
  fn: async (t) => {
    const starts = {
      "a parent that forwards SIGINT, Ctrl-C to the group": {
        signal: "SIGINT",
        command: (serve: string[]) => [
          Deno.execPath(),
          "run",
          "-A",
          fixture("forward_signals.ts"),
          Deno.execPath(),
          "run",
          ...RUN_PERMISSIONS,
          "main.ts",
          ...serve,
        ],
      },
      "deno task, SIGTERM to the group": {
        signal: "SIGTERM",
        command: (serve: string[]) => [Deno.execPath(), "task", "taskrunner", ...serve],
      },
    } as const;
    for (const [name, start] of Object.entries(starts)) {
      await t.step(name, async () => {
        const names = uniqueNames("copies");
        await using server = await ServerSide.open(names);
        const workDir = await Deno.makeTempDir({ prefix: "taskrunner-copies-" });
        const release = `${workDir}.release`;
        const serve = ["serve", ...brokerFlags(names), "--work-dir", workDir, "--drain", "60"];
        const [program, ...args] = start.command([...serve, "--log-level", "debug"]);
        // A process group (and session) of its own, as a terminal gives `deno task start`.
        const group = new Deno.Command(SETSID!, {
          args: [program!, ...args],
          cwd: ROOT,
          env: {
            TERARIUM_TASKRUNNER_PYTHON: TEST_PYTHON,
            TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS: "1",
          },
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const log = new LogLines(group.stderr);
        try {
          await log.waitFor("Consuming requests");
          const request = makeRequest({
            script: fixture("behave.py"),
            input: behave({ progress: 1, wait_file: release }),
          }, names.routingKey);
          await server.publishRequest(request);
          await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
          // setsid made the parent a group leader: its pid is the group's id.
          Deno.kill(-group.pid, start.signal);
          await log.waitFor("Shutting down");
          // The parent's copy may come while the group's is still pending, and the kernel then
          // merges the two: one delivery, no copy to ignore. Either way, one drain below.
          await log.waitFor("Ignored a copy of the last signal", 1_000).catch(() => {});
          await Deno.writeTextFile(release, "");
          assertEquals((await group.status).code, 0);
          await log.done;
          assertEquals(server.statuses(request.id).at(-1), "SUCCESS", log.lines.join("\n"));
          assertEquals(log.count("Shutting down"), 1);
          assertEquals(log.count("Second signal"), 0, log.lines.join("\n"));
          assert(log.count("Stopped") === 1, log.lines.join("\n"));
        } finally {
          try {
            Deno.kill(-group.pid, "SIGKILL");
          } catch {
            // the group has exited
          }
          await group.status;
          await Deno.remove(workDir, { recursive: true }).catch(() => {});
          await Deno.remove(release).catch(() => {});
        }
      });
    }
  },
});

Deno.test("submit --follow: the first Ctrl-C cancels, a second stops following and exits", async () => {
  // No runner serves this type: nothing ever answers, the follow must end on the signals alone.
  const names = uniqueNames("follow");
  await using _server = await ServerSide.open(names);
  await using follow = new CliChild(["submit", "echo.sh", ...brokerFlags(names), "--follow"]);
  await follow.waitFor(({ stderr }) => /^QUEUED /m.test(stderr), "QUEUED");
  follow.signal("SIGINT");
  await follow.waitFor(({ stderr }) => stderr.includes("Cancelling the task"), "cancelling");
  // Past the copy window: a deliberate second Ctrl-C.
  await new Promise((resolve) => setTimeout(resolve, SIGNAL_COPY_WINDOW_MS + 100));
  const stoppedAt = performance.now();
  follow.signal("SIGINT");
  const result = await follow.finished();
  assert(performance.now() - stoppedAt < 5_000, "it exited at once");
  assertEquals(result.code, 130, result.stderr);
  assertMatch(result.stderr, /Stopped following/);
});
