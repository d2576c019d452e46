/**
 * A minimal Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format 0.0.4. The runner uses it instead of prom-client, whose loading alone
 * costs ~170 ms of start-up.
 *
 * @module
 */

/** Values of a metric's labels, one per label name. */
export type LabelValues<L extends string> = Readonly<Record<L, string>>;

/** One sample line: full name (with `_bucket`, `_sum` or `_count` for histograms), labels, value. */
export interface Sample {
  name: string;
  labels: readonly (readonly [string, string])[];
  value: number;
}

/** What a {@linkcode Registry} renders: one metric family. */
export interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  /** The samples at scrape time. */
  collect(): Promise<Sample[]>;
}

/** Options shared by every metric. */
export interface MetricOptions<L extends string> {
  /** Metric name, such as `taskrunner_tasks_started_total`. */
  name: string;
  /** One line of help text. */
  help: string;
  /** Label names; each series gives a value for each of them. */
  labelNames?: readonly L[];
}

/** Options of a counter or gauge that may read a live value when scraped. */
export interface LiveMetricOptions<L extends string> extends MetricOptions<L> {
  /**
   * Reads the value at scrape time (metrics without labels only); `undefined` keeps the last
   * one. For a counter it is the total so far, never less than before.
   */
  collect?: () => number | undefined | Promise<number | undefined>;
}

/** Options of a {@linkcode Histogram}. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, ascending; `+Inf` is added. Defaults to {@linkcode DEFAULT_BUCKETS}. */
  buckets?: readonly number[];
}

/** Prometheus' default histogram buckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The series of one metric, by label values; a metric without labels has exactly one. */
class SeriesMap<L extends string, T> {
  readonly #metric: string;
  readonly #labelNames: readonly L[];
  readonly #make: () => T;
  readonly #series = new Map<string, { labels: [string, string][]; state: T }>();

  constructor(options: MetricOptions<L>, make: () => T) {
    if (!NAME.test(options.name)) throw new TypeError(`Invalid metric name "${options.name}"`);
    const labelNames = options.labelNames ?? [];
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
        throw new TypeError(`Invalid label name "${label}" of metric "${options.name}"`);
      }
    }
    this.#metric = options.name;
    this.#labelNames = labelNames;
    this.#make = make;
    if (labelNames.length === 0) this.get(undefined);
  }

  get(values: LabelValues<L> | undefined): T {
    const given = Object.keys(values ?? {});
    if (
      given.length !== this.#labelNames.length ||
      given.some((name) => !this.#labelNames.includes(name as L))
    ) {
      throw new TypeError(
        `Wrong labels for metric "${this.#metric}": expected [${this.#labelNames}], got [${given}]`,
      );
    }
    const labels = this.#labelNames.map((name): [string, string] => [name, values![name]]);
    const key = JSON.stringify(labels);
    let series = this.#series.get(key);
    if (!series) this.#series.set(key, series = { labels, state: this.#make() });
    return series.state;
  }

  entries(): Iterable<{ labels: [string, string][]; state: T }> {
    return this.#series.values();
  }
}

// Overloaded `(value)` / `(labels, value)` arguments.
function split<L extends string>(
  first: number | LabelValues<L> | undefined,
  second: number | undefined,
  fallback: number,
): [LabelValues<L> | undefined, number] {
  return typeof first === "object" ? [first, second ?? fallback] : [undefined, first ?? fallback];
}

/**
 * What a counter and a gauge share: one number per series, and for a metric without labels an
 * optional callback read at scrape time, whose value `merge` folds into the current one.
 */
abstract class LiveMetric<L extends string> implements Metric {
  readonly name: string;
  readonly help: string;
  abstract readonly type: "counter" | "gauge";
  readonly #series: SeriesMap<L, number[]>;
  readonly #collect: LiveMetricOptions<L>["collect"];
  readonly #merge: (current: number, live: number) => number;

  constructor(options: LiveMetricOptions<L>, merge: (current: number, live: number) => number) {
    if (options.collect && options.labelNames?.length) {
      throw new TypeError(
        `Metric "${options.name}" has labels, so it cannot have a collect callback`,
      );
    }
    this.name = options.name;
    this.help = options.help;
    this.#series = new SeriesMap<L, number[]>(options, () => [0]);
    this.#collect = options.collect;
    this.#merge = merge;
  }

  /** Changes the value of the series of `labels` to what `change` makes of it. */
  protected update(labels: LabelValues<L> | undefined, change: (value: number) => number): void {
    const state = this.#series.get(labels);
    state[0] = change(state[0]!);
  }

  /** The samples at scrape time, after reading the live value, if any. */
  async collect(): Promise<Sample[]> {
    if (this.#collect) {
      const live = await this.#collect();
      if (live !== undefined) this.update(undefined, (current) => this.#merge(current, live));
    }
    return [...this.#series.entries()].map(({ labels, state }) => ({
      name: this.name,
      labels,
      value: state[0]!,
    }));
  }
}

/** A value that only goes up, such as requests handled. */
export class Counter<L extends string = never> extends LiveMetric<L> {
  override readonly type = "counter";

  /** @param options name, help, label names, and optionally a live total */
  constructor(options: LiveMetricOptions<L>) {
    // A live total lower than the count so far is stale: a counter never goes down.
    super(options, (current, live) => live > current ? live : current);
  }

  /** Adds `value` (default 1, never negative) to the series of `labels`. */
  inc(value?: number): void;
  inc(labels: LabelValues<L>, value?: number): void;
  inc(first?: number | LabelValues<L>, second?: number): void {
    const [labels, value] = split(first, second, 1);
    if (!(value >= 0)) throw new RangeError(`Cannot add ${value} to counter "${this.name}"`);
    this.update(labels, (current) => current + value);
  }
}

/** A value that goes up and down, set or read live when scraped. */
export class Gauge<L extends string = never> extends LiveMetric<L> {
  override readonly type = "gauge";

  /** @param options name, help, label names, and optionally a live value */
  constructor(options: LiveMetricOptions<L>) {
    super(options, (_current, live) => live);
  }

  /** Sets the series of `labels` to `value`. */
  set(value: number): void;
  set(labels: LabelValues<L>, value: number): void;
  set(first: number | LabelValues<L>, second?: number): void {
    const [labels, value] = split(first, second, NaN);
    this.update(labels, () => value);
  }
}

interface HistogramState {
  /** Observations per bucket, not cumulative; the last one is `+Inf`. */
  counts: number[];
  sum: number;
}

/** Observations counted in buckets, such as durations; exposed as cumulative buckets. */
export class Histogram<L extends string = never> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly #buckets: readonly number[];
  readonly #series: SeriesMap<L, HistogramState>;

  /** @param options name, help, label names and bucket upper bounds */
  constructor(options: HistogramOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    const buckets = (options.buckets ?? DEFAULT_BUCKETS).filter((bound) => bound !== Infinity);
    if (buckets.some((bound, i) => Number.isNaN(bound) || (i > 0 && bound <= buckets[i - 1]!))) {
      throw new RangeError(`Buckets of histogram "${this.name}" must ascend: [${buckets}]`);
    }
    this.#buckets = buckets;
    this.#series = new SeriesMap(
      options,
      () => ({ counts: buckets.map(() => 0).concat(0), sum: 0 }),
    );
  }

  /** Records one observation of `value` in the series of `labels`. */
  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
  observe(first: number | LabelValues<L>, second?: number): void {
    const [labels, value] = split(first, second, NaN);
    const state = this.#series.get(labels);
    const index = this.#buckets.findIndex((bound) => value <= bound);
    state.counts[index === -1 ? this.#buckets.length : index]!++;
    state.sum += value;
  }

  /** The samples at scrape time: cumulative `_bucket`s up to `+Inf`, `_sum` and `_count`. */
  collect(): Promise<Sample[]> {
    const samples: Sample[] = [];
    for (const { labels, state } of this.#series.entries()) {
      let cumulative = 0;
      state.counts.forEach((count, i) => {
        cumulative += count;
        const le = formatNumber(this.#buckets[i] ?? Infinity);
        samples.push({
          name: `${this.name}_bucket`,
          labels: [...labels, ["le", le]],
          value: cumulative,
        });
      });
      samples.push({ name: `${this.name}_sum`, labels, value: state.sum });
      samples.push({ name: `${this.name}_count`, labels, value: cumulative });
    }
    return Promise.resolve(samples);
  }
}

/** Spells a sample value as Prometheus does: `+Inf`, `-Inf`, `NaN`, or the number. */
export function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabelValue(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/**
 * A set of metrics rendered together for `GET /metrics`.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * const requests = registry.register(
 *   new Counter({ name: "requests_total", help: "Requests.", labelNames: ["code"] }),
 * );
 * requests.inc({ code: "200" });
 * const body = await registry.metrics(); // served with `registry.contentType`
 * ```
 */
export class Registry {
  /** The content type of {@linkcode Registry.metrics}: text format 0.0.4. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics = new Map<string, Metric>();

  /** Adds `metric` (its name must be new here) and returns it. */
  register<M extends Metric>(metric: M): M {
    if (this.#metrics.has(metric.name)) {
      throw new TypeError(`Metric "${metric.name}" is already registered`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Every metric in the text exposition format, in the order they were registered. */
  async metrics(): Promise<string> {
    const metrics = [...this.#metrics.values()];
    const collected = await Promise.all(metrics.map((metric) => metric.collect()));
    const lines: string[] = [];
    metrics.forEach((metric, i) => {
      lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
      lines.push(`# TYPE ${metric.name} ${metric.type}`);
      for (const sample of collected[i]!) {
        const labels = sample.labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`);
        const braces = labels.length > 0 ? `{${labels.join(",")}}` : "";
        lines.push(`${sample.name}${braces} ${formatNumber(sample.value)}`);
      }
    });
    return lines.join("\n") + "\n";
  }
}
