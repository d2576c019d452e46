/**
 * What every figure of the benchmark shares: the plan (how much to run), the shape of a figure
 * and of a target, the constants of the run, and the arithmetic and formats of the lines.
 *
 * @module
 */

/** The broker the benchmark and its runners use. */
export const AMQP_URL = Deno.env.get("BENCH_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672";
/** The task of the throughput, latency and payload figures, and of the floors and the peer. */
export const ECHO = new URL("../../tests/fixtures/echo.sh", import.meta.url).pathname;
/** The echo task's input. */
export const ECHO_INPUT = new TextEncoder().encode("hello");
/** The machine's cores, printed beside every figure. */
export const CORES = navigator.hardwareConcurrency;
/** The runner's `--concurrency`, and the floors' tasks at once. */
export const CONCURRENCY = 16;
export const MIB = 1024 * 1024;
export const MB = 1_000_000;

/** The figures, in the order they run. */
export const FIGURES = [
  "startup",
  "throughput",
  "latency",
  "payload",
  "progress",
  "scale",
] as const;
/** One figure's name, as `--only` takes it. */
export type FigureName = typeof FIGURES[number];

/** How much of each figure to run. */
export interface Plan {
  startups: number;
  warmup: number;
  throughputTasks: number;
  latencyTasks: number;
  payloadBytes: number;
  progressMessages: number;
  /** Runs of the large payload: the time is their median, the peak RSS their highest. */
  payloadRuns: number;
  /** Tasks of the protocol loop that measures RabbitMQ's CPU per task. */
  protocolTasks: number;
  /** Broker floors measured before each payload run (their median is the floor). */
  payloadFloorsPerRun: number;
  /** Long tasks running at once in the scale figure (the runner's `--concurrency`). */
  scaleTasks: number;
  /** How long the scale figure measures its tasks at rest, in milliseconds. */
  scaleRestMs: number;
}

/** The plan of a full run. */
export const FULL: Plan = {
  startups: 5,
  warmup: 50,
  throughputTasks: 1_000,
  latencyTasks: 100,
  payloadBytes: 64 * MIB,
  progressMessages: 20_000,
  payloadRuns: 3,
  protocolTasks: 300,
  payloadFloorsPerRun: 3,
  scaleTasks: 1_000,
  scaleRestMs: 10_000,
};

/** The plan of `--quick`: fewer iterations, a smoke run. */
export const QUICK: Plan = {
  startups: 1,
  warmup: 16,
  throughputTasks: 200,
  latencyTasks: 30,
  payloadBytes: 64 * MIB,
  progressMessages: 5_000,
  payloadRuns: 1,
  protocolTasks: 100,
  payloadFloorsPerRun: 3,
  scaleTasks: 200,
  scaleRestMs: 5_000,
};

/** One measured figure, as printed (`line`) and as in `--json` (`values`). */
export interface Figure<N extends string = string, V extends object = object> {
  name: N;
  line: string;
  values: V;
}

/** One target of the summary table. */
export interface Target {
  figure: FigureName | "strace";
  what: string;
  target: string;
  measured: string;
  met: boolean;
  /** What bounds the target on this machine, e.g. a floor that puts it out of reach. */
  note?: string;
}

/** A target of the summary table; `note` only when there is one. */
export function target(
  figure: FigureName,
  what: string,
  goal: { target: string; measured: string; met: boolean; note?: string | undefined },
): Target {
  const { measured, met, note } = goal;
  return { figure, what, target: goal.target, measured, met, ...(note ? { note } : {}) };
}

/** Fails when a task of the figure did not succeed. */
export function expectSuccess(status: string, what: string): void {
  if (status !== "SUCCESS") throw new Error(`A ${what} task ended in ${status}`);
}

/** The sample at rank `p` (0 to 1) of the sorted samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** The middle sample. */
export function median(samples: number[]): number {
  return percentile(samples, 0.5);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `value` with `digits` decimals, as a number (for `--json`). */
export function round(value: number, digits = 1): number {
  return Number(value.toFixed(digits));
}

/** Milliseconds, with decimals below 10. */
export function ms(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 0)} ms`;
}

/** Bytes as decimal megabytes. */
export function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/** A ratio as a percentage. */
export function pct(ratio: number): string {
  return `${(ratio * 100).toFixed(0)} %`;
}
