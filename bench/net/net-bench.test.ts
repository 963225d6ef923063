// `kbypass bench net`'s pure parts: its command line, the JSON shape, the bars, the check of the preload's debug
// lines, the children's command lines and environments, and the bulk workload's streams. Nothing timed.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { parseNetBenchArgs, UsageError } from './args';
import { evaluateBars, formatBar } from './bars';
import { counter, source } from './bulk';
import { bypassProblem, evidence, parseConnect, saysKbypass } from './bypass';
import { childArgv, childEnv, PRELOAD } from './children';
import { planFor } from './plan';
import { decodeParams, encodeParams } from './protocol';
import { formatNetReport, toJson, type NetReport, type NetResult } from './report';

const bin = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');

test('arguments: bench net [--quick] [--json], anywhere on the line', () => {
  assert.deepEqual(parseNetBenchArgs(['bench', 'net']), { quick: false, json: false });
  assert.deepEqual(parseNetBenchArgs(['bench', 'net', '--quick', '--json']), { quick: true, json: true });
  assert.deepEqual(parseNetBenchArgs(['--json', 'bench', 'net']), { quick: false, json: true });
  for (const bad of [['bench', 'net', '--sizes', '64'], ['bench', 'net', 'extra'], ['bench', 'net', '--nope'], ['bench', 'ipc'], ['bench', 'net', '--quick=1']]) {
    assert.throws(() => parseNetBenchArgs(bad), UsageError, bad.join(' '));
  }
});

test('the CLI: bench net in --help; bad usage exits 2 with a message', () => {
  const h = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /bench net/);
  for (const args of [['bench', 'net', '--sizes', '64'], ['bench', 'net', 'now']]) {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /kbypass: bench net/);
  }
});

const sample: NetResult = {
  echo: [{ transport: 'tcp', bytes: 64, p50_ns: 30_000, p99_ns: 90_000 }, { transport: 'kbypass', bytes: 64, p50_ns: 10_000, p99_ns: 40_000 }],
  http: [{ transport: 'tcp', requests_per_sec: 20_000 }, { transport: 'kbypass', requests_per_sec: 30_000 }],
  bulk: [{ transport: 'tcp', bytes_per_sec: 1e9 }, { transport: 'kbypass', bytes_per_sec: 2e9 }],
};

test('JSON: exactly echo, http, bulk; one entry per transport, kbypass first; only the documented keys', () => {
  const extra = { ...sample, details: { anything: 1 }, echo: sample.echo.map((x) => ({ ...x, p999_ns: 1 })) } as unknown as NetResult;
  const o = JSON.parse(toJson(extra)) as Record<string, Array<Record<string, unknown>>>;
  assert.deepEqual(Object.keys(o), ['echo', 'http', 'bulk']);
  assert.deepEqual(o['echo'], [
    { transport: 'kbypass', bytes: 64, p50_ns: 10_000, p99_ns: 40_000 },
    { transport: 'tcp', bytes: 64, p50_ns: 30_000, p99_ns: 90_000 },
  ]);
  assert.deepEqual(o['http'], [{ transport: 'kbypass', requests_per_sec: 30_000 }, { transport: 'tcp', requests_per_sec: 20_000 }]);
  assert.deepEqual(o['bulk'], [{ transport: 'kbypass', bytes_per_sec: 2e9 }, { transport: 'tcp', bytes_per_sec: 1e9 }]);
  assert.ok(!toJson(sample).includes('\n'), 'one line');
});

test('bars: each at its boundary passes, just past it misses', () => {
  const [echo, http, bulk] = evaluateBars(sample);
  assert.deepEqual([echo!.ok, http!.ok, bulk!.ok], [true, true, true]);
  assert.ok(Math.abs(echo!.ratio - 1 / 3) < 1e-12 && http!.ratio === 1.5 && bulk!.ratio === 2);
  assert.equal(formatBar(echo!), 'kbypass echo 64 B p50 ÷ tcp p50 = 0.333 (bar ≤ 0.333) ok');
  assert.equal(formatBar(http!), 'kbypass http requests/s ÷ tcp = 1.50 (bar ≥ 1.5) ok');
  assert.equal(formatBar(bulk!), 'kbypass bulk bytes/s ÷ tcp = 2.00 (bar ≥ 2) ok');
  const worse: NetResult = {
    echo: sample.echo.map((x) => (x.transport === 'kbypass' ? { ...x, p50_ns: 10_001 } : x)),
    http: sample.http.map((x) => (x.transport === 'kbypass' ? { ...x, requests_per_sec: 29_999 } : x)),
    bulk: sample.bulk.map((x) => (x.transport === 'kbypass' ? { ...x, bytes_per_sec: 2e9 - 1 } : x)),
  };
  const missed = evaluateBars(worse);
  assert.deepEqual(missed.map((b) => b.ok), [false, false, false]);
  assert.match(formatBar(missed[0]!), /MISSED$/);
  const none = evaluateBars({ echo: [], http: [], bulk: [] });
  assert.ok(none.every((b) => !b.ok && Number.isNaN(b.ratio)));
  assert.match(formatBar(none[0]!), /= - \(bar/);
});

test('the terminal report has the three tables and the bars', () => {
  const per = <T>(v: T) => ({ kbypass: v, tcp: v });
  const ev = { viaKbypass: 1, viaTcp: 0, tcpReasons: [], accepts: 1 };
  const r: NetReport = {
    ...sample,
    details: {
      echo: per({ round_trips: 20_000, warmup: 2_000, capped: false }),
      http: per({ requests: 300_000, duration_sec: 10, connections: 10, rounds: [29_000, 31_000] }),
      bulk: per({ bytes: 1 << 30, secs: 0.5, server_secs: 0.49, runs: [1.9e9, 2.147e9, 2.5e9] }),
      bypass: { echo: ev, http: { ...ev, viaKbypass: 10, accepts: 10 }, bulk: ev },
    },
  };
  const text = formatNetReport(r);
  for (const s of ['Echo round trip', 'HTTP/1.1 keep-alive', 'Bulk transfer, 1 GiB', 'http 10/10', 'Bars']) assert.ok(text.includes(s), s);
  // Every round and every transfer is shown, not only the figure that counts.
  assert.ok(text.includes('in 2 rounds, transports alternating') && text.includes('29.0 k 31.0 k'), 'the http rounds');
  assert.ok(text.includes('the median of 3 transfers per transport') && text.includes('1.90 GB/s 2.15 GB/s 2.50 GB/s'), 'the bulk transfers');
  assert.equal(text.split('\n').filter((l) => / (ok|MISSED)$/.test(l)).length, 3);
});

test('debug lines: a kbypass figure needs every client connect via kbypass; a tcp one none', () => {
  const pid = 4242;
  const port = 39000;
  assert.deepEqual(parseConnect(`kbypass[${pid}]: connect 127.0.0.1:${port} via kbypass`), { pid, host: '127.0.0.1', port, via: 'kbypass', reason: '' });
  assert.deepEqual(parseConnect(`kbypass[1]: connect localhost:80 via tcp (not a local address)`), { pid: 1, host: 'localhost', port: 80, via: 'tcp', reason: 'not a local address' });
  assert.equal(parseConnect('kbypass[1]: preload installed'), null);
  const server = [`kbypass[7]: listen ${port} endpoint published`, `kbypass[7]: accept 127.0.0.1:40000 on ${port} via kbypass`];
  const good = evidence([`kbypass[${pid}]: preload installed`, `kbypass[${pid}]: connect 127.0.0.1:${port} via kbypass`, `kbypass[${pid}]: connect 127.0.0.1:1 via tcp (x)`], pid, server, port);
  assert.deepEqual(good, { viaKbypass: 1, viaTcp: 0, tcpReasons: [], accepts: 1 });
  assert.equal(bypassProblem('kbypass', good, 1, undefined), null);
  assert.match(bypassProblem('kbypass', good, 10, undefined) ?? '', /only 1 of the client's 10/);
  const other = evidence([`kbypass[${pid + 1}]: connect 127.0.0.1:${port} via kbypass`], pid, [], port);
  assert.match(bypassProblem('kbypass', other, 1, undefined) ?? '', /no 'connect 127.0.0.1:<port> via kbypass' line/);
  const tcp = evidence([`kbypass[${pid}]: connect 127.0.0.1:${port} via kbypass`, `kbypass[${pid}]: connect 127.0.0.1:${port} via tcp (ECONNREFUSED)`], pid, [], port);
  assert.match(bypassProblem('kbypass', tcp, 1, undefined) ?? '', /1 of the client's connections went via TCP, not kbypass \(ECONNREFUSED\)/);
  const none = evidence([], pid, [], port);
  assert.equal(bypassProblem('tcp', none, 1, saysKbypass(['plain stderr'])), null);
  assert.match(bypassProblem('tcp', none, 1, saysKbypass(server)) ?? '', /preload was loaded/);
});

test('children: kbypass runs under --require <preload> with KBYPASS_DEBUG=1; tcp with KBYPASS=off and no preload', () => {
  assert.match(PRELOAD, /dist[/\\]src[/\\]net[/\\]preload\.js$/);
  const base = { PATH: '/bin', KBYPASS: 'on', KBYPASS_PORTS: '1-2', KBYPASS_DEBUG: '0' };
  assert.deepEqual(childEnv(base, 'kbypass'), { PATH: '/bin', KBYPASS_DEBUG: '1' });
  assert.deepEqual(childEnv(base, 'tcp'), { PATH: '/bin', KBYPASS: 'off' });
  assert.equal(base.KBYPASS, 'on', 'the caller\'s environment is not changed');
  const params = { role: 'server' as const };
  assert.deepEqual(childArgv('/x/echo.js', 'kbypass', '/p.js', params), ['--require', '/p.js', '/x/echo.js', '{"role":"server"}']);
  assert.deepEqual(childArgv('/x/echo.js', 'tcp', '/p.js', params), ['/x/echo.js', '{"role":"server"}']);
  const c = { role: 'client' as const, port: 1, bytes: 64, roundTrips: 10, warmup: 1, capSec: 1 };
  assert.deepEqual(decodeParams(['node', 'echo.js', encodeParams(c)]), c);
  assert.throws(() => decodeParams(['node', 'echo.js']));
  assert.throws(() => decodeParams(['node', 'echo.js', '{"role":"x"}']));
});

test('plan: bounded counts and caps; --quick is smaller', () => {
  const full = planFor(false);
  const quick = planFor(true);
  assert.equal(full.echo.bytes, 64);
  assert.equal(full.bulk.bytes, 1 << 30);
  assert.equal(quick.bulk.bytes, 256 << 20);
  assert.equal(full.bulk.chunk, 64 << 10);
  assert.deepEqual([full.http.connections, full.http.durationSec, quick.http.durationSec], [10, 10, 3]);
  assert.deepEqual([full.http.rounds, quick.http.rounds, full.bulk.repeats, quick.bulk.repeats], [2, 1, 3, 3]);
  for (const p of [full, quick]) {
    assert.ok(p.echo.roundTrips > 0 && p.echo.roundTrips <= 20_000 && p.echo.capSec > 0 && p.bulk.capSec > 0);
    assert.ok(p.echo.minRoundTrips <= p.echo.roundTrips);
  }
});

test('bulk streams: the source gives exactly its total from one buffer; the counter reports once', async () => {
  const chunk = Buffer.alloc(1000, 7);
  const seen = new Set<ArrayBufferLike>();
  let total = 0;
  for await (const b of source(10_500, chunk)) { total += (b as Buffer).length; seen.add((b as Buffer).buffer); }
  assert.equal(total, 10_500);
  assert.equal(seen.size, 1, 'one buffer, pushed again and again');
  const all: number[] = [];
  const more: number[] = [];
  let first = 0;
  const w = counter(2500, () => first++, (n) => all.push(n), (n) => more.push(n));
  for (let i = 0; i < 3; i++) w.write(chunk);
  await new Promise<void>((resolve) => w.end(resolve));
  assert.deepEqual([first, all, more, w.count], [1, [], [3000], 3000]);
  const exact = counter(3000, () => undefined, (n) => all.push(n), (n) => more.push(n));
  for (let i = 0; i < 3; i++) exact.write(chunk);
  assert.deepEqual(all, [3000]);
});
