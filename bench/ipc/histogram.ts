/**
 * A high-dynamic-range histogram of nanosecond values (the HdrHistogram scheme): exact below 2048, then 1024
 * linear sub-buckets per power of two, i.e. three significant digits (≤ 0.1% error) from 1 ns to ~69 s.
 * Recording is an index computation and an increment; percentiles walk the counts.
 */
const SUB_BITS = 10;
const SUB = 1 << SUB_BITS; // 1024 sub-buckets per power of two above the linear range
const LINEAR = SUB * 2; // values below 2048 are counted exactly
const MAX_EXP = 36 - SUB_BITS - 1;

export class Histogram {
  readonly #counts = new Float64Array(LINEAR + MAX_EXP * SUB);
  #total = 0;
  #min = Infinity;
  #max = 0;

  /** Record one value in ns (negative values count as 0; fractions are rounded). */
  record(ns: number): void {
    const v = ns <= 0 ? 0 : Math.round(ns);
    this.#counts[Histogram.index(v)]! += 1;
    this.#total++;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /** Add every value recorded in `other`. */
  add(other: Histogram): this {
    const c = this.#counts;
    const o = other.#counts;
    for (let i = 0; i < c.length; i++) c[i]! += o[i]!;
    this.#total += other.#total;
    if (other.#total) {
      this.#min = Math.min(this.#min, other.#min);
      this.#max = Math.max(this.#max, other.#max);
    }
    return this;
  }

  get count(): number { return this.#total; }
  get min(): number { return this.#total ? this.#min : 0; }
  get max(): number { return this.#max; }

  static index(v: number): number {
    if (v < LINEAR) return v;
    const e = Math.min(Math.floor(Math.log2(v)) - SUB_BITS, MAX_EXP);
    const sub = Math.min(Math.floor(v / 2 ** e), LINEAR - 1);
    return LINEAR + (e - 1) * SUB + (sub - SUB);
  }

  /** The middle of the bucket at index i (its values are within ±0.05% of it). */
  static valueAt(i: number): number {
    if (i < LINEAR) return i;
    const e = Math.floor((i - LINEAR) / SUB) + 1;
    const sub = ((i - LINEAR) % SUB) + SUB;
    return sub * 2 ** e + 2 ** (e - 1);
  }

  /** The value at percentile p (0–100): the smallest bucket with at least p% of samples at or below it. */
  percentile(p: number): number {
    if (this.#total === 0) return 0;
    const want = Math.max(1, Math.ceil((p * this.#total) / 100));
    let seen = 0;
    const c = this.#counts;
    for (let i = 0; i < c.length; i++) {
      seen += c[i]!;
      if (seen >= want) return Math.min(Histogram.valueAt(i), this.#max);
    }
    return this.#max;
  }
}
