/*
 * NAME
 *   metrics/histogram - a prom-client histogram whose values come from a BucketCounts
 * SYNOPSIS
 *   new CountedHistogram({ name, help, label, values, counts, registers })
 * DESCRIPTION
 *   prom-client's Histogram counts with observe(labels, value): a hash of the labels and a
 *   search of the buckets per call. tlsmgr counts on its request path into plain arrays
 *   (metrics/meter.ts BucketCounts) instead, and this histogram reads them when the registry
 *   is asked for its metrics: series i of the counts is labelled {label: values[i]}. Each
 *   series gives, in the text exposition,
 *     <name>_bucket{<label>="<value>",le="<bound>"} <observations <= bound>   (cumulative)
 *     <name>_bucket{<label>="<value>",le="+Inf"} <count>
 *     <name>_sum{<label>="<value>"} <sum>
 *     <name>_count{<label>="<value>"} <count>
 *   every series and bucket always, zero or not, so a series never appears mid-run.
 *   observe() and the other ways of changing a prom-client histogram are not used: they
 *   would not show (the counts are the only source).
 * SEE ALSO
 *   metrics/meter.ts, prom-client lib/histogram.js (the value objects its registry prints)
 */

import { Histogram, type Registry } from 'prom-client';
import type { BucketCounts } from './meter.js';

export interface CountedHistogramOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  /** The label that tells the series apart. */
  readonly label: L;
  /** The label's value for each series of `counts`. */
  readonly values: readonly string[];
  readonly counts: BucketCounts;
  readonly registers: Registry[];
}

/** One line of the exposition, as prom-client's registry reads it. */
export interface ExpositionValue {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
}

/** A metric as prom-client's registry reads it for the text exposition. */
export interface Exposition {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  readonly values: ExpositionValue[];
}

export class CountedHistogram<L extends string> extends Histogram<L> {
  private readonly source: CountedHistogramOptions<L>;

  constructor(opts: CountedHistogramOptions<L>) {
    super({ name: opts.name, help: opts.help, labelNames: [opts.label], buckets: [...opts.counts.bounds], registers: opts.registers });
    if (opts.values.length !== opts.counts.series) throw new Error(`${opts.name}: ${opts.values.length} label values for ${opts.counts.series} series`);
    this.source = opts;
  }

  /** The exposition values, in the order they are printed. */
  values(): ExpositionValue[] {
    const { name, label, values, counts } = this.source;
    const out: ExpositionValue[] = [];
    const line = (i: number, suffix: string, value: number, le?: string | number): ExpositionValue => ({
      labels: le === undefined ? { [label]: values[i] } : { [label]: values[i], le },
      sharedLabels: {},
      value,
      metricName: `${name}${suffix}`,
    });
    for (let i = 0; i < counts.series; i++) {
      counts.bounds.forEach((bound, b) => out.push(line(i, '_bucket', counts.cumulative(i, b), bound)));
      out.push(line(i, '_bucket', counts.totals[i], '+Inf'));
      out.push(line(i, '_sum', counts.sums[i]));
      out.push(line(i, '_count', counts.totals[i]));
    }
    return out;
  }

  /*
   * getForPromString - what prom-client's registry prints (it asks for this before get());
   * prom-client's own get() reads it too, so getMetricsAsJSON() agrees.
   */
  async getForPromString(): Promise<Exposition> {
    const { name, help } = this.source;
    return { name, help, type: 'histogram', aggregator: 'sum', values: this.values() };
  }
}
