/**
 * The runner's system calls under the benchmark: `strace -f` attached to the runner, its trace
 * split between the runner's own threads and the task processes it starts (any process that
 * called `execve`), so that the runner's calls per task are not buried under those of `sh` and
 * `cat` (which `strace -c -f` adds together).
 *
 * @module
 */
import { type Figure, round } from "./figure.ts";

/** The runner's own system calls over a traced stretch, and the task processes'. */
export interface StraceSummary {
  /** Calls made by the runner's threads, by name. */
  runner: Map<string, number>;
  /** Calls made by the task processes (after their spawn), by name. */
  tasks: Map<string, number>;
  /** Paths the runner opened or stat'ed, with numbers and ids folded, by count. */
  runnerPaths: Map<string, number>;
}

/** `strace -f` attached to a running process, writing its full trace to a file. */
export class Strace {
  readonly #child: Deno.ChildProcess;
  readonly #raw: string;

  private constructor(child: Deno.ChildProcess, raw: string) {
    this.#child = child;
    this.#raw = raw;
  }

  /** Attaches to `pid`, every thread and every child; the trace goes to `raw`. */
  static async attach(pid: number, raw: string): Promise<Strace> {
    const child = new Deno.Command("strace", {
      args: ["-f", "-qq", "-o", raw, "-p", String(pid)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((resolve) => setTimeout(resolve, 500)); // strace attaches to every thread
    return new Strace(child, raw);
  }

  /** Detaches and reads the trace. */
  async stop(): Promise<StraceSummary> {
    try {
      this.#child.kill("SIGINT");
    } catch { /* gone */ }
    await this.#child.status;
    return summarize(await Deno.readTextFile(this.#raw));
  }

  /** Detaches, if still attached, without reading anything. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGINT");
    } catch { /* gone */ }
    await this.#child.status;
  }
}

const CALL = /^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()/;
const PATH =
  /^\d+\s+(?:openat|newfstatat|statx|mkdir|mknodat|unlink|unlinkat|symlink|chmod)\((?:AT_FDCWD, )?(?:"[^"]*", )?"([^"]*)"/;

/** Splits a `strace -f` trace between the traced process and the processes it exec'd. */
export function summarize(trace: string): StraceSummary {
  const lines = trace.split("\n");
  let first: number | undefined;
  const exec = new Set<number>();
  for (const line of lines) {
    const match = CALL.exec(line);
    if (!match) continue;
    const pid = Number(match[1]);
    first ??= pid;
    if (match[3] === "execve" && pid !== first) exec.add(pid);
  }
  const runner = new Map<string, number>();
  const tasks = new Map<string, number>();
  const runnerPaths = new Map<string, number>();
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  for (const line of lines) {
    const match = CALL.exec(line);
    if (!match || match[2]) continue; // a call resumed was counted where it began
    const name = match[3]!;
    if (exec.has(Number(match[1]))) {
      add(tasks, name);
      continue;
    }
    add(runner, name);
    const path = PATH.exec(line)?.[1];
    if (path) {
      const folded = path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}[^/]*/g, "<task>").replace(
        /\d+/g,
        "N",
      );
      add(runnerPaths, `${name} ${folded}`);
    }
  }
  return { runner, tasks, runnerPaths };
}

function total(map: Map<string, number>): number {
  let sum = 0;
  for (const count of map.values()) sum += count;
  return sum;
}

/** The runner's calls per task, and the summary as text (per task, most frequent first). */
export function formatStrace(summary: StraceSummary, tasks: number): {
  runnerPerTask: number;
  tasksPerTask: number;
  text: string;
} {
  const per = (count: number) => (count / Math.max(1, tasks)).toFixed(2);
  const rows = (map: Map<string, number>) =>
    [...map.entries()].sort((a, b) => b[1] - a[1]).map(([name, count]) =>
      `  ${per(count).padStart(8)}  ${name}`
    );
  const runnerPerTask = total(summary.runner) / Math.max(1, tasks);
  const tasksPerTask = total(summary.tasks) / Math.max(1, tasks);
  const text = [
    `strace -f of the runner over ${tasks} tasks: calls per task`,
    `runner's own threads: ${runnerPerTask.toFixed(1)} per task`,
    ...rows(summary.runner),
    "",
    "paths the runner opened, stat'ed, made or removed, per task:",
    ...rows(summary.runnerPaths),
    "",
    `task processes (sh, cat, ...; not the runner's): ${tasksPerTask.toFixed(1)} per task`,
    ...rows(summary.tasks),
    "",
  ].join("\n");
  return { runnerPerTask, tasksPerTask, text };
}

/** The strace figure's values, as in `--json`. */
export interface StraceValues {
  tasks: number;
  runnerCallsPerTask: number;
  taskProcessCallsPerTask: number;
}

/**
 * The strace figure: the runner's own system calls per task over the figures traced.
 *
 * @param summary the trace, formatted
 * @param tasks the tasks the runner ran while traced
 * @param path where the calls per call and path were written
 */
export function straceFigure(
  summary: { runnerPerTask: number; tasksPerTask: number },
  tasks: number,
  path: string,
): Figure<"strace", StraceValues> {
  return {
    name: "strace",
    line: `strace: the runner's own threads made ${
      summary.runnerPerTask.toFixed(1)
    } system calls per task (${tasks} tasks; its task processes ${
      summary.tasksPerTask.toFixed(1)
    } more); per call and path in ${path}`,
    values: {
      tasks,
      runnerCallsPerTask: round(summary.runnerPerTask, 1),
      taskProcessCallsPerTask: round(summary.tasksPerTask, 1),
    },
  };
}
