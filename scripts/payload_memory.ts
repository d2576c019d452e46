/**
 * Where the runner's memory goes during one large echo: starts a runner, sends one payload,
 * and samples the runner's VmRSS every few milliseconds, printing a timeline with the
 * runner's own log lines (at debug level) between the samples, so that the peak can be placed
 * in a phase (receive, decode, task, encode, publish). Needs `-A` (another process's `/proc`).
 *
 *     deno run -A scripts/payload_memory.ts [MiB] [--every ms]
 *
 * @module
 */
import { benchNames, makeRequest, ServerSide } from "./bench_broker.ts";
import { RunnerProcess } from "./bench_runner.ts";

const AMQP_URL = Deno.env.get("BENCH_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
const ECHO = new URL("../tests/fixtures/echo.sh", import.meta.url).pathname;
const MIB = 1024 * 1024;

function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function statusKib(pid: number, field: string): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return match ? Number(match[1]) : 0;
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
  const idle = statusKib(runner.pid, "VmRSS");
  const input = new Uint8Array(mib * MIB);
  for (let offset = 0; offset < input.length; offset += 65_536) {
    crypto.getRandomValues(input.subarray(offset, offset + 65_536));
  }
  const request = makeRequest(ECHO, input, names.routingKey);
  const samples: Array<[number, number]> = [];
  const cpuBefore = cpuMs(runner.pid);
  const start = performance.now();
  const sampler = setInterval(() => {
    samples.push([performance.now() - start, statusKib(runner.pid, "VmRSS")]);
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
  const hwm = statusKib(runner.pid, "VmHWM");
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
