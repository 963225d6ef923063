import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BW_COLUMNS, LATENCY_COLUMNS, RESULT_LINE, bwRow, cFixed, formatBwHeader, formatBwRow, formatLatencyHeader,
  formatLatencyRow, halvesRoundTrip, jsonReport, latencyRow, peakMessageNs, type BwRow, type LatencyRow,
} from './report';

function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);
}

function shuffled(values: number[], seed: number): number[] {
  const a = values.slice();
  let x = seed;
  for (let i = a.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j] as number, a[i] as number];
  }
  return a;
}

// Sorted: 900 1000 1050 1100 1150 1200 1250 1300 | 5000 10000. n = 10, m = n - 2 = 8.
const TEN_NS = [1000, 1200, 1100, 1300, 900, 5000, 1050, 10000, 1150, 1250];

test('latencyRow, ping-pong (halved): min, max = 2nd largest, median, avg and stdev over the m = n - 2 smallest', () => {
  const r = latencyRow(64, Float64Array.from(TEN_NS), true);
  assert.equal(r.bytes, 64);
  assert.equal(r.iterations, 10);
  near(r.t_min_us, 0.45, 't_min'); // 900 ns / 2
  near(r.t_max_us, 2.5, 't_max'); // s[8] = 5000 ns / 2; the 10000 ns outlier is never shown
  near(r.t_typical_us, 0.5625, 't_typical'); // (s[3] + s[4]) / 2 = 1125 ns / 2
  near(r.t_avg_us, 0.559375, 't_avg'); // 8950 / 8 = 1118.75 ns / 2
  // Squared deviations from 1118.75 sum to 124687.5 ns²; / 8 = 15585.9375.
  near(r.t_stdev_us, Math.sqrt(15585.9375) / 2000, 't_stdev');
  near(r.p99_us, 2.5, 'p99'); // ceil(8 * 0.99) = 8
  near(r.p999_us, 2.5, 'p99.9'); // ceil(8 * 0.999) = 8
});

test('latencyRow, one-sided (not halved): the same samples in whole microseconds', () => {
  const r = latencyRow(64, TEN_NS, false);
  near(r.t_min_us, 0.9, 't_min');
  near(r.t_max_us, 5, 't_max');
  near(r.t_typical_us, 1.125, 't_typical');
  near(r.t_avg_us, 1.11875, 't_avg');
  near(r.t_stdev_us, Math.sqrt(15585.9375) / 1000, 't_stdev');
  near(r.p99_us, 5, 'p99');
});

test('latencyRow: odd m takes the middle sample; population stdev', () => {
  // Sorted 1000..7000 ns, n = 7, m = 5: trimmed set 1 2 3 4 5 µs.
  const r = latencyRow(8, [3000, 1000, 2000, 4000, 7000, 5000, 6000], false);
  assert.deepEqual(
    { ...r, t_stdev_us: 0 },
    { bytes: 8, iterations: 7, t_min_us: 1, t_max_us: 6, t_typical_us: 3, t_avg_us: 3, t_stdev_us: 0, p99_us: 6, p999_us: 6 },
  );
  near(r.t_stdev_us, Math.sqrt((4 + 1 + 0 + 1 + 4) / 5), 't_stdev');
});

test('latencyRow: percentile indices are ceil(m * 0.99) and ceil(m * 0.999) into the sorted samples', () => {
  // 1..102 µs shuffled: m = 100; ceil(99) = 99 -> 100 µs; ceil(99.9) = 100 -> 101 µs.
  const hundred = shuffled(Array.from({ length: 102 }, (_, i) => (i + 1) * 1000), 7);
  const a = latencyRow(2, hundred, false);
  assert.equal(a.p99_us, 100);
  assert.equal(a.p999_us, 101);
  assert.equal(a.t_max_us, 101);
  // 1..1002 µs: m = 1000; ceil(990) = 990 -> 991 µs; ceil(999) = 999 -> 1000 µs; median (500 + 501) / 2.
  const thousand = shuffled(Array.from({ length: 1002 }, (_, i) => (i + 1) * 1000), 11);
  const b = latencyRow(2, thousand, false);
  assert.equal(b.t_min_us, 1);
  assert.equal(b.t_max_us, 1001);
  assert.equal(b.t_typical_us, 500.5);
  near(b.t_avg_us, 500.5, 't_avg');
  near(b.t_stdev_us, Math.sqrt((1000 * 1000 - 1) / 12), 't_stdev'); // population stdev of 1..N
  assert.equal(b.p99_us, 991);
  assert.equal(b.p999_us, 1000);
});

test('latencyRow does not modify the caller\'s samples; iterations can be given', () => {
  const typed = Float64Array.from(TEN_NS);
  const plain = TEN_NS.slice();
  latencyRow(2, typed, true);
  latencyRow(2, plain, true);
  assert.deepEqual(Array.from(typed), TEN_NS);
  assert.deepEqual(plain, TEN_NS);
  assert.equal(latencyRow(2, typed, true, 11).iterations, 11);
});

test('latencyRow rejects too few samples and non-finite or negative ones', () => {
  assert.throws(() => latencyRow(2, [1, 2], true), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => latencyRow(2, [1, NaN, 3], true), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => latencyRow(2, [1, -1, 3], true), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => latencyRow(-1, [1, 2, 3], true), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => latencyRow(1.5, [1, 2, 3], true), { code: 'ERR_INVALID_ARG_VALUE' });
});

test('halvesRoundTrip: send_lat and write_lat halve (rtt_factor 2), read_lat and atomic_lat do not', () => {
  assert.equal(halvesRoundTrip('send_lat'), true);
  assert.equal(halvesRoundTrip('write_lat'), true);
  assert.equal(halvesRoundTrip('read_lat'), false);
  assert.equal(halvesRoundTrip('atomic_lat'), false);
});

test('bwRow: 1000 messages of 65536 B in 1 ms', () => {
  // 65 536 000 B / 0.001 s = 65 536 000 000 B/s = 62 500 MiB/s; 1000 / 0.001 s = 1 000 000 msg/s = 1 Mpps.
  // Peak: 65536 B per 500 ns = 131 072 000 000 B/s = 125 000 MiB/s.
  assert.deepEqual(bwRow(65536, 1000, 1_000_000, 500), {
    bytes: 65536, iterations: 1000, bw_peak_mib_s: 125000, bw_avg_mib_s: 62500, msg_rate_mpps: 1,
  });
});

test('bwRow: without a peak time the peak is 0, as perftest prints with -N', () => {
  // 5000 × 2 B = 10 000 B in 2 ms = 5 000 000 B/s = 5 000 000 / 1 048 576 MiB/s; 5000 / 0.002 s = 2.5 Mpps.
  const r = bwRow(2, 5000, 2_000_000);
  assert.equal(r.bw_peak_mib_s, 0);
  near(r.bw_avg_mib_s, 4.76837158203125, 'bw_avg');
  near(r.msg_rate_mpps, 2.5, 'msg_rate');
});

test('bwRow rejects a zero or negative time', () => {
  assert.throws(() => bwRow(2, 10, 0), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => bwRow(2, 10, 100, 0), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => bwRow(2, 0, 100), { code: 'ERR_OUT_OF_RANGE' });
});

test('peakMessageNs: best average time per message over post(i)..completion(j) windows, not the best single message', () => {
  // Windows (c[j] - p[i]) / (j - i + 1): the best single message is 95 ns (i = j = 2), the best run 115 / 3 ns.
  near(peakMessageNs([0, 10, 20, 30], [100, 110, 115, 200]), 115 / 3, 'peak');
});

test('peakMessageNs with cqMod reads only signalled completions (every cqMod-th and the last)', () => {
  // cqMod 2, n 5: completions at j = 1, 3 and 4 (5 % 2 != 0). The unsignalled entries would give negative times.
  // i = 0: 50/2, 90/4, 100/5 = 20 (the best); i = 1: 40, 80/3, 90/4; i = 2: 70/2, 80/3; i = 3: 60, 70/2; i = 4: 60.
  near(peakMessageNs([0, 10, 20, 30, 40], [-1e9, 50, -1e9, 90, 100], 2), 20, 'peak');
});

test('peakMessageNs with postList starts windows only at the first message of each post list', () => {
  const posted = [0, 50, 60, 70];
  const completed = [100, 60, 130, 140];
  near(peakMessageNs(posted, completed), 10, 'postList 1'); // i = j = 1
  near(peakMessageNs(posted, completed, 1, 2), 30, 'postList 2'); // i = 0, j = 1: 60 / 2
});

test('peakMessageNs checks its arguments', () => {
  assert.throws(() => peakMessageNs([0, 1], [2]), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => peakMessageNs([], []), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => peakMessageNs([0], [1], 0), { code: 'ERR_OUT_OF_RANGE' });
});

test('cFixed rounds exact ties to even like glibc printf, otherwise like toFixed', () => {
  // Expected values printed by glibc: printf("%.2f %.2f %.2f %.2f %.6f %.0f %.0f %.2f", ...).
  assert.deepEqual(
    [cFixed(0.125, 2), cFixed(0.375, 2), cFixed(0.625, 2), cFixed(2.675, 2), cFixed(0.0000125, 6), cFixed(2.5, 0),
      cFixed(3.5, 0), cFixed(-0.125, 2)],
    ['0.12', '0.38', '0.62', '2.67', '0.000013', '2', '4', '-0.12'],
  );
  assert.equal(cFixed(Infinity, 2), 'inf');
  assert.equal(cFixed(NaN, 2), 'nan');
});

// The expected rows below were printed by gcc/glibc with perftest's own format strings (REPORT_FMT_LAT,
// REPORT_FMT from src/perftest_parameters.h) and the same values.
const LAT_ROW: LatencyRow = {
  bytes: 2, iterations: 1000, t_min_us: 0.125, t_max_us: 1.375, t_typical_us: 0.5, t_avg_us: 0.6543,
  t_stdev_us: 0.0049, p99_us: 12.345678, p999_us: 123.455,
};

test('formatLatencyRow matches perftest\'s REPORT_FMT_LAT byte for byte', () => {
  assert.equal(
    formatLatencyRow(LAT_ROW),
    ' 2       1000          0.12           1.38         0.50     \t       0.65        \t0.00   \t\t12.35   \t\t123.45 ',
  );
  assert.equal(
    formatLatencyRow({
      bytes: 8388608, iterations: 5, t_min_us: 1234.5, t_max_us: 99999.99, t_typical_us: 3, t_avg_us: 2,
      t_stdev_us: 0, p99_us: 10, p999_us: 11,
    }),
    ' 8388608 5          1234.50        99999.99      3.00     \t       2.00        \t0.00   \t\t10.00   \t\t11.00  ',
  );
});

test('formatBwRow matches perftest\'s REPORT_FMT byte for byte', () => {
  assert.equal(
    formatBwRow({ bytes: 65536, iterations: 1000, bw_peak_mib_s: 125000, bw_avg_mib_s: 62500, msg_rate_mpps: 1 }),
    ' 65536      1000             125000.00            62500.00\t\t     1.000000',
  );
  assert.equal(
    formatBwRow({ bytes: 2, iterations: 5000, bw_peak_mib_s: 0.125, bw_avg_mib_s: 12345678.9, msg_rate_mpps: 0.0000125 }),
    ' 2          5000             0.12               12345678.90\t\t     0.000013',
  );
});

test('headers: banner, separators and perftest\'s column names', () => {
  assert.equal(RESULT_LINE, '-'.repeat(87));
  for (const name of ['#bytes', '#iterations', 't_min[usec]', 't_max[usec]', 't_typical[usec]', 't_avg[usec]',
    't_stdev[usec]', '99% percentile[usec]', '99.9% percentile[usec]']) {
    assert.ok(LATENCY_COLUMNS.includes(` ${name} `), name);
  }
  for (const name of ['#bytes', '#iterations', 'BW peak[MiB/sec]', 'BW average[MiB/sec]', 'MsgRate[Mpps]']) {
    assert.ok(BW_COLUMNS.includes(` ${name}`), name);
  }
  assert.equal(
    formatLatencyHeader({ test: 'write_lat', device: 'shm0', txDepth: 1 }),
    [
      RESULT_LINE,
      '                    RDMA_Write Latency Test',
      ' Device          : shm0',
      ' TX depth        : 1',
      RESULT_LINE,
      ' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] ',
    ].join('\n'),
  );
  assert.equal(
    formatBwHeader({ test: 'send_bw', device: 'shm1', txDepth: 128, cqMod: 100 }),
    [
      RESULT_LINE,
      '                    Send BW Test',
      ' Device          : shm1',
      ' TX depth        : 128',
      ' CQ Moderation   : 100',
      RESULT_LINE,
      ' #bytes     #iterations    BW peak[MiB/sec]    BW average[MiB/sec]   MsgRate[Mpps]',
    ].join('\n'),
  );
  assert.match(formatLatencyHeader({ test: 'atomic_lat', device: 'shm0' }), /^ {20}Atomic FETCH_AND_ADD Latency Test$/m);
  assert.match(formatLatencyHeader({ test: 'atomic_lat', device: 'shm0', atomicType: 'CMP_AND_SWAP' }),
    /^ {20}Atomic CMP_AND_SWAP Latency Test$/m);
  assert.match(formatLatencyHeader({ test: 'read_lat', device: 'shm0' }), /^ {20}RDMA_Read Latency Test$/m);
  assert.doesNotMatch(formatLatencyHeader({ test: 'read_lat', device: 'shm0' }), /TX depth/);
});

test('jsonReport: exact shape, fields in order, extra properties dropped', () => {
  const latency = jsonReport('latency', [{ ...LAT_ROW, extra: 1 } as LatencyRow], { test: 'write_lat', device: 'shm0' });
  assert.equal(
    latency,
    '{"test":"write_lat","device":"shm0","rows":[{"bytes":2,"iterations":1000,"t_min_us":0.125,"t_max_us":1.375,' +
      '"t_typical_us":0.5,"t_avg_us":0.6543,"t_stdev_us":0.0049,"p99_us":12.345678,"p999_us":123.455}]}',
  );
  const rows: BwRow[] = [
    { bytes: 2, iterations: 5000, bw_peak_mib_s: 0, bw_avg_mib_s: 4.5, msg_rate_mpps: 2.5 },
    { bytes: 4, iterations: 5000, bw_peak_mib_s: 10, bw_avg_mib_s: 9, msg_rate_mpps: 2.25 },
  ];
  assert.equal(
    jsonReport('bw', rows, { test: 'write_bw', device: 'shm0' }),
    '{"test":"write_bw","device":"shm0","rows":[' +
      '{"bytes":2,"iterations":5000,"bw_peak_mib_s":0,"bw_avg_mib_s":4.5,"msg_rate_mpps":2.5},' +
      '{"bytes":4,"iterations":5000,"bw_peak_mib_s":10,"bw_avg_mib_s":9,"msg_rate_mpps":2.25}]}',
  );
  assert.deepEqual(Object.keys(JSON.parse(latency) as object), ['test', 'device', 'rows']);
  assert.throws(() => jsonReport('bw', rows, { test: 'write_lat', device: 'shm0' }), { code: 'ERR_INVALID_ARG_VALUE' });
});
