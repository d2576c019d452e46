/**
 * Figure 5, start-up: spawn to consuming (a consumer on the request queue) over several cold
 * starts, and the idle RSS of the last runner, which serves the other figures.
 *
 * @module
 */
import { CORES, type Figure, MB, mb, median, ms, round, type Target, target } from "./figure.ts";

/** The start-up figure's values, as in `--json`. */
export interface StartupValues {
  readyMs: number;
  readyMinMs: number;
  readyMaxMs: number;
  idleRssBytes: number;
}

/**
 * The start-up figure from the cold starts measured.
 *
 * @param startups milliseconds from spawn to consuming, one per start
 * @param idleRss the last runner's RSS at rest, in bytes
 */
export function startupFigure(
  startups: number[],
  idleRss: number,
): Figure<"startup", StartupValues> {
  return {
    name: "startup",
    line: `startup: ready in ${ms(median(startups))} (median of ${startups.length}, min ${
      ms(Math.min(...startups))
    }, max ${ms(Math.max(...startups))}); idle RSS ${mb(idleRss)} | cores ${CORES}`,
    values: {
      readyMs: round(median(startups)),
      readyMinMs: round(Math.min(...startups)),
      readyMaxMs: round(Math.max(...startups)),
      idleRssBytes: idleRss,
    },
  };
}

/** The start-up targets, which must not get worse: ready to consume, idle RSS. */
export function startupTargets(values: StartupValues): Target[] {
  const { readyMs: ready, idleRssBytes: idle } = values;
  return [
    target("startup", "ready to consume", {
      target: "<= 300 ms",
      measured: ms(ready),
      met: ready <= 300,
    }),
    target("startup", "idle RSS", { target: "<= 80 MB", measured: mb(idle), met: idle <= 80 * MB }),
  ];
}
