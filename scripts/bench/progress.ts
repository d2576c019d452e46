/**
 * Figure 4, progress: one task writing many progress messages (`progress_flood.sh`); each must
 * arrive once, in order.
 *
 * @module
 */
import { type BenchResponse, makeRequest, type ServerSide } from "./broker.ts";
import { CORES, expectSuccess, type Figure, round, type Target, target } from "./figure.ts";

const PROGRESS_FLOOD = new URL("../../tests/fixtures/progress_flood.sh", import.meta.url).pathname;

/** The progress figure's values, as in `--json`. */
export interface ProgressValues {
  messages: number;
  forwarded: number;
  messagesPerSecond: number;
  seconds: number;
  exact: boolean;
  lost: number;
  merged: number;
  duplicated: number;
}

/** 4. One task flooding the progress pipe: rate, and every message once and in order. */
export async function measureProgress(
  server: ServerSide,
  count: number,
): Promise<Figure<"progress", ProgressValues>> {
  const keep: BenchResponse[] = [];
  const request = makeRequest(
    PROGRESS_FLOOD,
    new TextEncoder().encode(String(count)),
    server.names.routingKey,
  );
  const start = performance.now();
  const terminal = await server.send(request, { keep, timeoutMs: 600_000 });
  const seconds = (terminal.arrivedAt - start) / 1_000;
  expectSuccess(terminal.status, "progress");
  const decoder = new TextDecoder();
  const messages = keep.filter((response) => response.status === "RUNNING" && response.output)
    .map((response) => decoder.decode(Uint8Array.fromBase64(response.output!)));
  let inOrder = 0;
  let merged = 0;
  let other = 0;
  const seen = new Set<number>();
  for (const [index, message] of messages.entries()) {
    if (message === `{"i":${index}}`) inOrder++;
    if ((message.match(/\{/g) ?? []).length > 1) merged++;
    const match = message.match(/^\{"i":(\d+)\}$/);
    if (match) seen.add(Number(match[1]));
    else other++;
  }
  const lost = count - seen.size;
  const duplicated = messages.length - other - merged - seen.size;
  const exact = inOrder === count && messages.length === count;
  const rate = messages.length / seconds;
  return {
    name: "progress",
    line: `progress: ${rate.toFixed(0)} messages/s forwarded (${messages.length} of ${count} in ${
      seconds.toFixed(2)
    } s, publish to terminal); ${
      exact
        ? "every message once, in order, none merged"
        : `NOT EXACT: ${lost} lost, ${merged} merged, ${duplicated} duplicated, ${
          count - inOrder
        } out of place`
    } | cores ${CORES}`,
    values: {
      messages: count,
      forwarded: messages.length,
      messagesPerSecond: round(rate),
      seconds: round(seconds, 3),
      exact,
      lost,
      merged,
      duplicated: Math.max(0, duplicated),
    },
  };
}

/** The progress targets, which must not get worse: the rate, and every message exact. */
export function progressTargets(values: ProgressValues): Target[] {
  const rate = values.messagesPerSecond;
  return [
    target("progress", "progress rate", {
      target: ">= 5,000 msg/s",
      measured: `${rate.toFixed(0)} msg/s`,
      met: rate >= 5_000,
    }),
    target("progress", "progress exact", {
      target: "none lost or merged",
      measured: values.exact ? "exact" : `${values.lost} lost, ${values.merged} merged`,
      met: values.exact,
    }),
  ];
}
