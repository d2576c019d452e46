/**
 * The taskrunner benchmark (`deno task bench`): starts its own runner (`main.ts serve`) on
 * private queue names against the local RabbitMQ, plays the hmi-server, and prints one line
 * per figure with the machine's core count and, beside it, the floors and the peer measured in
 * the same run with the ratios; then a summary table with the targets of issue 10.
 *
 * Figures (one module each, with its values' type and its targets: `startup.ts`,
 * `throughput.ts`, `latency.ts`, `payload.ts`, `progress.ts`, `scale.ts`):
 *
 * 1. throughput: 1,000 echo requests, concurrency 16, first publish to last terminal
 *    response; floors: the same tasks through `runTask` in a process of its own (the engine
 *    floor), and the bare task started directly with regular files as pipes (the bare-process
 *    floor), 16 at once; peer: a Celery worker running the same task (when installed). And the
 *    ceiling no runner of this protocol can pass here: `cores / (bare CPU per task + RabbitMQ
 *    protocol CPU per task)`, where the bare CPU is the bare tasks' own (the floor process's
 *    reaped children) and the protocol CPU is RabbitMQ's while an in-process loop does a task's
 *    broker operations and runs no process (`protocol_floor.ts`, 300 tasks, 16 at once);
 *    printed in tasks/s, as % of the bare process, and the runner's throughput as % of it.
 * 2. latency: 100 sequential echo requests, publish to terminal response; the same floors and
 *    peer, sequential.
 * 3. large payload: 64 MiB echoed back, end to end (median of 3 runs), and the runner's peak
 *    RSS (first run; the highest of the runs shown too); floor: one raw message of the
 *    request's size and one of the response's size through the same RabbitMQ by amqplib,
 *    before each run (median of as many as the runs). And
 *    amqplib's own memory for the request: the RSS growth of a fresh process that only
 *    receives one raw message of the request's size (`receive_memory.ts`), in payloads.
 * 4. progress: one task writing 20,000 progress messages; each must arrive once, in order.
 * 5. start-up: spawn to consuming (a consumer on the request queue), and idle RSS.
 * 6. scale: 1,000 long tasks (`tests/fixtures/sleep_progress.sh`, progress every second) at once on
 *    a runner of its own (`--concurrency 1000`): RSS, CPU and descriptors per running task at
 *    rest, progress latency p50/p99 (task's write to the server's receipt), and SIGTERM to
 *    exit (`--drain 0`), every request checked back in the queue. About a minute.
 *
 * The summary holds the targets of issue 21, each with its measured ratio and yes/no: what
 * the runner itself controls (its share of the protocol ceiling, its CPU per task against
 * RabbitMQ's in the same run), latency against Celery, the payload against a floor measured
 * several times (its spread printed; too noisy past 50 %), the scale figure, and the targets
 * of issue 10 that must not get worse.
 *
 * Usage:
 *
 *     deno task bench [--quick] [--json] [--strace <file>] [--peer auto|celery|none]
 *                     [--only startup,throughput,latency,payload,progress,scale]
 *
 * `--peer celery` requires the Celery peer (Debian's `python3-celery`) and fails when it is
 * missing; `auto` (the default) runs it when installed; `none` skips it.
 *
 * `--quick` runs fewer iterations (a smoke run); `--json` prints one JSON object instead of
 * the lines and the table (each target with its `note`, if any); `--only` runs some figures (start-up is always measured);
 * `--strace <file>` attaches `strace -f` to the runner for the figures run (not the scale
 * figure's runner), and writes the runner's own system calls per task to the file, apart from
 * those of the task processes it started. `BENCH_CPU_PROF=<dir>` runs the runners with
 * `--cpu-prof` and writes their profiles to that directory when they stop; `BENCH_V8_FLAGS`
 * runs them with `--v8-flags=<its value>`. `BENCH_AMQP_URL` overrides the broker (default
 * `amqp://guest:guest@127.0.0.1:5672`).
 *
 * The runner is stopped and the queues and exchanges deleted at the end, even on error.
 *
 * @module
 */
import { type CeleryResult, findCelery, runCelery } from "./celery_peer.ts";
import { benchNames, ServerSide } from "./broker.ts";
import {
  AMQP_URL,
  CONCURRENCY,
  CORES,
  delay,
  ECHO,
  type Figure,
  type FigureName,
  FIGURES,
  FULL,
  MIB,
  type Plan,
  QUICK,
  type Target,
  target,
} from "./figure.ts";
import { waitConsuming, warmUp } from "./harness.ts";
import { latencyTargets, type LatencyValues, measureLatency } from "./latency.ts";
import { measurePayload, payloadTargets, type PayloadValues } from "./payload.ts";
import { readMemory } from "./proc.ts";
import { measureProgress, progressTargets, type ProgressValues } from "./progress.ts";
import { RunnerProcess, type RunnerSpawnOptions } from "./runner_process.ts";
import { measureScale, scaleTargets, type ScaleValues } from "./scale.ts";
import { startupFigure, startupTargets, type StartupValues } from "./startup.ts";
import { formatStrace, Strace, straceFigure } from "./strace.ts";
import { measureThroughput, throughputTargets, type ThroughputValues } from "./throughput.ts";

/** The values of each figure measured in this run; a figure that failed has none. */
interface Measured {
  startup?: StartupValues;
  throughput?: ThroughputValues;
  latency?: LatencyValues;
  payload?: PayloadValues;
  progress?: ProgressValues;
  scale?: ScaleValues;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (flags.help) {
    console.log(
      "Usage: deno task bench [--quick] [--json] [--only <figures>] [--strace <file>] [--peer auto|celery|none]",
    );
    return 0;
  }
  const plan = flags.quick ? QUICK : FULL;
  const python = flags.peer === "none" ? undefined : await findCelery();
  if (flags.peer === "celery" && !python) {
    throw new Error(
      "Cannot run the Celery peer: no python3 with Celery found (apt-get install python3-celery)",
    );
  }
  const only = new Set<FigureName>(
    flags.only
      ? flags.only.split(",").map((name) => {
        if (!isFigureName(name)) {
          throw new TypeError(`Unknown figure "${name}": expected one of ${FIGURES.join(", ")}`);
        }
        return name;
      })
      : FIGURES,
  );
  only.add("startup");
  const say = (line: string) => {
    if (!flags.json) console.log(line);
  };
  // What runs now, on stderr, so that a slow figure is not mistaken for a hung one.
  const note = (what: string) => console.error(`bench: ${what}`);

  // Everything on one file system: the runner's FIFOs, the floors' files and the Celery task's
  // files alike.
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-bench-" });
  const cpuProfDir = Deno.env.get("BENCH_CPU_PROF");
  const spawnOptions: RunnerSpawnOptions = {
    amqpUrl: AMQP_URL,
    concurrency: CONCURRENCY,
    workDir: `${workDir}/runner`,
    denoFlags: [
      ...(cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : []),
      ...(Deno.env.get("BENCH_V8_FLAGS") ? [`--v8-flags=${Deno.env.get("BENCH_V8_FLAGS")}`] : []),
    ],
  };
  const figures: Figure[] = [];
  const measured: Measured = {};
  const failed: FigureName[] = [];
  const report = (figure: Figure) => {
    figures.push(figure);
    say(figure.line);
  };
  say(
    `taskrunner benchmark: ${CORES} cores, concurrency ${CONCURRENCY}${
      flags.quick ? " (quick)" : ""
    }, deno ${Deno.version.deno}`,
  );

  const names = benchNames();
  let runner: RunnerProcess | undefined;
  let tracer: Strace | undefined;
  let tracedFrom = 0;
  const interrupted = new AbortController();
  const onInterrupt = () => interrupted.abort(new Error("Interrupted"));
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    await using server = await ServerSide.open(AMQP_URL, names);
    try {
      // 5. Start-up: several cold starts; the last runner serves the other figures.
      const startups: number[] = [];
      for (let i = 0; i < plan.startups; i++) {
        if (runner) await runner.stop();
        runner = RunnerProcess.spawn(names, spawnOptions);
        startups.push(await waitConsuming(server, runner, interrupted.signal));
      }
      await delay(1_000);
      const idle = await readMemory(runner!.pid);
      const startup = startupFigure(startups, idle.rss);
      measured.startup = startup.values;
      report(startup);

      const tracePath = flags.strace;
      if (tracePath) {
        tracer = await Strace.attach(runner!.pid, `${workDir}/strace.raw`);
        tracedFrom = server.sent;
      }

      const floorDir = `${workDir}/floor`;
      let celery: CeleryResult | undefined;
      if (python && (only.has("throughput") || only.has("latency"))) {
        note("Celery peer: the same task through a Celery worker");
        celery = await runCelery(python, {
          amqpUrl: AMQP_URL,
          script: ECHO,
          latencyTasks: plan.latencyTasks,
          throughputTasks: plan.throughputTasks,
          concurrency: CONCURRENCY,
          tmpDir: workDir,
        });
      }
      // One figure; when it fails, the failure is reported and a fresh runner serves the rest.
      const measure = async <N extends FigureName, V extends object>(
        name: N,
        what: string,
        run: () => Promise<Figure<N, V>>,
        keep: (values: V) => void,
      ) => {
        if (!only.has(name)) return;
        note(what);
        try {
          const figure = await run();
          keep(figure.values);
          report(figure);
        } catch (error) {
          interrupted.signal.throwIfAborted();
          const message = error instanceof Error ? error.message : String(error);
          failed.push(name);
          report({ name, line: `${name}: FAILED: ${message}`, values: { failed: message } });
          note("restarting the runner on an empty request queue");
          await runner!.stop(5_000);
          await server.purgeRequests();
          runner = RunnerProcess.spawn(names, spawnOptions);
          await waitConsuming(server, runner, interrupted.signal);
        }
      };
      await measure(
        "throughput",
        `warm-up, then throughput: ${plan.throughputTasks} tasks`,
        async () => {
          await warmUp(server, plan.warmup);
          return await measureThroughput(server, runner!, floorDir, plan, celery);
        },
        (values) => measured.throughput = values,
      );
      await measure(
        "latency",
        `latency: ${plan.latencyTasks} sequential tasks each way`,
        () => measureLatency(server, floorDir, plan.latencyTasks, celery),
        (values) => measured.latency = values,
      );
      await measure(
        "payload",
        `payload: ${plan.payloadBytes / MIB} MiB echo`,
        () =>
          measurePayload(
            server,
            runner!,
            plan.payloadBytes,
            plan.payloadRuns,
            idle.rss,
            plan.payloadFloorsPerRun,
          ),
        (values) => measured.payload = values,
      );
      await measure(
        "progress",
        `progress: ${plan.progressMessages} messages`,
        () => measureProgress(server, plan.progressMessages),
        (values) => measured.progress = values,
      );
      // A runner of its own, on names of its own: the figures' runner is not disturbed.
      await measure(
        "scale",
        `scale: ${plan.scaleTasks} long tasks at once, on a runner of its own`,
        () =>
          measureScale(plan, { ...spawnOptions, workDir: `${workDir}/scale` }, interrupted.signal),
        (values) => measured.scale = values,
      );

      if (tracer) {
        const traced = server.sent - tracedFrom;
        const summary = formatStrace(await tracer.stop(), traced);
        tracer = undefined;
        await Deno.writeTextFile(tracePath!, summary.text);
        report(straceFigure(summary, traced, tracePath!));
      }
      const status = await runner!.stop();
      runner = undefined;
      if (!status.success) say(`runner exited with code ${status.code}`);
    } finally {
      // Before the queues are deleted, or the runner sees its queue vanish.
      await tracer?.kill();
      await runner?.stop();
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }

  const targets = evaluate(measured, failed, plan);
  if (flags.json) {
    console.log(JSON.stringify({
      cores: CORES,
      concurrency: CONCURRENCY,
      quick: flags.quick,
      deno: Deno.version.deno,
      figures: Object.fromEntries(figures.map((figure) => [figure.name, figure.values])),
      targets,
      allMet: targets.every((target) => target.met),
    }));
  } else {
    printTable(targets);
  }
  return 0;
}

interface Flags {
  quick: boolean;
  json: boolean;
  help: boolean;
  only?: string;
  strace?: string;
  peer: "auto" | "celery" | "none";
}

/** The command line: `--quick`, `--json`, `--help`, `--only <list>`, `--strace <file>`, `--peer`. */
function parseFlags(args: string[]): Flags {
  const flags: Flags = { quick: false, json: false, help: false, peer: "auto" };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i]!.split("=", 2);
    const value = () => {
      const found = inline ?? args[++i];
      if (found === undefined) throw new TypeError(`Missing value of "${name}"`);
      return found;
    };
    if (name === "--quick") flags.quick = true;
    else if (name === "--json") flags.json = true;
    else if (name === "--help" || name === "-h") flags.help = true;
    else if (name === "--only") flags.only = value();
    else if (name === "--strace") flags.strace = value();
    else if (name === "--peer") {
      const peer = value();
      if (peer !== "auto" && peer !== "celery" && peer !== "none") {
        throw new TypeError(`Unknown peer "${peer}": expected auto, celery or none`);
      }
      flags.peer = peer;
    } else throw new TypeError(`Unknown option "${args[i]}"`);
  }
  return flags;
}

function isFigureName(name: string): name is FigureName {
  return FIGURES.some((figure) => figure === name);
}

/**
 * The targets of issue 21, each with its ratio and whether it is met, checked against the
 * figures measured in this run: first one for each figure that failed, then those of each
 * figure measured. Issue 10's targets that a floor put out of any runner's reach (throughput
 * against the bare process, 3x Celery) are printed in the figures' lines only.
 */
function evaluate(measured: Measured, failed: FigureName[], plan: Plan): Target[] {
  return [
    ...failed.map((name) =>
      target(name, name, { target: "runs to the end", measured: "FAILED (see above)", met: false })
    ),
    ...(measured.throughput ? throughputTargets(measured.throughput) : []),
    ...(measured.latency ? latencyTargets(measured.latency) : []),
    ...(measured.payload ? payloadTargets(measured.payload, plan) : []),
    ...(measured.scale ? scaleTargets(measured.scale) : []),
    // Nothing else worse.
    ...(measured.progress ? progressTargets(measured.progress) : []),
    ...(measured.startup ? startupTargets(measured.startup) : []),
  ];
}

function printTable(targets: Target[]): void {
  const rows = [
    ["figure", "target", "measured", "met", "note"],
    ...targets.map((target) => [
      target.what,
      target.target,
      target.measured,
      target.met ? "yes" : "no",
      target.note ?? "",
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  console.log("");
  console.log(`Summary (${CORES} cores):`);
  console.log(line(rows[0]!));
  console.log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`);
  for (const row of rows.slice(1)) console.log(line(row));
  const missed = targets.filter((target) => !target.met).length;
  console.log(
    missed === 0 ? "All targets met." : `${missed} of ${targets.length} targets not met.`,
  );
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exitCode = 1;
  }
}
