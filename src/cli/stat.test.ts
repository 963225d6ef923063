// `kbypass stat` end to end (bin/kbypass.js): ports published by this test with fake counters, read back as JSON
// and as the table; rates from two samples; files of exited processes removed; `-i` with the interface's own
// counters; bad usage exits 2.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PortStats } from '../packet/port-base';
import { StatsPublisher, type PortIdentity } from '../packet/stats-file';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');

function stat(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'stat', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-stat-test-'));
}

const XDP: PortIdentity = {
  mode: 'xdp', ifname: 'veth0', ifindex: 7, queue: 1, xdpMode: 'native', zeroCopy: false,
  fallbackReason: 'zero-copy refused by the driver of veth0 (EOPNOTSUPP): using copy mode',
};
const PACKET: PortIdentity = { mode: 'packet', ifname: 'lo', ifindex: 1, queue: 0, xdpMode: null, zeroCopy: false, fallbackReason: '' };

function xdpStats(n: number): PortStats {
  return {
    rxPackets: n, rxBytes: n * 64, txSubmitted: n + 2, txCompleted: n + 1, txBytes: n * 60, held: 3,
    drops: { rxRingFull: 5, rxFillRingEmpty: 0, rxOther: 2 },
    kernel: { rxDropped: 7, rxInvalidDescs: 0, txInvalidDescs: 0, rxRingFull: 5, rxFillRingEmptyDescs: 0, txRingEmptyDescs: 9 },
  };
}

function packetStats(n: number): PortStats {
  return {
    rxPackets: n, rxBytes: n * 100, txSubmitted: 0, txCompleted: 0, txBytes: 0, held: 0,
    drops: { tpDrops: 0 }, kernel: { tpPackets: n + 4, tpDrops: 0, tpFreezeQCnt: 0 },
  };
}

interface JsonPort {
  pid: number; mode: string; ifname: string; ifindex: number; queue: number; xdpMode: string | null; zeroCopy: boolean;
  fallbackReason: string; startedAt: number; updatedAt: number; alive: boolean; stats: PortStats;
  rxPps: number | null; txPps: number | null;
}
interface JsonSample {
  time: number; ports: JsonPort[];
  interface?: { name: string; counters: Record<string, number>; rates: Record<string, number> | null };
}

/** A version-1 file written by hand (the documented format), atomically. */
function writePortFile(dir: string, name: string, content: Record<string, unknown>): void {
  const tmp = path.join(dir, `.${name}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(content));
  fs.renameSync(tmp, path.join(dir, name));
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', ''], { timeout: 10_000 });
  assert.equal(r.status, 0);
  return r.pid!;
}

test('stat --json prints the published ports with their counters', () => {
  const dir = tmpDir();
  const a = StatsPublisher.open(XDP, dir)!;
  const b = StatsPublisher.open(PACKET, dir)!;
  try {
    a.update(xdpStats(1000));
    b.update(packetStats(50));
    const r = stat(['--json', '--dir', dir]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'one sample, one line');
    const s = JSON.parse(lines[0]!) as JsonSample;
    assert.ok(Math.abs(s.time - Date.now()) < 30_000);
    assert.equal(s.interface, undefined);
    assert.equal(s.ports.length, 2);
    // Sorted by interface: lo before veth0.
    const [p, x] = s.ports as [JsonPort, JsonPort];
    assert.equal(p.mode, 'packet');
    assert.equal(p.ifname, 'lo');
    assert.deepEqual(p.stats, packetStats(50));
    assert.equal(x.pid, process.pid);
    assert.equal(x.alive, true);
    assert.equal(x.mode, 'xdp');
    assert.equal(x.ifname, 'veth0');
    assert.equal(x.ifindex, 7);
    assert.equal(x.queue, 1);
    assert.equal(x.xdpMode, 'native');
    assert.equal(x.zeroCopy, false);
    assert.equal(x.fallbackReason, XDP.fallbackReason);
    assert.deepEqual(x.stats, xdpStats(1000));
    assert.equal(x.rxPps, null, 'one sample: no rate yet');
    assert.equal(x.txPps, null);
  } finally {
    a.close();
    b.close();
  }
});

test('stat --interval: rates between samples come from the ports\' own update times', { timeout: 30_000 }, async () => {
  const dir = tmpDir();
  const name = `${process.pid}-777.json`; // this process is alive: the file is a live port's
  const t0 = Date.now();
  const body = (updatedAt: number, rx: number, tx: number) => ({
    version: 1, pid: process.pid, startedAt: t0, ...XDP, updatedAt,
    stats: { ...xdpStats(0), rxPackets: rx, txCompleted: tx },
  });
  writePortFile(dir, name, body(t0, 1000, 100));
  const child = spawn(process.execPath, [BIN, 'stat', '--json', '--dir', dir, '--interval', '1', '--count', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const samples: JsonSample[] = [];
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        samples.push(JSON.parse(out.slice(0, nl)) as JsonSample);
        out = out.slice(nl + 1);
        // After each sample, the port "publishes" again: 1.5 s later by its clock, 7500 more frames received.
        if (samples.length === 1) writePortFile(dir, name, body(t0 + 1500, 8500, 400));
        if (samples.length === 3) resolve();
      }
    });
    child.once('exit', () => resolve());
  });
  assert.equal(await done, 0, err);
  assert.equal(samples.length, 3, err);
  const rates = samples.map((s) => [s.ports[0]?.rxPps, s.ports[0]?.txPps]);
  assert.deepEqual(rates[0], [null, null]);
  assert.deepEqual(rates[1], [5000, 200]);
  // Not rewritten since: the rates of its latest update still hold.
  assert.deepEqual(rates[2], [5000, 200]);
  fs.unlinkSync(path.join(dir, name));
});

test('stat prints the table: mode in words, non-zero drops only, kernel counters, notes', () => {
  const dir = tmpDir();
  const a = StatsPublisher.open(XDP, dir)!;
  const b = StatsPublisher.open({ ...XDP, queue: 2, xdpMode: 'skb', zeroCopy: true, fallbackReason: '' }, dir)!;
  const c = StatsPublisher.open(PACKET, dir)!;
  try {
    a.update(xdpStats(1000));
    b.update({ ...xdpStats(5), drops: { rxRingFull: 0 } });
    c.update(packetStats(50));
    const r = stat(['--dir', dir]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^PID +INTERFACE +QUEUE +MODE +RX PACKETS +RX PPS +TX COMPLETED +TX PPS +HELD +DROPS +KERNEL$/);
    const pid = process.pid;
    assert.match(r.stdout, new RegExp(`^${pid} +lo +0 +packet +50 +- +0 +- +0 +- +tpPackets=54 tpDrops=0 tpFreezeQCnt=0$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${pid} +veth0 +1 +xdp native copy +1000 +- +1001 +- +3 +rxRingFull=5 rxOther=2 +` +
      'rxDropped=7 rxInvalidDescs=0 txInvalidDescs=0 rxRingFull=5 rxFillRingEmptyDescs=0 txRingEmptyDescs=9$', 'm'));
    assert.match(r.stdout, new RegExp(`^${pid} +veth0 +2 +xdp skb zero-copy +5 +- +6 +- +3 +- +rxDropped=7`, 'm'));
    assert.doesNotMatch(r.stdout, /rxFillRingEmpty=/, 'zero drops are left out');
    assert.match(r.stdout, new RegExp(`^  pid ${pid} veth0 queue 1: zero-copy refused by the driver of veth0`, 'm'));
    assert.equal(lines.filter((l) => l.startsWith(String(pid))).length, 3);
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

test('stat removes the files of exited processes; with none open it says so', () => {
  const dir = tmpDir();
  const pid = deadPid();
  const t = Date.now();
  const file = path.join(dir, `${pid}-0.json`);
  writePortFile(dir, `${pid}-0.json`, { version: 1, pid, startedAt: t, ...XDP, updatedAt: t, stats: xdpStats(1) });
  let r = stat(['--dir', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^no kbypass ports are open$/m);
  assert.match(r.stdout, /removed 1 file\(s\) left by exited processes/);
  assert.equal(fs.existsSync(file), false);

  r = stat(['--dir', dir, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as JsonSample).ports, []);

  r = stat(['--dir', path.join(dir, 'never-created')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'no kbypass ports are open\n');

  fs.writeFileSync(path.join(dir, 'a-file'), '');
  r = stat(['--dir', path.join(dir, 'a-file')]);
  assert.equal(r.status, 1, 'a --dir that is not a directory fails');
  assert.match(r.stderr, /ENOTDIR/);
});

test('stat -i IF: the interface\'s own counters beside its ports only', () => {
  const dir = tmpDir();
  const a = StatsPublisher.open(XDP, dir)!;     // veth0
  const b = StatsPublisher.open(PACKET, dir)!;  // lo
  try {
    a.update(xdpStats(1000));
    b.update(packetStats(50));
    let r = stat(['--dir', dir, '-i', 'lo', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as JsonSample;
    assert.equal(s.interface?.name, 'lo');
    for (const k of ['rx_packets', 'rx_dropped', 'tx_packets', 'tx_dropped']) {
      assert.equal(typeof s.interface?.counters[k], 'number', k);
    }
    assert.equal(s.interface?.rates, null);
    assert.deepEqual(s.ports.map((p) => p.ifname), ['lo']);

    r = stat(['--dir', dir, '--interface', 'lo']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^interface lo \(\/sys\/class\/net\/lo\/statistics/m);
    assert.match(r.stdout, /rx_packets=\d+ +rx_bytes=\d+ +rx_dropped=\d+/);
    assert.match(r.stdout, /tx_packets=\d+/);
    assert.match(r.stdout, new RegExp(`^${process.pid} +lo +0 +packet +50 `, 'm'));
    assert.doesNotMatch(r.stdout, /veth0/);

    r = stat(['--dir', dir, '-i', 'kbypass-none0']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no network interface named 'kbypass-none0'/);
  } finally {
    a.close();
    b.close();
  }
  const r = stat(['--dir', dir, '-i', 'lo']);
  assert.match(r.stdout, /^no kbypass ports are open on lo$/m);
});

test('stat: bad usage exits 2 with a message; --help exits 0; kbypass --help lists stat', () => {
  for (const args of [
    ['--count', '0'], ['--count', '1.5'], ['--count', '2000000'], ['--interval', 'abc'], ['--interval', '0.01'],
    ['--interval', '-1'], ['--interval'], ['extra'], ['--bogus'], ['-i', 'a/b'], ['-i', '..'], ['--dir', ''],
  ]) {
    const r = stat(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^kbypass stat: /, args.join(' '));
    assert.match(r.stderr, /Usage: kbypass stat/);
  }
  const h = stat(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Usage: kbypass stat/);
  assert.match(h.stdout, /--interval SECONDS/);
  const m = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(m.status, 0);
  assert.match(m.stdout, /^ {2}stat \[--interval SECONDS\]/m);
});

test('stat --count 3 --interval 0.2 takes three samples, and Ctrl-C ends an endless run with 0', { timeout: 30_000 }, async () => {
  const dir = tmpDir();
  const r = stat(['--dir', dir, '--json', '--count', '3', '--interval', '0.2']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 3);

  const child = spawn(process.execPath, [BIN, 'stat', '--dir', dir, '--interval', '0.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => resolve(c));
    const poll = setInterval(() => {
      if ((out.match(/no kbypass ports are open/g) ?? []).length >= 2) { clearInterval(poll); child.kill('SIGINT'); }
    }, 50);
  });
  assert.equal(code, 0);
  assert.match(out, /^-- \d{4}-\d\d-\d\dT/m);
});
