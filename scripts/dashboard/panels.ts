/**
 * The pure parts of `plot.ts`: reading the panels and queries out of the Grafana
 * dashboard (so that the picture and the dashboard cannot drift apart), putting values in for
 * Grafana's variables, and drawing Prometheus range-query results as one SVG grid of panels.
 * No I/O here, so that the tests can give it a fixed query result.
 *
 * @module
 */
import { z } from "zod";

/** One query of a panel: its PromQL as the dashboard holds it, and its legend format. */
export interface PanelQuery {
  expr: string;
  legendFormat: string;
}

/** One time-series panel of the dashboard. */
export interface Panel {
  title: string;
  /** Grafana's unit: `s`, `bytes`, `reqps`, `ops`, `percentunit`, `short`. */
  unit: string;
  /** Place in Grafana's grid: 24 columns, rows of about 30 px. */
  gridPos: { x: number; y: number; w: number; h: number };
  queries: PanelQuery[];
}

const targetSchema = z.object({
  expr: z.string().min(1),
  legendFormat: z.string().optional(),
  hide: z.boolean().optional(),
});

const panelSchema = z.object({
  type: z.string(),
  title: z.string(),
  gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }),
  fieldConfig: z.object({ defaults: z.object({ unit: z.string().optional() }) }).optional(),
  targets: z.array(targetSchema).optional(),
});

const dashboardSchema = z.object({
  title: z.string(),
  panels: z.array(panelSchema).min(1),
});

/** A dashboard file that is not what the plotter reads. */
export class DashboardError extends Error {
  override name = "DashboardError";
}

/**
 * The time-series panels of a Grafana dashboard, in reading order (row by row).
 *
 * @param json the parsed dashboard file
 * @throws DashboardError when it is not a dashboard with time-series panels and queries
 */
export function parseDashboard(json: unknown): { title: string; panels: Panel[] } {
  const parsed = dashboardSchema.safeParse(json);
  if (!parsed.success) {
    throw new DashboardError(`Not a Grafana dashboard: ${z.prettifyError(parsed.error)}`);
  }
  const panels = parsed.data.panels
    .filter((panel) => panel.type === "timeseries")
    .map((panel): Panel => ({
      title: panel.title,
      unit: panel.fieldConfig?.defaults.unit ?? "short",
      gridPos: panel.gridPos,
      queries: (panel.targets ?? [])
        .filter((target) => target.hide !== true)
        .map((target) => ({ expr: target.expr, legendFormat: target.legendFormat ?? "" })),
    }));
  if (panels.length === 0) throw new DashboardError("The dashboard has no time-series panel");
  const empty = panels.find((panel) => panel.queries.length === 0);
  if (empty) throw new DashboardError(`Panel "${empty.title}" has no query`);
  panels.sort((a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x);
  return { title: parsed.data.title, panels };
}

/** Values for the Grafana variables the dashboard's queries use. */
export interface QueryVariables {
  /** Regular expression of the runners' `instance` label (Grafana's "All" is `.*`). */
  instance: string;
  /** Range of `rate()`, as Grafana's `$__rate_interval` would be: a PromQL duration. */
  rateInterval: string;
}

/**
 * A dashboard query as Prometheus' API takes it: Grafana's variables replaced.
 *
 * @throws DashboardError on a variable the plotter does not know, rather than a query
 *   Prometheus would reject for a reason harder to see
 */
export function expandQuery(expr: string, variables: QueryVariables): string {
  const values: Record<string, string> = {
    instance: variables.instance,
    __rate_interval: variables.rateInterval,
    __interval: variables.rateInterval,
  };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? "";
    const value = values[name];
    if (value === undefined) throw new DashboardError(`Unknown variable ${whole} in: ${expr}`);
    return value;
  });
}

/**
 * `$__rate_interval` as Grafana computes it: at least four scrapes, and at least one step
 * plus one scrape, so that `rate()` always has two samples.
 */
export function rateInterval(stepSeconds: number, scrapeSeconds: number): string {
  return `${Math.max(4 * scrapeSeconds, stepSeconds + scrapeSeconds)}s`;
}

/** One series of a Prometheus range query (`resultType: "matrix"`). */
export interface MatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

const queryRangeSchema = z.object({
  status: z.literal("success"),
  data: z.object({
    resultType: z.literal("matrix"),
    result: z.array(
      z.object({
        metric: z.record(z.string(), z.string()),
        values: z.array(z.tuple([z.number(), z.string()])),
      }),
    ),
  }),
});

/**
 * The series of a `/api/v1/query_range` answer.
 *
 * @throws DashboardError when Prometheus answered an error or something else than a matrix
 */
export function parseQueryRange(json: unknown): MatrixSeries[] {
  const parsed = queryRangeSchema.safeParse(json);
  if (parsed.success) return parsed.data.data.result;
  const error = z.object({ error: z.string() }).safeParse(json);
  throw new DashboardError(
    error.success ? error.data.error : `Not a range query result: ${z.prettifyError(parsed.error)}`,
  );
}

/** A series' legend: Grafana's `{{label}}` filled in; the series' labels when there is none. */
export function legendOf(format: string, metric: Record<string, string>): string {
  if (format === "") {
    const labels = Object.entries(metric).filter(([name]) => name !== "__name__");
    const inner = labels.map(([name, value]) => `${name}="${value}"`).join(", ");
    return `${metric.__name__ ?? ""}{${inner}}`;
  }
  const text = format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => metric[name] ?? "");
  // A series without the label (`{{script}}` before the label exists) says so.
  return text.trim() || format.replace(/\{\{\s*(\w+)\s*\}\}/g, "(no $1)");
}

/** What one query gave: its series, or why there are none. */
export interface QueryData {
  query: PanelQuery;
  series: MatrixSeries[];
  /** Prometheus' error, or the failed request's. */
  error?: string;
}

/** A panel with what its queries gave. */
export interface PanelData {
  panel: Panel;
  data: QueryData[];
}

/** How the grid is drawn. */
export interface RenderOptions {
  /** Start and end of the time axis, in Unix seconds. */
  start: number;
  end: number;
  /** The query step, in seconds: points further apart than 1.5 steps are not joined. */
  step: number;
  /** Title over the grid (what was run, where and when). */
  title: string;
  /** Width of the whole picture, in pixels. */
  width?: number;
}

// Blue, purple, cyan, yellow, ...: green, red and orange are kept for the statuses.
const PALETTE = [
  "#3274d9",
  "#a352cc",
  "#00b8c4",
  "#e0b400",
  "#5a6f82",
  "#d44a9c",
  "#1f9e89",
  "#8ab8ff",
];

// Colours that keep their meaning from panel to panel.
const NAMED_COLOURS: Record<string, string> = {
  SUCCESS: "#56a64b",
  FAILED: "#e02f44",
  CANCELLED: "#ff9830",
  p50: "#3274d9",
  p99: "#e02f44",
};

const ROW_PX = 30;
const HEADER_PX = 44;
const PLOT = { left: 62, right: 14, top: 30, bottom: 22, legendLine: 15 };
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

/** A series ready to draw: its legend, colour and points (`null` where there is no value). */
interface DrawnSeries {
  legend: string;
  colour: string;
  points: [number, number | null][];
}

/**
 * The dashboard's panels as one SVG picture, laid out on Grafana's 24-column grid.
 * A panel whose queries gave no series says "No data"; a query of a panel that has others
 * but gave nothing is listed, greyed, in its legend.
 */
export function renderSvg(panels: readonly PanelData[], options: RenderOptions): string {
  const width = options.width ?? 1440;
  const column = width / 24;
  const bottom = Math.max(0, ...panels.map(({ panel }) => panel.gridPos.y + panel.gridPos.h));
  const height = HEADER_PX + bottom * ROW_PX + 8;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" ${FONT} font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#f4f5f5"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold" fill="#202226">${
      escapeXml(options.title)
    }</text>`,
    `<text x="8" y="36" fill="#464c54">${escapeXml(timeRangeText(options))}</text>`,
  ];
  for (const panel of panels) {
    const { x, y, w, h } = panel.panel.gridPos;
    const box = {
      x: x * column + 4,
      y: HEADER_PX + y * ROW_PX + 4,
      width: w * column - 8,
      height: h * ROW_PX - 8,
    };
    parts.push(renderPanel(panel, box, options));
  }
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

function timeRangeText({ start, end, step }: RenderOptions): string {
  const iso = (t: number) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  return `${iso(start)} to ${iso(end)} (UTC), step ${step} s`;
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

function renderPanel({ panel, data }: PanelData, box: Box, options: RenderOptions): string {
  const drawn: DrawnSeries[] = [];
  const missing: string[] = [];
  const errors: string[] = [];
  let unnamed = 0;
  for (const query of data) {
    if (query.error !== undefined) errors.push(query.error);
    if (query.series.length === 0) {
      const name = query.query.legendFormat.replace(/\{\{[^}]*\}\}/g, "").trim();
      missing.push(name || metricNames([query.query]).join(", "));
    }
    for (const series of query.series) {
      const legend = legendOf(query.query.legendFormat, series.metric);
      drawn.push({
        legend,
        colour: NAMED_COLOURS[legend] ?? PALETTE[unnamed++ % PALETTE.length]!,
        points: series.values.map(([t, value]) => [t, finite(value)]),
      });
    }
  }
  const parts = [
    `<g>`,
    `<rect x="${box.x}" y="${box.y}" width="${box.width}" height="${box.height}" rx="3" ` +
    `fill="#ffffff" stroke="#dcdee1"/>`,
    `<text x="${box.x + 8}" y="${box.y + 18}" font-size="12.5" font-weight="bold" fill="#202226">${
      escapeXml(panel.title)
    }</text>`,
  ];
  const values = drawn.flatMap((series) => series.points.map(([, value]) => value))
    .filter((value): value is number => value !== null);
  if (values.length === 0) {
    const reason = errors[0] ?? "No data";
    parts.push(
      `<text x="${box.x + box.width / 2}" y="${box.y + box.height / 2}" text-anchor="middle" ` +
        `font-size="14" fill="#8e9297" class="no-data">${escapeXml(shorten(reason, 70))}</text>`,
    );
    if (errors.length === 0) {
      parts.push(
        `<text x="${box.x + box.width / 2}" y="${box.y + box.height / 2 + 16}" ` +
          `text-anchor="middle" fill="#a6aaaf">${
            escapeXml(shorten(`no series: ${metricNames(panel.queries).join(", ")}`, 80))
          }</text>`,
      );
    }
    parts.push("</g>");
    return parts.join("\n");
  }

  const legendLines = drawn.length + missing.length;
  const shownLegend = Math.min(legendLines, 4);
  const plot = {
    x: box.x + PLOT.left,
    y: box.y + PLOT.top,
    width: box.width - PLOT.left - PLOT.right,
    height: box.height - PLOT.top - PLOT.bottom - shownLegend * PLOT.legendLine - 4,
  };
  const axis = axisFor(panel.unit, Math.min(0, ...values), Math.max(...values));
  const toX = (t: number) =>
    plot.x + ((t - options.start) / (options.end - options.start)) * plot.width;
  const toY = (v: number) =>
    plot.y + plot.height - ((v - axis.min) / (axis.max - axis.min)) * plot.height;

  for (const tick of axis.ticks) {
    const y = round(toY(tick));
    parts.push(
      `<line x1="${plot.x}" x2="${plot.x + plot.width}" y1="${y}" y2="${y}" stroke="#eceef0"/>`,
      `<text x="${plot.x - 5}" y="${y + 3.5}" text-anchor="end" fill="#464c54">${
        escapeXml(formatValue(tick, panel.unit, axis.step))
      }</text>`,
    );
  }
  for (const t of timeTicks(options.start, options.end)) {
    const x = round(toX(t));
    // A label at either end would run into the y axis' labels or out of the panel.
    if (x < plot.x + 24 || x > plot.x + plot.width - 24) continue;
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${plot.y}" y2="${plot.y + plot.height}" stroke="#f3f4f5"/>`,
      `<text x="${x}" y="${plot.y + plot.height + 14}" text-anchor="middle" fill="#464c54">${
        clockText(t)
      }</text>`,
    );
  }
  parts.push(
    `<line x1="${plot.x}" x2="${plot.x + plot.width}" y1="${plot.y + plot.height}" ` +
      `y2="${plot.y + plot.height}" stroke="#b7bbc0"/>`,
  );
  for (const series of drawn) {
    const path = linePath(series.points, options.step, toX, toY);
    if (path === "") continue;
    parts.push(
      `<path d="${path}" fill="none" stroke="${series.colour}" stroke-width="1.5" ` +
        `stroke-linejoin="round"/>`,
    );
  }

  const entries = [
    ...drawn.map((series) => ({ text: series.legend, colour: series.colour, missing: false })),
    ...missing.map((text) => ({ text: `${text}: no data`, colour: "#c7cacd", missing: true })),
  ];
  const legendTop = plot.y + plot.height + PLOT.bottom + 4;
  entries.slice(0, shownLegend).forEach((entry, i) => {
    const y = legendTop + i * PLOT.legendLine;
    const more = i === shownLegend - 1 && entries.length > shownLegend
      ? ` (and ${entries.length - shownLegend} more)`
      : "";
    parts.push(
      `<rect x="${box.x + 10}" y="${y - 3}" width="12" height="3" fill="${entry.colour}"/>`,
      `<text x="${box.x + 28}" y="${y + 1}" fill="${entry.missing ? "#8e9297" : "#202226"}"${
        entry.missing ? ' font-style="italic"' : ""
      }>${escapeXml(shorten(entry.text, 60) + more)}</text>`,
    );
  });
  parts.push("</g>");
  return parts.join("\n");
}

// Prometheus writes NaN and ±Inf as text; they are gaps in the line.
function finite(value: string): number | null {
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/** The SVG path of a series: segments joined only between points at most 1.5 steps apart. */
export function linePath(
  points: readonly [number, number | null][],
  step: number,
  toX: (t: number) => number,
  toY: (v: number) => number,
): string {
  const commands: string[] = [];
  let last: number | undefined;
  for (const [t, value] of points) {
    if (value === null) {
      last = undefined;
      continue;
    }
    const joined = last !== undefined && t - last <= step * 1.5;
    commands.push(`${joined ? "L" : "M"}${round(toX(t))},${round(toY(value))}`);
    last = t;
  }
  return commands.join("");
}

/** A y axis from 0 (or below) to a round number above `max`, with 3 to 6 ticks. */
export function niceAxis(
  min: number,
  max: number,
): { min: number; max: number; step: number; ticks: number[] } {
  if (max <= min) max = min + 1;
  const rough = (max - min) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= rough) ??
    10 * magnitude;
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let tick = low; tick <= high + step / 2; tick += step) ticks.push(round(tick, 12));
  return { min: low, max: high, step, ticks };
}

/** The y axis of a panel: ticks at round numbers of its unit (MiB, not 10^6 bytes). */
export function axisFor(unit: string, min: number, max: number): ReturnType<typeof niceAxis> {
  if (unit !== "bytes") return niceAxis(min, max);
  const scale = 1024 **
    Math.max(0, Math.floor(Math.log(Math.max(Math.abs(min), max, 1)) / Math.log(1024)));
  const axis = niceAxis(min / scale, max / scale);
  return {
    min: axis.min * scale,
    max: axis.max * scale,
    step: axis.step * scale,
    ticks: axis.ticks.map((tick) => tick * scale),
  };
}

/** A value in a Grafana unit, as an axis label. */
export function formatValue(value: number, unit: string, step = Math.abs(value)): string {
  if (value === 0) return "0";
  switch (unit) {
    case "s":
      if (Math.abs(value) < 1e-3) return `${trim(value * 1e6, step * 1e6)} µs`;
      if (Math.abs(value) < 1) return `${trim(value * 1e3, step * 1e3)} ms`;
      if (Math.abs(value) >= 120 && step >= 60) return `${trim(value / 60, step / 60)} min`;
      return `${trim(value, step)} s`;
    case "bytes": {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (i < units.length - 1 && Math.abs(value) >= 1024 ** (i + 1)) i++;
      return `${trim(value / 1024 ** i, step / 1024 ** i)} ${units[i]}`;
    }
    case "reqps":
      return `${short(value, step)} req/s`;
    case "ops":
      return `${short(value, step)}/s`;
    case "percentunit":
      return `${trim(value * 100, step * 100)}%`;
    default:
      return short(value, step);
  }
}

function short(value: number, step: number): string {
  if (Math.abs(value) >= 1e6) return `${trim(value / 1e6, step / 1e6)}M`;
  if (Math.abs(value) >= 1e3) return `${trim(value / 1e3, step / 1e3)}k`;
  return trim(value, step);
}

// Enough decimals to tell ticks `step` apart, no trailing zeros.
function trim(value: number, step: number): string {
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(Math.abs(step) || 1)) + 1));
  return String(Number(value.toFixed(decimals)));
}

/** Round times (UTC) for the x axis: about six between `start` and `end`. */
export function timeTicks(start: number, end: number): number[] {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  const step = steps.find((s) => (end - start) / s <= 6) ?? 86400;
  const ticks: number[] = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return ticks;
}

function clockText(t: number): string {
  return new Date(t * 1000).toISOString().slice(11, 19);
}

/** The metric names queries read (for a "no data" line), histogram suffixes dropped. */
export function metricNames(queries: readonly PanelQuery[]): string[] {
  const names = new Set<string>();
  for (const { expr } of queries) {
    for (const [name] of expr.matchAll(/\b(?:taskrunner|process|nodejs)_[a-z_]+\b/g)) {
      names.add(name.replace(/_(bucket|sum|count)$/, ""));
    }
  }
  return [...names];
}

function shorten(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

function round(value: number, digits = 1): number {
  return Number(value.toFixed(digits));
}

/** Text made safe for an SVG element or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
