/**
 * Figure 2, latency: sequential echo requests, publish to terminal response; the engine floor
 * and the bare-process floor, the protocol loop (`protocol_floor.ts`: its broker calls, no task),
 * and the Celery peer, sequential too.
 *
 * @module
 */
import { makeRequest, type ServerSide } from "./broker.ts";
import type { CeleryResult } from "./celery_peer.ts";
import {
  AMQP_URL,
  CORES,
  ECHO,
  ECHO_INPUT,
  expectSuccess,
  type Figure,
  ms,
  percentile,
  round,
  type Target,
  target,
} from "./figure.ts";
import { runFloor, STALL_MS } from "./harness.ts";
import { protocolLatency } from "./protocol_floor.ts";

/** The latency figure's values, as in `--json`. */
export interface LatencyValues {
  tasks: number;
  p50Ms: number;
  p99Ms: number;
  floorP50Ms: number;
  floorP99Ms: number;
  bareP50Ms: number;
  /** The protocol loop's, one request at a time: its broker calls with no task. */
  protocolP50Ms: number;
  ratioP50: number;
  ratioP99: number;
  /** The Celery peer's, when it ran. */
  celeryP50Ms?: number;
  celeryP99Ms?: number;
  celeryRatioP50?: number;
}

// Sequential tasks before the latency is measured: as many as the Celery peer's warm-up.
const LATENCY_WARM_UP = 50;

/** 2. Sequential latency through the broker, its floors and the peer. */
export async function measureLatency(
  server: ServerSide,
  floorDir: string,
  count: number,
  celery: CeleryResult | undefined,
): Promise<Figure<"latency", LatencyValues>> {
  const floor = (await runFloor("engine", floorDir, count, 1, 60_000 + count * 1_000)).samples;
  const bare =
    (await runFloor("bare", `${floorDir}-bare`, count, 1, 60_000 + count * 1_000)).samples;
  const protocol = await protocolLatency(AMQP_URL, { count, script: ECHO });
  const samples: number[] = [];
  // Warmed up as the Celery peer is (50 tasks), also when no other figure ran before this one.
  for (let i = -LATENCY_WARM_UP; i < count; i++) {
    const terminal = await server.send(
      makeRequest(ECHO, ECHO_INPUT, server.names.routingKey),
      { timeoutMs: STALL_MS },
    );
    expectSuccess(terminal.status, "latency");
    if (i >= 0) samples.push(terminal.arrivedAt - terminal.publishedAt);
  }
  const p50 = percentile(samples, 0.5);
  const p99 = percentile(samples, 0.99);
  const floorP50 = percentile(floor, 0.5);
  const floorP99 = percentile(floor, 0.99);
  const bareP50 = percentile(bare, 0.5);
  const protocolP50 = percentile(protocol, 0.5);
  const celeryP50 = celery ? percentile(celery.latencySamples, 0.5) : undefined;
  const celeryP99 = celery ? percentile(celery.latencySamples, 0.99) : undefined;
  return {
    name: "latency",
    line: `latency: p50 ${ms(p50)}, p99 ${ms(p99)} (${count} sequential echo tasks)` +
      ` | engine floor p50 ${ms(floorP50)}, p99 ${ms(floorP99)} (runTask)` +
      ` | bare process p50 ${ms(bareP50)}, engine floor - bare ${ms(floorP50 - bareP50)}` +
      ` | protocol loop p50 ${ms(protocolP50)} (its broker calls, no task): a runner's floor ${
        ms(bareP50 + protocolP50)
      }` +
      (celeryP50 && celeryP99
        ? ` | Celery p50 ${ms(celeryP50)}, p99 ${ms(celeryP99)}, ratio Celery/runner p50 ${
          (celeryP50 / p50).toFixed(2)
        }`
        : " | Celery not run") +
      ` | cores ${CORES}`,
    values: {
      tasks: count,
      p50Ms: round(p50, 2),
      p99Ms: round(p99, 2),
      floorP50Ms: round(floorP50, 2),
      floorP99Ms: round(floorP99, 2),
      bareP50Ms: round(bareP50, 2),
      protocolP50Ms: round(protocolP50, 2),
      ratioP50: round(p50 / floorP50, 3),
      ratioP99: round(p99 / floorP99, 3),
      ...(celeryP50 && celeryP99
        ? {
          celeryP50Ms: round(celeryP50, 2),
          celeryP99Ms: round(celeryP99, 2),
          celeryRatioP50: round(celeryP50 / p50, 3),
        }
        : {}),
    },
  };
}

/** The latency targets: Celery's p50 over the runner's, p99 against p50, the engine's cost. */
export function latencyTargets(values: LatencyValues): Target[] {
  const targets: Target[] = [];
  const { p50Ms: p50, p99Ms: p99, floorP50Ms: floorP50, bareP50Ms: bareP50 } = values;
  const { celeryRatioP50: celeryRatio, celeryP50Ms: celeryP50, protocolP50Ms } = values;
  if (celeryRatio !== undefined && celeryP50 !== undefined) {
    const floor = bareP50 + protocolP50Ms;
    targets.push(target("latency", "latency p50: Celery / runner", {
      target: ">= 1.0",
      measured: `${celeryRatio.toFixed(2)} (${ms(p50)} vs ${ms(celeryP50)})`,
      met: celeryRatio >= 1,
      note: `a runner's floor (bare + protocol loop): ${(celeryP50 / floor).toFixed(2)} (${
        ms(floor)
      })${celeryP50 < floor ? ": the target is below it" : ""}`,
    }));
  }
  targets.push(target("latency", "latency p99 / p50", {
    target: "<= 2x",
    measured: `${(p99 / p50).toFixed(2)}x`,
    met: p99 <= 2 * p50,
  }));
  targets.push(target("latency", "engine floor p50 - bare p50", {
    target: "<= 3 ms",
    measured: `${ms(floorP50 - bareP50)} (${ms(floorP50)} vs ${ms(bareP50)})`,
    met: floorP50 - bareP50 <= 3,
  }));
  return targets;
}
