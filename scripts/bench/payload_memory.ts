/**
 * Where the runner's memory goes during one large echo: starts a runner, sends one payload,
 * and samples the runner's VmRSS every few milliseconds, printing a timeline with the
 * runner's own log lines (at debug level) between the samples, so that the peak can be placed
 * in a phase (receive, decode, task, encode, publish). Needs `-A` (another process's `/proc`).
 *
 *     deno run -A scripts/bench/payload_memory.ts [MiB] [--every ms]
 *
 * @module
 */
import { benchNames, makeRequest, ServerSide } from "./broker.ts";
import { cpuMsOfStat, memoryOfStatus, type MemoryStatus } from "./proc.ts";
import { RunnerProcess } from "./runner_process.ts";

const AMQP_URL = Deno.env.get("BENCH_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
const ECHO = new URL("../../tests/fixtures/echo.sh", import.meta.url).pathname;
const MIB = 1024 * 1024;

function cpuMs(pid: number): number {
  return cpuMsOfStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

// Read directly, not through `cat` as the benchmark does: this script samples every few ms.
function memory(pid: number): MemoryStatus {
  return memoryOfStatus(Deno.readTextFileSync(`/proc/${pid}/status`));
}

async function main(args: string[]): Promise<void> {
  const mib = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 64);
  const everyAt = args.indexOf("--every");
  const everyMs = everyAt >= 0 ? Number(args[everyAt + 1]) : 5;
  const names = benchNames();
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-payload-memory-" });
  await using server = await ServerSide.open(AMQP_URL, names);
  await using runner = RunnerProcess.spawn(names, {
    amqpUrl: AMQP_URL,
    concurrency: 4,
    workDir,
    logLevel: Deno.env.get("PAYLOAD_LOG_LEVEL") ?? "info",
    denoFlags: (Deno.env.get("PAYLOAD_DENO_FLAGS") ?? "").split(" ").filter((flag) => flag),
  });
  while (await server.consumerCount() < 1) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1_000));
  const idle = memory(runner.pid).rss / 1024;
  const input = new Uint8Array(mib * MIB);
  for (let offset = 0; offset < input.length; offset += 65_536) {
    crypto.getRandomValues(input.subarray(offset, offset + 65_536));
  }
  const request = makeRequest(ECHO, input, names.routingKey);
  const samples: Array<[number, number]> = [];
  const cpuBefore = cpuMs(runner.pid);
  const start = performance.now();
  const sampler = setInterval(() => {
    samples.push([performance.now() - start, memory(runner.pid).rss / 1024]);
  }, everyMs);
  console.error(`t0 ${new Date().toISOString()} (request published)`);
  const terminal = await server.send(request, { timeoutMs: 300_000 });
  const seconds = (terminal.arrivedAt - start) / 1_000;
  clearInterval(sampler);
  const cpu = cpuMs(runner.pid) - cpuBefore;
  const output = terminal.output ? Uint8Array.fromBase64(terminal.output) : new Uint8Array();
  const intact = output.length === input.length && output.every((b, k) => b === input[k]);
  let peak: [number, number] = [0, 0];
  for (const sample of samples) if (sample[1] > peak[1]) peak = sample;
  const step = Math.max(1, Math.floor(samples.length / 60));
  for (let k = 0; k < samples.length; k += step) {
    const [t, kib] = samples[k]!;
    console.log(
      `${t.toFixed(0).padStart(6)} ms ${(kib / 1024).toFixed(0).padStart(5)} MiB ${
        "#".repeat(Math.round((kib - idle) / 1024 / 8))
      }`,
    );
  }
  const hwm = memory(runner.pid).hwm / 1024;
  console.log(
    `${terminal.status} ${intact ? "intact" : "CORRUPT"} in ${
      seconds.toFixed(2)
    } s, runner CPU ${cpu} ms; idle ${(idle / 1024).toFixed(0)} MiB; sampled peak ${
      (peak[1] / 1024).toFixed(0)
    } MiB at ${peak[0].toFixed(0)} ms = idle + ${
      ((peak[1] - idle) / 1024 / mib).toFixed(2)
    }x; VmHWM ${(hwm / 1024).toFixed(0)} MiB = idle + ${((hwm - idle) / 1024 / mib).toFixed(2)}x`,
  );
}

if (import.meta.main) await main(Deno.args);
