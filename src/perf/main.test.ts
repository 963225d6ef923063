// `kbypass perf` end to end: each test runs with --local (a server process and a client) and prints perftest's
// rows; --json prints exactly the documented fields; bad usage exits 2.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');
let port = 20000 + (process.pid % 20000);

function perf(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'perf', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const LAT_FIELDS = ['bytes', 'iterations', 't_min_us', 't_max_us', 't_typical_us', 't_avg_us', 't_stdev_us', 'p99_us', 'p999_us'];
const BW_FIELDS = ['bytes', 'iterations', 'bw_peak_mib_s', 'bw_avg_mib_s', 'msg_rate_mpps'];

for (const t of ['write_lat', 'send_lat', 'read_lat', 'atomic_lat', 'write_bw', 'send_bw', 'read_bw']) {
  test(`perf ${t} --local --json prints one row set with perftest's fields`, { timeout: 90_000 }, () => {
    const lat = t.endsWith('_lat');
    const size = t === 'atomic_lat' ? [] : ['-s', lat ? '64' : '4096'];
    const r = perf([t, '--local', '-p', String(++port), '-n', '300', ...size, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const obj = JSON.parse(r.stdout.trim()) as { test: string; device: string; rows: Array<Record<string, number>>; floor?: Record<string, unknown> };
    assert.equal(obj.test, t);
    assert.equal(obj.device, 'shm0');
    assert.equal(obj.rows.length, 1);
    const row = obj.rows[0]!;
    assert.deepEqual(Object.keys(row), lat ? LAT_FIELDS : BW_FIELDS);
    assert.equal(row['bytes'], t === 'atomic_lat' ? 8 : lat ? 64 : 4096);
    assert.equal(row['iterations'], 300);
    if (lat) {
      assert.ok(row['t_min_us']! > 0 && row['t_min_us']! <= row['t_typical_us']! && row['t_typical_us']! <= row['t_max_us']!, JSON.stringify(row));
    } else {
      assert.ok(row['bw_avg_mib_s']! > 0 && row['msg_rate_mpps']! > 0, JSON.stringify(row));
      // 300 iterations: the peak is measured, and the best window can never be slower than the whole run.
      assert.ok(row['bw_peak_mib_s']! >= row['bw_avg_mib_s']!, JSON.stringify(row));
    }
    if (t === 'write_lat' || t === 'send_lat' || !lat) assert.ok(obj.floor, 'a --local run measures the floor');
  });
}

// -e: the loops sleep on the CQs' completion channels (the server follows the client's choice).
for (const t of ['send_lat', 'read_lat', 'send_bw', 'write_bw']) {
  test(`perf ${t} --local -e sleeps on CQ events and still reports its row`, { timeout: 90_000 }, () => {
    const lat = t.endsWith('_lat');
    const r = perf([t, '--local', '-e', '-p', String(++port), '-n', '300', '-s', lat ? '8' : '4096']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Use Event +: ON/);
    assert.match(r.stdout, lat ? /^ 8 +300 /m : /^ 4096 +300 /m);
  });
}

test('perf prints perftest\'s table', { timeout: 60_000 }, () => {
  const r = perf(['write_lat', '--local', '-p', String(++port), '-n', '300', '-s', '8']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /RDMA_Write Latency Test/);
  assert.match(r.stdout, /#bytes #iterations +t_min\[usec\] +t_max\[usec\] +t_typical\[usec\]/);
  assert.match(r.stdout, /^ 8 +300 /m);
  assert.match(r.stdout, /t_typical \/ floor = \d+\.\d\d/);
});

test('perf: bad usage exits 2 with a message; a remote host is refused for shm0', () => {
  let r = perf(['write_lat', '-s', 'abc']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /size/i);
  r = perf(['no_such_test']);
  assert.equal(r.status, 2);
  r = perf(['write_lat', '10.0.0.1']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /this host only/);
  r = perf(['write_lat', '--local', '-d', 'mlx5_0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no RDMA device named 'mlx5_0' \(devices: shm0\)/);
  r = perf(['write_lat', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /-s/);
});

test('perf: a client with no server fails with UNREACHABLE, not a hang', { timeout: 30_000 }, () => {
  const r = perf(['write_lat', 'localhost', '-p', String(++port), '-n', '10']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ECONNREFUSED|ENOENT|UNREACHABLE/);
});

test('perf: a server killed mid-run makes the client fail within seconds, not hang', { timeout: 60_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const p = String(++port);
  const server = spawn(process.execPath, [BIN, 'perf', 'write_lat', '-p', p], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('Waiting')) resolve(); }));
  const client = spawn(process.execPath, [BIN, 'perf', 'write_lat', 'localhost', '-p', p, '-n', '100000000', '-s', '8'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  client.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  await new Promise((r) => setTimeout(r, 1500)); // well into the measured loop
  server.kill('SIGKILL');
  const t0 = Date.now();
  const code = await new Promise<number | null>((resolve) => client.once('exit', (c) => resolve(c)));
  const ms = Date.now() - t0;
  assert.equal(code, 1, stderr);
  assert.ok(ms < 10_000, `the client noticed after ${ms} ms`);
  assert.match(stderr, /peer|stopped|ETIMEDOUT/);
});
