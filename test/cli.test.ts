// The `kbypass` command: usage, exit codes, and the shape of `bench ipc --json` (one object, the transports the
// issue names, real measurements). Performance figures themselves are the benchmark's business, not asserted here.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'kbypass.js');
const run = (args: string[], timeout = 20_000) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout });

test('--help and --version', () => {
  const h = run(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /bench ipc/);
  const v = run(['--version']);
  assert.equal(v.status, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

test('bad usage exits 2 with a message', () => {
  for (const args of [['frobnicate'], ['bench', 'ipc', '--sizes', 'abc'], ['bench', 'ipc', '--nope']]) {
    const r = run(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /kbypass: /);
  }
});

test('bench ipc --json prints exactly one object of the documented shape', { timeout: 120_000 }, () => {
  const r = run(['bench', 'ipc', '--quick', '--json', '--sizes', '64'], 110_000);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one line of JSON on stdout (progress goes to stderr)');
  const o = JSON.parse(lines[0]!) as Record<string, Array<Record<string, unknown>>>;
  assert.deepEqual(Object.keys(o), ['latency', 'throughput']);
  assert.deepEqual(o['latency']!.map((x) => x['transport']).sort(), ['c-floor', 'shm-event', 'shm-poll', 'tcp', 'unix']);
  assert.deepEqual(o['throughput']!.map((x) => x['transport']).sort(), ['memcpy', 'shm-event', 'shm-poll', 'tcp', 'unix']);
  for (const x of o['latency']!) {
    assert.deepEqual(Object.keys(x), ['transport', 'bytes', 'p50_ns', 'p99_ns', 'p999_ns']);
    assert.equal(x['bytes'], 64);
    assert.ok((x['p50_ns'] as number) > 0 && (x['p50_ns'] as number) <= (x['p99_ns'] as number) && (x['p99_ns'] as number) <= (x['p999_ns'] as number), JSON.stringify(x));
  }
  for (const x of o['throughput']!) {
    assert.deepEqual(Object.keys(x), ['transport', 'bytes', 'msgs_per_sec', 'bytes_per_sec']);
    assert.ok((x['msgs_per_sec'] as number) > 0);
    assert.ok(Math.abs((x['bytes_per_sec'] as number) - (x['msgs_per_sec'] as number) * 64) <= 64, JSON.stringify(x));
  }
  assert.match(r.stderr, /\[\s*\d+\/\d+\]/, 'progress lines on stderr');
});

test('bench verbs --json prints one object: the four figures, each beside its floor', { timeout: 120_000 }, () => {
  const r = run(['bench', 'verbs', '--quick', '--json'], 110_000);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one line of JSON on stdout (progress goes to stderr)');
  const o = JSON.parse(lines[0]!) as Record<string, Record<string, number>>;
  assert.deepEqual(Object.keys(o), ['write_lat', 'send_lat', 'write_bw', 'send_bw']);
  const wl = o['write_lat']!;
  assert.ok(wl['t_typical_us']! > 0 && wl['floor_us']! > 0);
  assert.ok(Math.abs(wl['ratio']! - wl['t_typical_us']! / wl['floor_us']!) < 1e-9, 'the ratio is of the figures printed');
  assert.ok(wl['js_floor_us']! > 0 && Math.abs(wl['js_floor_ratio']! - wl['js_floor_us']! / wl['floor_us']!) < 1e-9, 'the JS floor beside the C floor');
  const sl = o['send_lat']!;
  assert.ok(Math.abs(sl['ratio_to_write_lat']! - sl['t_typical_us']! / wl['t_typical_us']!) < 1e-9);
  const wb = o['write_bw']!;
  assert.ok(wb['bw_avg_mib_s']! > 0 && wb['memcpy_mib_s']! > 0);
  assert.ok(Math.abs(wb['ratio']! - wb['bw_avg_mib_s']! / wb['memcpy_mib_s']!) < 1e-9);
  assert.ok(o['send_bw']!['msg_rate_mpps']! > 0);
  const bad = run(['bench', 'verbs', '--sizes', '64']);
  assert.equal(bad.status, 2);
});

test('bench packet --json prints one object: rx and tx for the four paths, every rate measured', { timeout: 150_000 }, (t) => {
  if (process.getuid?.() !== 0) { t.skip('bench packet makes network namespaces: needs root'); return; }
  const r = run(['bench', 'packet', '--quick', '--json'], 140_000);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one line of JSON on stdout (progress goes to stderr)');
  const o = JSON.parse(lines[0]!) as Record<string, Array<Record<string, unknown>>>;
  assert.deepEqual(Object.keys(o), ['rx', 'tx']);
  for (const dir of ['rx', 'tx'] as const) {
    assert.deepEqual(o[dir]!.map((x) => x['path']), ['xdp-js', 'packet-js', 'dgram', 'xdp-c']);
    for (const row of o[dir]!) {
      assert.deepEqual(Object.keys(row), ['path', 'bytes', 'pps']);
      assert.equal(row['bytes'], 64);
      assert.ok(Number.isInteger(row['pps']) && (row['pps'] as number) > 1000, `${dir} ${String(row['path'])}: ${String(row['pps'])} pps`);
    }
  }
  assert.match(r.stderr, /rx xdp-c/); // progress on stderr
  assert.equal(run(['bench', 'packet', '--sizes', '64']).status, 2);
});
