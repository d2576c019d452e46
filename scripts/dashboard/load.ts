/**
 * A mixed load for the dashboard's picture (scripts/dashboard/demo.sh): a runner of its own on
 * private names (the benchmark's `RunnerProcess`; it inherits `TERARIUM_TASKRUNNER_HTTP_PORT`
 * and `TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS` from the environment), fed for a while by the
 * hmi-server's side (`TaskClient`) with a fixed number of tasks in flight: successes with
 * progress, exits 3, inactivity timeouts, tasks without output, scripts not allowed or not
 * found, and cancels one second in.
 *
 *     TERARIUM_TASKRUNNER_HTTP_PORT=19464 TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS="$PWD/tests/fixtures/*.py" \
 *       deno run -A scripts/dashboard/load.ts [seconds] [in flight]
 *
 * @module
 */
import {
  buildClientRequest,
  namesTopology,
  privateNames,
  TaskClient,
} from "../../src/client/mod.ts";
import { RunnerProcess } from "../bench/runner_process.ts";

const AMQP_URL = Deno.env.get("BENCH_AMQP_URL") ?? "amqp://guest:guest@localhost:5672";
const FIXTURES = new URL("../../tests/fixtures/", import.meta.url).pathname;

/** One kind of task: its script, its input, its time limit, and whether it is cancelled. */
interface Kind {
  script: string;
  behave: Record<string, unknown>;
  timeoutMs?: number;
  cancelAfterMs?: number;
  weight: number;
}

const KINDS: Kind[] = [
  { script: "behave.py", behave: { progress: 5, progress_interval: 0.05, sleep: 0.3 }, weight: 12 },
  { script: "behave.py", behave: { sleep: 2 }, weight: 2 },
  { script: "behave.py", behave: { exit: 3 }, weight: 2 },
  { script: "behave.py", behave: { sleep: 30 }, timeoutMs: 2_000, weight: 1 },
  { script: "behave.py", behave: { skip_output: true }, weight: 1 },
  {
    script: "behave.py",
    behave: { progress: 50, progress_interval: 0.1 },
    cancelAfterMs: 1_000,
    weight: 2,
  },
  { script: "/bin/true", behave: {}, weight: 1 },
  { script: "missing.py", behave: {}, weight: 1 },
];

function pick(): Kind {
  let draw = Math.random() * KINDS.reduce((sum, kind) => sum + kind.weight, 0);
  for (const kind of KINDS) if ((draw -= kind.weight) < 0) return kind;
  return KINDS[0]!;
}

async function until(ready: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!await ready().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main(): Promise<void> {
  const seconds = Number(Deno.args[0] ?? 120);
  const inFlight = Number(Deno.args[1] ?? 12);
  const port = Deno.env.get("TERARIUM_TASKRUNNER_HTTP_PORT");
  const names = privateNames("dashboard", { requestType: "load" });
  const workDir = await Deno.makeTempDir({ prefix: "dashboard-load-" });
  const client = await TaskClient.open(AMQP_URL, namesTopology(names));
  const ended = new Map<string, (status: string) => void>();
  const counts: Record<string, number> = {};
  try {
    await client.declareResponseExchange();
    await client.subscribe(names.routingKey, (response) => {
      if (response.id === null) return;
      if (!["SUCCESS", "FAILED", "CANCELLED"].includes(response.status)) return;
      ended.get(response.id)?.(response.status);
      ended.delete(response.id);
    });
    await using runner = RunnerProcess.spawn(names, {
      amqpUrl: AMQP_URL,
      concurrency: 8,
      workDir,
      stderr: "null",
    });
    if (port) {
      await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, "ready");
    }

    const stopAt = Date.now() + seconds * 1000;
    const one = async (): Promise<void> => {
      const kind = pick();
      const script = kind.script.startsWith("/") ? kind.script : FIXTURES + kind.script;
      const request = buildClientRequest({
        script,
        input: new TextEncoder().encode(JSON.stringify({ behave: kind.behave })),
        timeoutMs: kind.timeoutMs ?? 60_000,
        routingKey: names.routingKey,
      }, names.requestType);
      const status = new Promise<string>((resolve) => ended.set(request.id, resolve));
      await client.submit(request);
      if (kind.cancelAfterMs !== undefined) {
        setTimeout(() => client.cancel(request.id).catch(() => {}), kind.cancelAfterMs);
      }
      const end = await status;
      counts[end] = (counts[end] ?? 0) + 1;
    };
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (Date.now() < stopAt) await one();
      }),
    );
    await runner.stop();
    console.error(`dashboard load: ${JSON.stringify(counts)} in ${seconds} s`);
  } finally {
    await client.deleteAll({
      queues: [names.fullRequestQueue],
      exchanges: [names.responseExchange, names.cancellationExchange],
    });
    await client.close();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
