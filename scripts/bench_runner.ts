/**
 * The runner under benchmark: `main.ts serve` as a subprocess on private names, with its
 * memory read from `/proc`.
 *
 * @module
 */

import { RUN_PERMISSIONS } from "../src/permissions.ts";
import type { BenchNames } from "./bench_broker.ts";

/** Memory figures of a process, in bytes, from `/proc/<pid>/status`. */
export interface MemoryStatus {
  /** Resident set size now. */
  rss: number;
  /** Peak resident set size (since start, or since the last {@linkcode resetPeakRss}). */
  hwm: number;
}

/**
 * Reads VmRSS and VmHWM of a process. Through `cat`: Deno asks for `--allow-all` to read
 * another process's `/proc` entries, and the benchmark runs with the runner's permissions.
 */
export async function readMemory(pid: number): Promise<MemoryStatus> {
  const text = await shell(`cat /proc/${pid}/status`);
  const kib = (field: string) => {
    const match = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

/**
 * CPU time (user + system) a process has used so far, in milliseconds, from
 * `/proc/<pid>/stat` (clock ticks of 10 ms); undefined when it cannot be read.
 */
export async function cpuMs(pid: number): Promise<number | undefined> {
  return await statTicksMs(pid, 11, 12);
}

/**
 * CPU time (user + system) of the children a process has waited for, in milliseconds, from
 * `/proc/<pid>/stat` (cutime + cstime); undefined when it cannot be read.
 */
export async function childrenCpuMs(pid: number): Promise<number | undefined> {
  return await statTicksMs(pid, 13, 14);
}

// Two fields of `/proc/<pid>/stat` counted after the command name, in clock ticks of 10 ms.
async function statTicksMs(pid: number, user: number, system: number): Promise<number | undefined> {
  try {
    const stat = await shell(`cat /proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[user]) + Number(fields[system])) * 10;
  } catch {
    return undefined;
  }
}

/** The pid of the local RabbitMQ node (its Erlang VM), if there is one. */
export async function brokerPid(): Promise<number | undefined> {
  const pid = Number((await shell("pgrep -o beam.smp || true")).trim());
  return pid > 0 ? pid : undefined;
}

/** The number of a process's open file descriptors, or undefined when it cannot be read. */
export async function openFds(pid: number): Promise<number | undefined> {
  try {
    return Number((await shell(`ls /proc/${pid}/fd | wc -l`)).trim());
  } catch {
    return undefined;
  }
}

/** Resets a process's VmHWM to its current RSS (Linux `clear_refs` value 5). */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await shell(`echo 5 > /proc/${pid}/clear_refs`);
    return true;
  } catch {
    return false;
  }
}

async function shell(script: string): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("sh", { args: ["-c", script] })
    .output();
  const decoder = new TextDecoder();
  if (!success) throw new Error(`"${script}" failed: ${decoder.decode(stderr).trim()}`);
  return decoder.decode(stdout);
}

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
    const main = new URL("../main.ts", import.meta.url).pathname;
    const args = [
      "run",
      ...RUN_PERMISSIONS,
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
