/**
 * The runner under benchmark: `main.ts serve` as a subprocess on private names.
 *
 * @module
 */

import { RUN_PERMISSIONS, RUN_V8_FLAGS } from "../../src/permissions.ts";
import type { BenchNames } from "./broker.ts";

/** Options of {@linkcode RunnerProcess.spawn}. */
export interface RunnerSpawnOptions {
  amqpUrl: string;
  concurrency: number;
  workDir: string;
  /** Deno flags put before `main.ts`, e.g. `--cpu-prof`. */
  denoFlags?: readonly string[];
  logLevel?: string;
  /** Where the runner's stderr goes: inherited by default, or dropped. */
  stderr?: "inherit" | "null";
  /** `--drain` (default 5 s). */
  drainSeconds?: number;
}

/** A `main.ts serve` subprocess. */
export class RunnerProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly spawnedAt: number;
  #stopped: Promise<Deno.CommandStatus> | undefined;

  private constructor(child: Deno.ChildProcess, spawnedAt: number) {
    this.#child = child;
    this.spawnedAt = spawnedAt;
  }

  /**
   * Starts the runner on `names`; it connects and consumes on its own.
   *
   * @param names the private queue and exchange names
   * @param options broker, concurrency, work directory and extra Deno flags
   */
  static spawn(names: BenchNames, options: RunnerSpawnOptions): RunnerProcess {
    const url = new URL(options.amqpUrl);
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const args = [
      "run",
      ...RUN_PERMISSIONS,
      // As shipped; a V8 flag in denoFlags (BENCH_V8_FLAGS) comes later and wins.
      ...RUN_V8_FLAGS,
      ...(options.denoFlags ?? []),
      main,
      "serve",
      "--amqp-url",
      `${url.protocol}//${url.host}`,
      "--request-type",
      names.requestType,
      "--request-queue",
      names.requestQueue,
      "--response-exchange",
      names.responseExchange,
      "--cancellation-exchange",
      names.cancellationExchange,
      "--concurrency",
      String(options.concurrency),
      "--work-dir",
      options.workDir,
      "--kill-grace",
      "2",
      "--drain",
      String(options.drainSeconds ?? 5),
      "--log-level",
      options.logLevel ?? "warn",
    ];
    const env: Record<string, string> = {
      TERARIUM_MQ_USERNAME: decodeURIComponent(url.username || "guest"),
      TERARIUM_MQ_PASSWORD: decodeURIComponent(url.password || "guest"),
    };
    const spawnedAt = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env,
      stdin: "null",
      stdout: "inherit",
      stderr: options.stderr ?? "inherit",
    }).spawn();
    return new RunnerProcess(child, spawnedAt);
  }

  /** The runner's process id (the Deno process itself: `deno run` does not fork). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves with the exit status once the runner has exited. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#child.status;
  }

  /** Asks the runner to stop (SIGTERM), and kills it if it has not exited within `graceMs`. */
  stop(graceMs = 15_000): Promise<Deno.CommandStatus> {
    this.#stopped ??= (async () => {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            this.#child.kill("SIGKILL");
          } catch { /* already gone */ }
          resolve();
        }, graceMs);
      });
      try {
        await Promise.race([this.#child.status, killed]);
        return await this.#child.status;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
