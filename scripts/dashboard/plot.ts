/**
 * Plots the panels of the Grafana dashboard (examples/grafana/taskrunner-dashboard.json) from a
 * Prometheus server's query API, as one SVG grid, without Grafana. The queries are read from the
 * dashboard file itself, so the picture shows exactly what the dashboard would.
 *
 *     deno run --allow-net --allow-read --allow-write scripts/dashboard/plot.ts \
 *       --prometheus http://127.0.0.1:9090 --start 2026-12-06T02:41:00Z --end 2026-12-06T02:50:00Z \
 *       --scrape-interval 1 --out docs/dashboard.svg
 *
 * Options: `--prometheus <url>` (required); `--start`/`--end` (RFC 3339 or Unix seconds;
 * `--end` defaults to now) or `--last <seconds>`; `--step <seconds>` (default: the range / 240,
 * at least the scrape interval); `--scrape-interval <seconds>` (default 15: sets
 * `$__rate_interval` as Grafana does); `--instance <regex>` (default `.*`, all runners);
 * `--dashboard <file>`; `--out <file>` (default: stdout); `--title <text>`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  DashboardError,
  expandQuery,
  type PanelData,
  parseDashboard,
  parseQueryRange,
  rateInterval,
  renderSvg,
} from "./panels.ts";

const DEFAULT_DASHBOARD = new URL(
  "../../examples/grafana/taskrunner-dashboard.json",
  import.meta.url,
);

function usage(): never {
  console.error(
    "Usage: plot.ts --prometheus <url> (--start <time> [--end <time>] | --last <seconds>)\n" +
      "  [--step <seconds>] [--scrape-interval <seconds>] [--instance <regex>]\n" +
      "  [--dashboard <file>] [--out <file.svg>] [--title <text>]",
  );
  Deno.exit(2);
}

// RFC 3339 or Unix seconds, as Prometheus' API takes them.
function timeOf(text: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Date.parse(text) / 1000;
  if (!Number.isFinite(seconds)) throw new DashboardError(`Not a time: ${text}`);
  return seconds;
}

function positive(text: string, name: string): number {
  const value = Number(text);
  if (!(value > 0)) throw new DashboardError(`--${name} must be a positive number of seconds`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      prometheus: { type: "string" },
      start: { type: "string" },
      end: { type: "string" },
      last: { type: "string" },
      step: { type: "string" },
      "scrape-interval": { type: "string", default: "15" },
      instance: { type: "string", default: ".*" },
      dashboard: { type: "string" },
      out: { type: "string" },
      title: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.prometheus || (!values.start && !values.last)) usage();
  const end = values.end ? timeOf(values.end) : Date.now() / 1000;
  const start = values.start ? timeOf(values.start) : end - positive(values.last ?? "", "last");
  if (!(end > start)) throw new DashboardError("--end must be after --start");
  const scrape = positive(values["scrape-interval"], "scrape-interval");
  const step = values.step
    ? positive(values.step, "step")
    : Math.max(scrape, Math.ceil((end - start) / 240));
  const variables = { instance: values.instance, rateInterval: rateInterval(step, scrape) };

  const file = values.dashboard ?? DEFAULT_DASHBOARD;
  const dashboard = parseDashboard(JSON.parse(await Deno.readTextFile(file)));
  const api = new URL("api/v1/query_range", values.prometheus.replace(/\/?$/, "/"));
  const panels: PanelData[] = [];
  for (const panel of dashboard.panels) {
    const data = [];
    for (const query of panel.queries) {
      const params = new URLSearchParams({
        query: expandQuery(query.expr, variables),
        start: String(start),
        end: String(end),
        step: String(step),
      });
      try {
        const response = await fetch(api, { method: "POST", body: params });
        data.push({ query, series: parseQueryRange(await response.json()) });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        data.push({ query, series: [], error: message });
        console.error(`${panel.title}: ${message}`);
      }
    }
    panels.push({ panel, data });
  }

  const title = values.title ??
    `${dashboard.title}: the dashboard's panels from ${values.prometheus}`;
  const svg = renderSvg(panels, { start, end, step, title });
  if (values.out) await Deno.writeTextFile(values.out, svg);
  else await Deno.stdout.write(new TextEncoder().encode(svg));
  const empty = panels.filter(({ data }) => data.every((query) => query.series.length === 0));
  console.error(
    `${panels.length} panels, ${empty.length} without data` +
      (empty.length ? `: ${empty.map(({ panel }) => panel.title).join("; ")}` : ""),
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof DashboardError || error instanceof SyntaxError)) throw error;
    console.error(error.message);
    Deno.exit(1);
  }
}
