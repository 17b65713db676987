import type { Registry } from "prom-client";

/**
 * Counters and histograms for what every proxied call reports (src/ops/metrics.ts reads them from its
 * audit events). prom-client's own copy a call's labels into an object, check them and hash them into a
 * string on every observation: four times per call, ~2 µs in a tight loop and ~6 µs of a loaded broker's
 * CPU per call. These find a label set's series through one small map per label, and give the registry
 * the same samples (the text format prom-client writes) when /metrics is read.
 */

/** One label set's counts: a counter's in `count`; a histogram's also in `sum` and `buckets` (not cumulative). */
type Series = { labels: Record<string, string>; count: number; sum: number; buckets: number[] };

/** What the registry reads of a metric (prom-client's `MetricObjectWithValues`). */
type Sample = { value: number; labels: Record<string, string | number>; metricName?: string };

/** The series of each label set seen, found by their values in labelNames' order, and listed in the order first seen. */
class SeriesByLabels {
  #root = new Map<string, unknown>();
  #seen: Series[] = [];

  constructor(
    private readonly labelNames: readonly string[],
    private readonly bucketCount: number,
  ) {}

  get(values: readonly string[]): Series {
    let level = this.#root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(values[i]!, (next = new Map()));
      level = next;
    }
    let series = level.get(values[last]!) as Series | undefined;
    if (series === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]!));
      series = { labels, count: 0, sum: 0, buckets: new Array<number>(this.bucketCount).fill(0) };
      level.set(values[last]!, series);
      this.#seen.push(series);
    }
    return series;
  }

  all(): readonly Series[] {
    return this.#seen;
  }

  clear(): void {
    this.#root = new Map();
    this.#seen = [];
  }
}

/** What the two kinds share: the name and help the registry shows, their series, and joining the registry. */
abstract class CallMetric {
  readonly aggregator = "sum";
  protected readonly series: SeriesByLabels;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    bucketCount: number,
    registry: Registry,
  ) {
    this.series = new SeriesByLabels(labelNames, bucketCount);
    // The registry reads a metric through get() only: these have what it reads, not prom-client's class.
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  reset(): void {
    this.series.clear();
  }
}

/** A counter by label values. */
export class CallCounter extends CallMetric {
  readonly type = "counter";

  constructor(name: string, help: string, labelNames: readonly string[], registry: Registry) {
    super(name, help, labelNames, 0, registry);
  }

  /** Adds one under the label values given in labelNames' order. */
  inc(values: readonly string[]): void {
    this.series.get(values).count++;
  }

  async get(): Promise<{ name: string; help: string; type: "counter"; aggregator: "sum"; values: Sample[] }> {
    const values = this.series.all().map((s): Sample => ({ value: s.count, labels: s.labels }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A histogram by label values, with the buckets' upper bounds given (and +Inf). */
export class CallHistogram extends CallMetric {
  readonly type = "histogram";

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, upperBounds.length, registry);
  }

  /** One observation of `value` under the label values given in labelNames' order. */
  observe(values: readonly string[], value: number): void {
    const series = this.series.get(values);
    series.count++;
    series.sum += value;
    const bucket = this.upperBounds.findIndex((bound) => value <= bound);
    if (bucket !== -1) series.buckets[bucket]!++;
  }

  async get(): Promise<{ name: string; help: string; type: "histogram"; aggregator: "sum"; values: Sample[] }> {
    const values: Sample[] = [];
    for (const s of this.series.all()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, i) => {
        cumulative += s.buckets[i]!;
        values.push({ value: cumulative, labels: { le: bound, ...s.labels }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: s.count, labels: { le: "+Inf", ...s.labels }, metricName: `${this.name}_bucket` });
      values.push({ value: s.sum, labels: s.labels, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: s.labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
