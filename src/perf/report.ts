/**
 * Results of `kbypass perf`, computed and printed as linux-rdma/perftest does (src/perftest_parameters.c
 * `print_report_lat`, `print_report_bw`, `print_full_bw_report`, `ctx_print_test_info`; the formats in
 * src/perftest_parameters.h `RESULT_LINE`, `RESULT_FMT_LAT`, `REPORT_FMT_LAT`, `RESULT_FMT`, `REPORT_FMT`).
 *
 * Latency (`print_report_lat`): the n per-iteration samples are sorted and the largest `LAT_MEASURE_TAIL` = 2 are
 * set aside (m = n − 2). Over the sorted array s: t_min = s[0]; t_max = s[m] (so the single largest sample is
 * never shown); t_typical = median of s[0..m−1]; t_avg and t_stdev (population, ÷ m) over s[0..m−1];
 * 99% = s[ceil(m·0.99)]; 99.9% = s[ceil(m·0.999)]. send_lat and write_lat are ping-pongs and report half the
 * round trip; read_lat and atomic_lat report the whole operation (perftest's `rtt_factor`: 1 for READ and ATOMIC,
 * 2 otherwise). One deliberate difference: perftest accumulates the variance in `int`s (each deviation truncated
 * to whole microseconds), which makes its t_stdev 0 for sub-microsecond spreads; here the deviations are exact.
 *
 * Bandwidth (`print_report_bw`): average = bytes · iterations / (last completion − first post); the message rate
 * is iterations / that time, in millions per second; the peak is bytes / the smallest average time per message
 * over any run of consecutive messages, from the post of message i to the completion of message j — not the
 * fastest single message (see {@link peakMessageNs}). MiB = 2^20 bytes. Without a peak (perftest's `-N`, `-D`,
 * or more than 20000 iterations) the peak column prints 0, as in perftest.
 */
import { invalidArgValue, outOfRange } from '../errors';
import { isLatencyTest, type AtomicType, type PerfTest } from './args';

/** perftest's `RESULT_LINE`: the dashed separator (87 dashes, no newline). */
export const RESULT_LINE = '-'.repeat(87);

/** perftest's `LAT_MEASURE_TAIL`: how many of the largest latency samples are left out of the statistics. */
export const LAT_MEASURE_TAIL = 2;

const MIB = 1024 * 1024;

/** One line of a latency table; times in microseconds. */
export interface LatencyRow {
  /** Message size in bytes. */
  readonly bytes: number;
  /** Iterations run. */
  readonly iterations: number;
  readonly t_min_us: number;
  /** The second largest sample (perftest's `delta[measure_cnt]`). */
  readonly t_max_us: number;
  /** The median. */
  readonly t_typical_us: number;
  readonly t_avg_us: number;
  readonly t_stdev_us: number;
  readonly p99_us: number;
  readonly p999_us: number;
}

/** One line of a bandwidth table. */
export interface BwRow {
  /** Message size in bytes. */
  readonly bytes: number;
  /** Messages sent. */
  readonly iterations: number;
  /** MiB/s at the best sustained rate (0 when not measured). */
  readonly bw_peak_mib_s: number;
  /** MiB/s over the whole run. */
  readonly bw_avg_mib_s: number;
  /** Millions of messages per second over the whole run. */
  readonly msg_rate_mpps: number;
}

/** What the table headers and the JSON report say about the run. {@link PerfOptions} fits. */
export interface ReportInfo {
  readonly test: PerfTest;
  readonly device: string;
  /** Printed in the banner when given (perftest prints it on the client). */
  readonly txDepth?: number;
  /** Printed in the banner of bandwidth tests when given. */
  readonly cqMod?: number;
  /** -e: the banner says the loops sleep on CQ events. */
  readonly events?: boolean;
  /** Named in the atomic_lat title; default FETCH_AND_ADD. */
  readonly atomicType?: AtomicType;
}

/** Whether `test` reports half the measured round trip (perftest's `rtt_factor` 2): send_lat and write_lat. */
export function halvesRoundTrip(test: PerfTest): boolean {
  return test === 'send_lat' || test === 'write_lat';
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value)) throw invalidArgValue(name, value, 'must be a whole number');
  if (value < min) throw outOfRange(name, `>= ${min}`, value);
}

function checkPositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw outOfRange(name, 'a finite number > 0', value);
}

/** A sorted copy of the samples, checked: at least `LAT_MEASURE_TAIL + 1`, each finite and >= 0. */
function sortedCopy(samplesNs: ArrayLike<number>): Float64Array {
  if (samplesNs.length < LAT_MEASURE_TAIL + 1) {
    throw outOfRange('samplesNs.length', `>= ${LAT_MEASURE_TAIL + 1}`, samplesNs.length);
  }
  const sorted = Float64Array.from(samplesNs);
  for (const v of sorted) {
    if (!(Number.isFinite(v) && v >= 0)) throw invalidArgValue('samplesNs', v, 'must hold finite times >= 0');
  }
  return sorted.sort();
}

/** perftest's `get_median` over the first `m` sorted values. */
function median(s: Float64Array, m: number): number {
  const at = (i: number): number => s[i] as number;
  return (m - 1) % 2 !== 0 ? (at(m / 2) + at(m / 2 - 1)) / 2 : at((m - 1) / 2);
}

/**
 * A latency row from per-iteration times, as perftest's `print_report_lat` computes it (see the module comment).
 * @param bytes message size.
 * @param samplesNs one measured time per iteration, in nanoseconds (the round trip for the ping-pong tests); at
 *   least 3. Not modified.
 * @param halve report half of each time: true for send_lat and write_lat ({@link halvesRoundTrip}).
 * @param iterations the iterations column; default `samplesNs.length`.
 */
export function latencyRow(bytes: number, samplesNs: ArrayLike<number>, halve: boolean, iterations = samplesNs.length): LatencyRow {
  checkCount('bytes', bytes, 0);
  checkCount('iterations', iterations, 1);
  const s = sortedCopy(samplesNs);
  const scale = halve ? 2000 : 1000; // ns -> µs, halved for the ping-pongs
  const us = (i: number): number => (s[i] as number) / scale;
  const m = s.length - LAT_MEASURE_TAIL;
  let sum = 0;
  for (let i = 0; i < m; i++) sum += us(i);
  const avg = sum / m;
  let squares = 0;
  for (let i = 0; i < m; i++) squares += (avg - us(i)) ** 2;
  return {
    bytes,
    iterations,
    t_min_us: us(0),
    t_max_us: us(m),
    t_typical_us: median(s, m) / scale,
    t_avg_us: avg,
    t_stdev_us: Math.sqrt(squares / m),
    p99_us: us(Math.ceil(m * 0.99)),
    p999_us: us(Math.ceil(m * 0.999)),
  };
}

/**
 * perftest's peak measure: the smallest average time per message, (completed[j] − posted[i]) / (j − i + 1), over
 * the windows perftest tries — i every `postList` messages, j at each signalled completion (every `cqMod`-th
 * message, and the last one). Quadratic in the count, which is why perftest skips it above 20000 iterations.
 * @param postedNs when each message was posted, one per message.
 * @param completedNs when each message's completion was seen; only the signalled entries (index k·cqMod − 1 and
 *   the last) are read.
 * @returns nanoseconds per message; pass it to {@link bwRow}.
 */
export function peakMessageNs(postedNs: ArrayLike<number>, completedNs: ArrayLike<number>, cqMod = 1, postList = 1): number {
  const n = postedNs.length;
  checkCount('postedNs.length', n, 1);
  if (completedNs.length !== n) throw invalidArgValue('completedNs', completedNs.length, `must have ${n} entries, like postedNs`);
  checkCount('cqMod', cqMod, 1);
  checkCount('postList', postList, 1);
  const posted = (i: number): number => postedNs[i] as number;
  const completed = (j: number): number => completedNs[j] as number;
  let best = Infinity;
  const consider = (i: number, j: number): void => {
    const t = (completed(j) - posted(i)) / (j - i + 1);
    if (t < best) best = t;
  };
  for (let i = 0; i < n; i += postList) {
    for (let j = Math.ceil((i + 1) / cqMod) * cqMod - 1; j < n; j += cqMod) consider(i, j);
    if (n % cqMod !== 0) consider(i, n - 1);
  }
  return best;
}

/**
 * A bandwidth row, as perftest's `print_report_bw` computes it.
 * @param bytes message size.
 * @param iterations messages sent.
 * @param totalNs from the first post to the last completion, in nanoseconds.
 * @param peakNs the best time per message from {@link peakMessageNs}; omitted: the peak is not measured and is 0.
 */
export function bwRow(bytes: number, iterations: number, totalNs: number, peakNs?: number): BwRow {
  checkCount('bytes', bytes, 0);
  checkCount('iterations', iterations, 1);
  checkPositive('totalNs', totalNs);
  if (peakNs !== undefined) checkPositive('peakNs', peakNs);
  const seconds = totalNs / 1e9;
  return {
    bytes,
    iterations,
    bw_peak_mib_s: peakNs === undefined ? 0 : bytes / (peakNs / 1e9) / MIB,
    bw_avg_mib_s: (bytes * iterations) / seconds / MIB,
    msg_rate_mpps: iterations / seconds / 1e6,
  };
}

/**
 * C's `printf("%.<digits>f")` as glibc does it: like `toFixed`, but an exact tie rounds to even (0.125 → "0.12",
 * where `toFixed` gives "0.13"); inf and nan spelled as C spells them.
 */
export function cFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const rounded = x.toFixed(digits);
  // toFixed(100) is the exact expansion for every double a tie at <= 20 digits can be.
  const exact = Math.abs(x).toFixed(100);
  const point = exact.indexOf('.');
  const rest = exact.slice(point + 1 + digits);
  if (!/^50*$/.test(rest)) return rounded;
  const kept = exact.slice(0, digits === 0 ? point : point + 1 + digits);
  const last = Number(kept[kept.length - 1]);
  if (last % 2 !== 0) return rounded;
  return x < 0 ? `-${kept}` : kept;
}

/** printf's `%-<width>.<digits>f`. */
function leftFixed(x: number, width: number, digits: number): string {
  return cFixed(x, digits).padEnd(width);
}

const VERB_TITLE: Readonly<Record<PerfTest, string>> = {
  send_lat: 'Send',
  write_lat: 'RDMA_Write',
  read_lat: 'RDMA_Read',
  atomic_lat: 'Atomic',
  send_bw: 'Send',
  write_bw: 'RDMA_Write',
  read_bw: 'RDMA_Read',
};

/** perftest's `ctx_print_test_info`, reduced to what applies here, closed by its separator. */
function banner(info: ReportInfo): string[] {
  const lat = isLatencyTest(info.test);
  const atomic = info.test === 'atomic_lat' ? `${info.atomicType ?? 'FETCH_AND_ADD'} ` : '';
  const lines = [RESULT_LINE, `                    ${VERB_TITLE[info.test]} ${atomic}${lat ? 'Latency' : 'BW'} Test`];
  lines.push(` Device          : ${info.device}`);
  if (info.txDepth !== undefined) lines.push(` TX depth        : ${info.txDepth}`);
  if (!lat && info.cqMod !== undefined) lines.push(` CQ Moderation   : ${info.cqMod}`);
  if (info.events === true) lines.push(' Use Event       : ON (sleeping on completion channels)');
  lines.push(RESULT_LINE);
  return lines;
}

/** perftest's `RESULT_FMT_LAT`, the latency column names (with its trailing space). */
export const LATENCY_COLUMNS =
  ' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] ';

/** perftest's `RESULT_FMT`, the bandwidth column names. */
export const BW_COLUMNS = ' #bytes     #iterations    BW peak[MiB/sec]    BW average[MiB/sec]   MsgRate[Mpps]';

/**
 * The lines perftest prints before the first latency row: the test banner, a separator, the column names.
 * No trailing newline. Print {@link RESULT_LINE} after the last row, as perftest does.
 */
export function formatLatencyHeader(info: ReportInfo): string {
  return [...banner(info), LATENCY_COLUMNS].join('\n');
}

/** A latency row with perftest's `REPORT_FMT_LAT` (tabs included, two decimals, C rounding). No trailing newline. */
export function formatLatencyRow(row: LatencyRow): string {
  const f = (x: number): string => leftFixed(x, 7, 2);
  return ` ${String(row.bytes).padEnd(7)} ${row.iterations}          ${f(row.t_min_us)}        ${f(row.t_max_us)}      ` +
    `${f(row.t_typical_us)}  \t       ${f(row.t_avg_us)}     \t${f(row.t_stdev_us)}\t\t${f(row.p99_us)} \t\t${f(row.p999_us)}`;
}

/** The banner, a separator and the bandwidth column names, as perftest prints them. No trailing newline. */
export function formatBwHeader(info: ReportInfo): string {
  return [...banner(info), BW_COLUMNS].join('\n');
}

/** A bandwidth row with perftest's `REPORT_FMT` (MiB/s to two decimals, Mpps to six). No trailing newline. */
export function formatBwRow(row: BwRow): string {
  return ` ${String(row.bytes).padEnd(7)}    ${String(row.iterations).padEnd(10)}       ${leftFixed(row.bw_peak_mib_s, 7, 2)}` +
    `            ${leftFixed(row.bw_avg_mib_s, 7, 2)}\t\t     ${leftFixed(row.msg_rate_mpps, 7, 6)}`;
}

function latencyJson(r: LatencyRow): LatencyRow {
  return {
    bytes: r.bytes, iterations: r.iterations, t_min_us: r.t_min_us, t_max_us: r.t_max_us, t_typical_us: r.t_typical_us,
    t_avg_us: r.t_avg_us, t_stdev_us: r.t_stdev_us, p99_us: r.p99_us, p999_us: r.p999_us,
  };
}

function bwJson(r: BwRow): BwRow {
  return {
    bytes: r.bytes, iterations: r.iterations, bw_peak_mib_s: r.bw_peak_mib_s, bw_avg_mib_s: r.bw_avg_mib_s,
    msg_rate_mpps: r.msg_rate_mpps,
  };
}

/**
 * One JSON object (one line, no trailing newline) for a test's rows:
 * `{"test":"write_lat","device":"shm0","rows":[{…}]}`, each row with exactly the fields of {@link LatencyRow} or
 * {@link BwRow} in their declared order, numbers unrounded.
 * @throws TypeError `ERR_INVALID_ARG_VALUE` when `kind` does not match the test.
 */
export function jsonReport(kind: 'latency', rows: readonly LatencyRow[], info: Pick<ReportInfo, 'test' | 'device'>): string;
export function jsonReport(kind: 'bw', rows: readonly BwRow[], info: Pick<ReportInfo, 'test' | 'device'>): string;
export function jsonReport(
  kind: 'latency' | 'bw',
  rows: readonly LatencyRow[] | readonly BwRow[],
  info: Pick<ReportInfo, 'test' | 'device'>,
): string {
  if ((kind === 'latency') !== isLatencyTest(info.test)) {
    throw invalidArgValue('kind', kind, `does not match the test ${info.test}`);
  }
  const out = kind === 'latency'
    ? (rows as readonly LatencyRow[]).map(latencyJson)
    : (rows as readonly BwRow[]).map(bwJson);
  return JSON.stringify({ test: info.test, device: info.device, rows: out });
}
