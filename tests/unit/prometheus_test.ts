import { assertEquals, assertMatch, assertThrows } from "../helpers/assert.ts";
import { parsePrometheus, sampleValue } from "../helpers/ops_harness.ts";
import {
  Counter,
  formatNumber,
  Gauge,
  Histogram,
  Registry,
} from "../../src/observability/prometheus.ts";

Deno.test("Registry renders HELP and TYPE once per metric, then its samples", async () => {
  const registry = new Registry();
  const counter = registry.register(
    new Counter({ name: "jobs_total", help: "Jobs done.", labelNames: ["kind"] }),
  );
  registry.register(new Gauge({ name: "queue_depth", help: "Waiting jobs." })).set(3);
  counter.inc({ kind: "a" });
  counter.inc({ kind: "b" }, 2);
  counter.inc({ kind: "a" });

  assertEquals(
    await registry.metrics(),
    [
      "# HELP jobs_total Jobs done.",
      "# TYPE jobs_total counter",
      'jobs_total{kind="a"} 2',
      'jobs_total{kind="b"} 2',
      "# HELP queue_depth Waiting jobs.",
      "# TYPE queue_depth gauge",
      "queue_depth 3",
      "",
    ].join("\n"),
  );
  assertEquals(registry.contentType, "text/plain; version=0.0.4; charset=utf-8");
});

Deno.test("Registry escapes label values and help text", async () => {
  const registry = new Registry();
  registry.register(
    new Gauge({ name: "g", help: 'Back\\slash, "quotes" and\nnewline.', labelNames: ["path"] }),
  ).set({ path: 'C:\\dir\n"x"' }, 1);

  const text = await registry.metrics();
  assertEquals(
    text.split("\n").slice(0, 3),
    [
      '# HELP g Back\\\\slash, "quotes" and\\nnewline.',
      "# TYPE g gauge",
      'g{path="C:\\\\dir\\n\\"x\\""} 1',
    ],
  );
});

Deno.test("formatNumber() spells infinities and NaN as Prometheus does", () => {
  assertEquals(formatNumber(Infinity), "+Inf");
  assertEquals(formatNumber(-Infinity), "-Inf");
  assertEquals(formatNumber(NaN), "NaN");
  assertEquals(formatNumber(0.25), "0.25");
  assertEquals(formatNumber(-3), "-3");
});

Deno.test("Histogram exposes cumulative buckets, +Inf, _sum and _count", async (t) => {
  await t.step("without labels, every bucket is there from the start", async () => {
    const registry = new Registry();
    const histogram = registry.register(
      new Histogram({ name: "latency_seconds", help: "Latency.", buckets: [0.1, 1, 10] }),
    );
    assertEquals(
      (await registry.metrics()).split("\n").filter((line) => !line.startsWith("#")),
      [
        'latency_seconds_bucket{le="0.1"} 0',
        'latency_seconds_bucket{le="1"} 0',
        'latency_seconds_bucket{le="10"} 0',
        'latency_seconds_bucket{le="+Inf"} 0',
        "latency_seconds_sum 0",
        "latency_seconds_count 0",
        "",
      ],
    );

    for (const value of [0.05, 0.1, 0.5, 5, 50]) histogram.observe(value);
    const samples = parsePrometheus(await registry.metrics());
    assertEquals(sampleValue(samples, "latency_seconds_bucket", { le: "0.1" }), 2);
    assertEquals(sampleValue(samples, "latency_seconds_bucket", { le: "1" }), 3);
    assertEquals(sampleValue(samples, "latency_seconds_bucket", { le: "10" }), 4);
    assertEquals(sampleValue(samples, "latency_seconds_bucket", { le: "+Inf" }), 5);
    assertEquals(sampleValue(samples, "latency_seconds_sum"), 55.65);
    assertEquals(sampleValue(samples, "latency_seconds_count"), 5);
  });

  await t.step("with labels, each series has its own buckets", async () => {
    const registry = new Registry();
    const histogram = registry.register(
      new Histogram({ name: "d", help: "D.", labelNames: ["status"], buckets: [1] }),
    );
    assertEquals(await registry.metrics(), "# HELP d D.\n# TYPE d histogram\n");
    histogram.observe({ status: "ok" }, 0.5);
    histogram.observe({ status: "ok" }, 2);
    histogram.observe({ status: "bad" }, 3);
    const samples = parsePrometheus(await registry.metrics());
    assertEquals(sampleValue(samples, "d_bucket", { status: "ok", le: "1" }), 1);
    assertEquals(sampleValue(samples, "d_bucket", { status: "ok", le: "+Inf" }), 2);
    assertEquals(sampleValue(samples, "d_bucket", { status: "bad", le: "1" }), 0);
    assertEquals(sampleValue(samples, "d_count", { status: "bad" }), 1);
    assertEquals(sampleValue(samples, "d_sum", { status: "bad" }), 3);
  });

  await t.step("buckets must ascend", () => {
    assertThrows(() => new Histogram({ name: "h", help: "H.", buckets: [1, 0.5] }), RangeError);
  });
});

Deno.test("Gauge and Counter read live values at scrape time", async () => {
  const registry = new Registry();
  let live = 7;
  let total = 2;
  registry.register(new Gauge({ name: "live", help: "Live.", collect: () => live }));
  registry.register(new Counter({ name: "seen_total", help: "Seen.", collect: () => total }));
  let samples = parsePrometheus(await registry.metrics());
  assertEquals(sampleValue(samples, "live"), 7);
  assertEquals(sampleValue(samples, "seen_total"), 2);

  live = 4;
  total = 1; // a counter never goes down
  samples = parsePrometheus(await registry.metrics());
  assertEquals(sampleValue(samples, "live"), 4);
  assertEquals(sampleValue(samples, "seen_total"), 2);
});

Deno.test("Gauge sets each series of its labels", async () => {
  const registry = new Registry();
  const gauge = registry.register(new Gauge({ name: "g", help: "G.", labelNames: ["k"] }));
  gauge.set({ k: "x" }, 5);
  gauge.set({ k: "y" }, 2);
  gauge.set({ k: "x" }, 3);
  const samples = parsePrometheus(await registry.metrics());
  assertEquals(sampleValue(samples, "g", { k: "x" }), 3);
  assertEquals(sampleValue(samples, "g", { k: "y" }), 2);
});

Deno.test("metrics refuse wrong labels, negative increments and duplicate names", () => {
  const counter = new Counter({ name: "c_total", help: "C.", labelNames: ["a"] });
  assertMatch(assertThrows(() => counter.inc(), TypeError).message, /^Wrong labels/);
  assertThrows(() => counter.inc({ b: "1" } as never), TypeError);
  assertThrows(() => counter.inc({ a: "1" }, -1), RangeError);
  assertThrows(() => new Counter({ name: "bad-name", help: "B." }), TypeError);
  assertThrows(() => new Gauge({ name: "g", help: "G.", labelNames: ["le"] }), TypeError);
  const registry = new Registry();
  registry.register(counter);
  assertThrows(() => registry.register(counter), TypeError);
});
