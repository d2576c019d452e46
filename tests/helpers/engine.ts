import { childEnvironment } from "../../src/config/settings.ts";
import {
  runTask,
  type RunTaskOptions,
  type TaskEngineSettings,
  type TaskResult,
  type TaskSpec,
} from "../../src/task/mod.ts";

/**
 * The Python interpreter the tests' `.py` tasks run with: `python3`'s real executable, found
 * once. A version manager's shim (pyenv's is a shell script) costs most of a second per start on
 * a busy machine, enough to trip the tests' one-second task timeouts.
 */
export const TEST_PYTHON: string = (() => {
  try {
    const { success, stdout } = new Deno.Command("python3", {
      args: ["-c", "import sys; print(sys.executable)"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const path = new TextDecoder().decode(stdout).trim();
    return success && path.length > 0 ? path : "python3";
  } catch {
    return "python3";
  }
})();

/** Engine settings for tests: a private work dir, a short kill grace. */
export function testEngineSettings(
  overrides: Partial<TaskEngineSettings> = {},
): TaskEngineSettings {
  return {
    workDir: `${Deno.env.get("TMPDIR") ?? "/tmp"}/taskrunner-test-${Deno.pid}`,
    python: TEST_PYTHON,
    pipeArgStyle: "underscore",
    killGraceMs: 1_000,
    logTailBytes: 64 * 1024,
    maxOutputBytes: 256 * 1024 * 1024,
    allowedScripts: [],
    env: childEnvironment(Deno.env.toObject()),
    ...overrides,
  };
}

/** The behaviour of tests/fixtures/behave.py, as its JSON input. */
export function behave(options: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(behaveJson(options));
}

/** The behaviour of tests/fixtures/behave.py, as its JSON input text (for `--input-json`). */
export function behaveJson(options: Record<string, unknown>): string {
  return JSON.stringify({ behave: options });
}

/**
 * Whether a process is alive (a zombie counts as dead: this sandbox's PID 1 does not reap).
 * Read through `cat`: Deno lets only a program with every permission read `/proc` itself.
 */
export function isAlive(pid: number): boolean {
  if (!(pid > 0)) throw new Error(`Not a pid: ${pid}`);
  try {
    const { success, stdout } = new Deno.Command("cat", {
      args: [`/proc/${pid}/stat`],
      stderr: "null",
    })
      .outputSync();
    if (!success) return false;
    const stat = new TextDecoder().decode(stdout);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/**
 * Waits until `check` holds, polling every 10 ms, for at most `timeoutMs`: for states that
 * send no event (a process gone, a queue deleted).
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return await check();
}

/** A task to run: a fresh id, the input as bytes, a timeout of 20 s unless given. */
export function taskSpec(
  script: string,
  input: Uint8Array | string = "",
  timeoutMs = 20_000,
): TaskSpec {
  return {
    id: crypto.randomUUID(),
    script,
    input: typeof input === "string" ? new TextEncoder().encode(input) : input,
    timeoutMs,
  };
}

/**
 * Runs a shell task whose body sees the pipe paths as $input, $output and $progress (and its
 * id as $id), through the real engine; returns its result and id.
 */
export async function runShellTask(
  body: string,
  options: {
    timeoutMs?: number;
    settings?: TaskEngineSettings;
    input?: string;
    hooks?: RunTaskOptions;
  } = {},
): Promise<{ result: TaskResult; id: string }> {
  const script = await Deno.makeTempFile({ suffix: ".sh" });
  const args = new URL("../fixtures/_task_args.sh", import.meta.url).pathname;
  try {
    await Deno.writeTextFile(script, `#!/bin/sh\n. "${args}"\n${body}\n`);
    await Deno.chmod(script, 0o755);
    const spec = taskSpec(script, options.input, options.timeoutMs);
    const result = await runTask(
      spec,
      options.settings ?? testEngineSettings(),
      options.hooks ?? {},
    );
    return { result, id: spec.id };
  } finally {
    await Deno.remove(script);
  }
}
