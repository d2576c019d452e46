/**
 * The dashboard plotter's pure parts: the Grafana dashboard in examples/grafana/ parses, every
 * query names metrics the runner exposes (or that issue 19 adds), Grafana's variables are put
 * in, and a fixed Prometheus answer becomes the SVG it should (lines broken at gaps, "No data").
 *
 * @module
 */
import {
  axisFor,
  DashboardError,
  expandQuery,
  formatValue,
  legendOf,
  linePath,
  metricNames,
  type Panel,
  parseDashboard,
  parseQueryRange,
  rateInterval,
  renderSvg,
} from "../../scripts/dashboard/panels.ts";
import { RunnerMetrics } from "../../src/observability/metrics.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../helpers/assert.ts";

const DASHBOARD = new URL("../../examples/grafana/taskrunner-dashboard.json", import.meta.url);

/**
 * Series that issue 19 ("Operations II") adds to the runner on another branch. Once merged,
 * the runner exposes them and this list can be emptied.
 */
const ANNOUNCED: string[] = [];

async function dashboard() {
  return parseDashboard(JSON.parse(await Deno.readTextFile(DASHBOARD)));
}

Deno.test("the dashboard has the panels an operator asks for, each with queries", async () => {
  const { title, panels } = await dashboard();
  assertEquals(title, "taskrunner");
  const titles = panels.map((panel) => panel.title);
  for (
    const wanted of [
      "Throughput by status",
      "Failures by reason",
      "Saturation: running vs concurrency limit",
      "Queue wait",
      "Task duration",
      "Response publish latency",
      "Responses pending and held",
      "Broker connection",
      "Memory",
      "CPU",
      "Open file descriptors",
    ]
  ) assert(titles.includes(wanted), `missing panel ${wanted}`);
  for (const panel of panels) assert(panel.queries.length > 0, panel.title);
  // Reading order: row by row, left to right.
  const order = panels.map(({ gridPos }) => gridPos.y * 24 + gridPos.x);
  assertEquals(order, [...order].sort((a, b) => a - b));
});

Deno.test("every metric the dashboard reads is one the runner exposes or issue 19 adds", async () => {
  const exposed = new Set(
    [...(await new RunnerMetrics().text()).matchAll(/^# TYPE (\S+)/gm)].map((match) => match[1]),
  );
  const { panels } = await dashboard();
  for (const name of metricNames(panels.flatMap((panel) => panel.queries))) {
    assert(exposed.has(name) || ANNOUNCED.includes(name), `unknown metric ${name}`);
  }
});

Deno.test("every query is valid PromQL text once Grafana's variables are put in", async () => {
  const { panels } = await dashboard();
  const variables = { instance: "runner-1:9090", rateInterval: rateInterval(2, 1) };
  for (const { expr } of panels.flatMap((panel) => panel.queries)) {
    const query = expandQuery(expr, variables);
    assert(!query.includes("$"), query);
    // Brackets balance: a typo in the JSON would otherwise only show in Prometheus.
    for (const [open, close] of [["(", ")"], ["{", "}"], ["[", "]"]] as const) {
      assertEquals(query.split(open).length, query.split(close).length, query);
    }
  }
});

Deno.test("expandQuery puts in the instance and rate interval, and refuses other variables", () => {
  const variables = { instance: ".*", rateInterval: "4s" };
  assertEquals(
    expandQuery('rate(x{instance=~"$instance"}[$__rate_interval])', variables),
    'rate(x{instance=~".*"}[4s])',
  );
  assertEquals(expandQuery('y{instance=~"${instance}"}', variables), 'y{instance=~".*"}');
  const error = assertThrows(() => expandQuery('z{job="$job"}', variables), DashboardError);
  assertMatch(error.message, /Unknown variable \$job/);
});

Deno.test("rateInterval is Grafana's: four scrapes, or a step plus a scrape", () => {
  assertEquals(rateInterval(1, 1), "4s");
  assertEquals(rateInterval(30, 15), "60s");
  assertEquals(rateInterval(120, 15), "135s");
});

Deno.test("parseDashboard refuses what is not a dashboard with queries", () => {
  const refusal = (json: unknown) =>
    assertThrows(() => parseDashboard(json), DashboardError).message;
  assertMatch(refusal({ title: "x" }), /^Not a Grafana dashboard/);
  const panel = { type: "timeseries", title: "p", gridPos: { x: 0, y: 0, w: 8, h: 8 } };
  assertMatch(refusal({ title: "x", panels: [panel] }), /Panel "p" has no query/);
  assertMatch(
    refusal({ title: "x", panels: [{ ...panel, type: "text" }] }),
    /no time-series panel/,
  );
});

Deno.test("parseQueryRange reads a matrix and reports Prometheus' error", () => {
  const series = parseQueryRange({
    status: "success",
    data: { resultType: "matrix", result: [{ metric: { a: "1" }, values: [[10, "2"]] }] },
  });
  assertEquals(series, [{ metric: { a: "1" }, values: [[10, "2"]] }]);
  const error = assertThrows(
    () => parseQueryRange({ status: "error", errorType: "bad_data", error: "parse error at 3" }),
    DashboardError,
  );
  assertEquals(error.message, "parse error at 3");
});

Deno.test("legendOf fills Grafana's {{label}}, and shows the labels without a format", () => {
  assertEquals(legendOf("{{status}}", { status: "FAILED" }), "FAILED");
  assertEquals(legendOf("RSS {{ instance }}", { instance: "a:1" }), "RSS a:1");
  assertEquals(legendOf("", { __name__: "up", job: "j" }), 'up{job="j"}');
  assertEquals(legendOf("{{script}}", {}), "(no script)");
});

Deno.test("linePath joins points a step apart and breaks at gaps and NaN", () => {
  const path = linePath([[0, 1], [1, 2], [2, null], [3, 4], [10, 5]], 1, (t) => t * 10, (v) => v);
  assertEquals(path, "M0,1L10,2M30,4M100,5");
});

Deno.test("axes and values are in the panel's unit", () => {
  assertEquals(formatValue(0.0025, "s", 0.0005), "2.5 ms");
  assertEquals(formatValue(300, "s", 60), "5 min");
  assertEquals(formatValue(50 * 1024 * 1024, "bytes"), "50 MiB");
  assertEquals(formatValue(1500, "reqps", 500), "1.5k req/s");
  assertEquals(formatValue(0.5, "percentunit", 0.1), "50%");
  // Bytes get ticks at round MiB, not at round powers of ten.
  const axis = axisFor("bytes", 0, 140 * 1024 * 1024);
  assertEquals(axis.ticks.map((tick) => tick / 1024 / 1024), [0, 50, 100, 150]);
});

Deno.test("renderSvg draws a fixed query result, and 'No data' for a panel without series", () => {
  const panel = (title: string, expr: string, legendFormat: string, x: number): Panel => ({
    title,
    unit: "reqps",
    gridPos: { x, y: 0, w: 12, h: 8 },
    queries: [{ expr, legendFormat }],
  });
  const throughput = panel(
    "Throughput <by> status",
    "sum by (status) (rate(a[4s]))",
    "{{status}}",
    0,
  );
  const waiting = panel("Queue wait", "taskrunner_queue_wait_seconds_bucket", "p50", 12);
  const svg = renderSvg([
    {
      panel: throughput,
      data: [{
        query: throughput.queries[0]!,
        series: [
          { metric: { status: "SUCCESS" }, values: [[100, "10"], [101, "20"], [102, "NaN"]] },
          { metric: { status: "FAILED" }, values: [[100, "1"], [101, "2"]] },
        ],
      }],
    },
    { panel: waiting, data: [{ query: waiting.queries[0]!, series: [] }] },
  ], { start: 100, end: 102, step: 1, title: "fixed & small" });

  assertMatch(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="1440"/);
  assert(svg.trimEnd().endsWith("</svg>"));
  assert(svg.includes("fixed &#38; small"), "the title, escaped");
  assert(svg.includes("Throughput &#60;by&#62; status"), "the panel title, escaped");
  const paths = [...svg.matchAll(/<path d="([^"]+)" fill="none" stroke="([^"]+)"/g)];
  assertEquals(paths.length, 2);
  // Two joined points each; the NaN is left out. SUCCESS green, FAILED red, as in Grafana.
  for (const [, d] of paths) assertMatch(d!, /^M[\d.]+,[\d.]+L[\d.]+,[\d.]+$/);
  assertEquals(paths.map(([, , colour]) => colour), ["#56a64b", "#e02f44"]);
  assert(svg.includes(">SUCCESS</text>") && svg.includes(">FAILED</text>"), "legend");
  assert(svg.includes(">20 req/s</text>"), "the y axis reaches the highest value");
  assert(svg.includes('class="no-data">No data</text>'), "the empty panel says so");
  assert(svg.includes("no series: taskrunner_queue_wait_seconds"), "and names its metric");
});

Deno.test("renderSvg shows Prometheus' error in place of the panel", () => {
  const panel: Panel = {
    title: "p",
    unit: "short",
    gridPos: { x: 0, y: 0, w: 24, h: 8 },
    queries: [{ expr: "bad(", legendFormat: "" }],
  };
  const svg = renderSvg(
    [{ panel, data: [{ query: panel.queries[0]!, series: [], error: "parse error" }] }],
    { start: 0, end: 60, step: 1, title: "t" },
  );
  assert(svg.includes('class="no-data">parse error</text>'));
});
