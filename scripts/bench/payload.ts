/**
 * Figure 3, large payload: a large input echoed back, end to end, and the runner's peak RSS;
 * floor: one raw message of the request's size and one of the response's size through the same
 * RabbitMQ by amqplib, before each run; and amqplib's own memory to receive the request, in a
 * process of its own (`receive_memory.ts`).
 *
 * @module
 */
import { brokerFloor, makeRequest, type ServerSide } from "./broker.ts";
import {
  AMQP_URL,
  CORES,
  ECHO,
  expectSuccess,
  type Figure,
  mb,
  median,
  MIB,
  pct,
  type Plan,
  round,
  type Target,
  target,
} from "./figure.ts";
import { brokerAtRest, brokerPid, readMemory, resetPeakRss } from "./proc.ts";
import { receiveMemory } from "./receive_memory.ts";
import type { RunnerProcess } from "./runner_process.ts";

/** The payload figure's values, as in `--json`. */
export interface PayloadValues {
  payloadBytes: number;
  runs: number;
  seconds: number;
  brokerFloorSeconds: number;
  brokerFloorRuns: number;
  brokerFloorMinSeconds: number;
  brokerFloorMaxSeconds: number;
  brokerFloorSpread: number;
  floorRatio: number;
  secondsMin: number;
  secondsMax: number;
  intact: boolean;
  peakRssBytes: number;
  idleRssBytes: number;
  rssBeforeBytes: number;
  peakRssHighestBytes: number;
  peakOverIdlePayloads: number;
  requestBytes: number;
  amqplibReceiveGrowthBytes: number;
  amqplibReceiveOverPayloads: number;
}

// A payload floor whose measurements are further apart than this (of their median) is noise.
const MAX_FLOOR_SPREAD = 0.5;

/**
 * 3. A large input echoed back: end-to-end time and the runner's peak RSS. One 90 MB message
 * through the broker varies a lot from run to run (broker flow control, GC, a shared machine),
 * so it runs `runs` times: the time is the median; the peak RSS is the first run's (a runner
 * fresh from the other figures), and the highest of all runs is shown too (garbage kept by
 * the heap from one large request to the next).
 */
export async function measurePayload(
  server: ServerSide,
  runner: RunnerProcess,
  bytes: number,
  runs: number,
  idleRss: number,
  floorsPerRun: number,
): Promise<Figure<"payload", PayloadValues>> {
  const input = new Uint8Array(bytes);
  for (let offset = 0; offset < bytes; offset += 65_536) {
    crypto.getRandomValues(input.subarray(offset, Math.min(bytes, offset + 65_536)));
  }
  const expected = await digest(input);
  // The floor: raw bytes of the request's size and of the response's size through the broker.
  const requestBytes = makeRequest(ECHO, input, server.names.routingKey).body.length;
  // Measured before each run, not once: one transfer of 90 MB varies by 2x from run to run.
  const floorTimes: number[] = [];
  const times: number[] = [];
  let peak = 0;
  let highest = 0;
  let before = 0;
  let reset = true;
  let intact = true;
  // Each measurement starts on a broker at rest: after a large message RabbitMQ works on for
  // seconds (garbage, the message store writing it), which the next one would pay for. And
  // one unmeasured transfer first: the broker's and amqplib's paths warm.
  const beam = await brokerPid();
  await brokerAtRest(beam);
  await brokerFloor(AMQP_URL, requestBytes, requestBytes);
  for (let run = 0; run < runs; run++) {
    for (let k = 0; k < floorsPerRun; k++) {
      await brokerAtRest(beam);
      floorTimes.push(await brokerFloor(AMQP_URL, requestBytes, requestBytes));
    }
    await brokerAtRest(beam);
    const request = makeRequest(ECHO, input, server.names.routingKey);
    // What the earlier figures left in the runner's heap, for comparison with the idle RSS.
    if (run === 0) before = (await readMemory(runner.pid)).rss;
    reset &&= await resetPeakRss(runner.pid);
    const start = performance.now();
    const terminal = await server.send(request, { timeoutMs: 300_000 });
    times.push((terminal.arrivedAt - start) / 1_000);
    // Without the reset, VmHWM is the peak since start, which the payload dominates anyway.
    const hwm = (await readMemory(runner.pid)).hwm;
    if (run === 0) peak = hwm;
    highest = Math.max(highest, hwm);
    expectSuccess(terminal.status, "payload");
    const output = terminal.output ? Uint8Array.fromBase64(terminal.output) : new Uint8Array();
    intact &&= output.length === bytes && await digest(output) === expected;
  }
  // What amqplib alone keeps to receive the request, in a process of its own; after the runs,
  // so that the broker is not still busy with it when they start.
  const received = await receiveMemory(AMQP_URL, requestBytes);
  const amqplibGrowth = received.peak - received.rssBefore;
  const seconds = median(times);
  const floorSeconds = median(floorTimes);
  // How far apart the floor's measurements are: (slowest - fastest) / median.
  const floorSpread = (Math.max(...floorTimes) - Math.min(...floorTimes)) / floorSeconds;
  const bound = idleRss + amqplibGrowth + bytes / 2;
  const spread = runs > 1
    ? ` (median of ${runs}: ${times.map((time) => time.toFixed(2)).join(", ")} s)`
    : "";
  return {
    name: "payload",
    line: `payload: ${bytes / MIB} MiB echoed in ${seconds.toFixed(2)} s end to end${spread}` +
      ` (${(2 * bytes / MIB / seconds).toFixed(0)} MiB/s in+out) | broker floor ${
        floorSeconds.toFixed(2)
      } s (2 raw messages of ${(requestBytes / MIB).toFixed(1)} MiB${
        floorTimes.length > 1
          ? `, median of ${floorTimes.map((time) => time.toFixed(2)).join(", ")} s, spread ${
            pct(floorSpread)
          }`
          : ""
      }), ratio ${(seconds / floorSeconds).toFixed(2)}x | output ${
        intact ? "intact" : "CORRUPT"
      }; runner peak RSS${reset ? "" : " (since start)"} ${mb(peak)} = idle ${mb(idleRss)} + ${
        ((peak - idleRss) / bytes).toFixed(2)
      }x payload (bound idle + amqplib's receive + 0.5x = ${mb(bound)}; RSS before the payload ${
        mb(before)
      }${
        runs > 1 ? `; highest of the ${runs} runs ${mb(highest)}` : ""
      }) | amqplib alone, receiving the request: idle + ${
        (amqplibGrowth / bytes).toFixed(2)
      }x payload (${mb(amqplibGrowth)} for ${(requestBytes / MIB).toFixed(1)} MiB, ${
        (amqplibGrowth / requestBytes).toFixed(2)
      }x the message)` +
      ` | cores ${CORES}`,
    values: {
      payloadBytes: bytes,
      runs,
      seconds: round(seconds, 3),
      brokerFloorSeconds: round(floorSeconds, 3),
      brokerFloorRuns: floorTimes.length,
      brokerFloorMinSeconds: round(Math.min(...floorTimes), 3),
      brokerFloorMaxSeconds: round(Math.max(...floorTimes), 3),
      brokerFloorSpread: round(floorSpread, 3),
      floorRatio: round(seconds / floorSeconds, 3),
      secondsMin: round(Math.min(...times), 3),
      secondsMax: round(Math.max(...times), 3),
      intact,
      peakRssBytes: peak,
      idleRssBytes: idleRss,
      rssBeforeBytes: before,
      peakRssHighestBytes: highest,
      peakOverIdlePayloads: round((peak - idleRss) / bytes, 2),
      requestBytes,
      amqplibReceiveGrowthBytes: amqplibGrowth,
      amqplibReceiveOverPayloads: round(amqplibGrowth / bytes, 2),
    },
  };
}

/**
 * The payload targets: the time against the broker floor (judged only on a steady floor), and
 * the peak RSS against what amqplib alone takes to receive the request.
 */
export function payloadTargets(values: PayloadValues, plan: Plan): Target[] {
  const ratio = values.floorRatio;
  const spread = values.brokerFloorSpread;
  const peak = values.peakRssBytes;
  const idle = values.idleRssBytes;
  const amqplib = values.amqplibReceiveGrowthBytes;
  const size = `${plan.payloadBytes / MIB} MiB`;
  const bound = idle + amqplib + plan.payloadBytes / 2;
  return [
    target("payload", `${size} echo / broker floor`, {
      target: "<= 1.5x",
      measured: `${ratio.toFixed(2)}x (${values.seconds.toFixed(2)} s vs ${
        values.brokerFloorSeconds.toFixed(2)
      } s)`,
      met: ratio <= 1.5,
      note: `floor: ${values.brokerFloorRuns} measurements, ${
        values.brokerFloorMinSeconds.toFixed(2)
      }-${values.brokerFloorMaxSeconds.toFixed(2)} s, spread ${pct(spread)}${
        spread > MAX_FLOOR_SPREAD ? ": too noisy to judge by" : ""
      }`,
    }),
    target("payload", `peak RSS (${size})`, {
      target: "<= idle + amqplib's receive + 0.5x",
      measured: `${mb(peak)} = idle + ${(amqplib / plan.payloadBytes).toFixed(2)}x + ${
        ((peak - idle - amqplib) / plan.payloadBytes).toFixed(2)
      }x`,
      met: peak <= bound && values.intact,
      note: `bound ${mb(bound)}; amqplib alone, receiving the request: idle + ${
        (amqplib / plan.payloadBytes).toFixed(2)
      }x`,
    }),
  ];
}

async function digest(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}
