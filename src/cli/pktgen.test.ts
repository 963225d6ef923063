/**
 * `kbypass pktgen`: argument parsing (bad usage exits 2 with a message), and end to end on a testbed, in AF_XDP
 * and in AF_PACKET mode: 1000 frames sent from nsA arrive in nsB (captured by `kbypass capture`, read back with
 * tshark) with sequence numbers 0..999 in order, and the summary says 1000 completed; `--rate` paces, `-d` and
 * SIGINT stop it. Runs from dist (bin/kbypass.js loads dist/src/cli/main.js): build first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { nodeIn, type Testbed } from '../../bench/packet/testbed';
import {
  BIN, assertBadUsageExits, assertUsageErrors, hasTshark, run, startCapture, tmpDirFor, tsharkFields, udpSink, waitForStderr,
} from '../../test/helpers/cli';
import { testbedFor } from '../../test/helpers/packet';
import type { CaptureSummary } from './capture';
import { PKTGEN_USAGE, parsePktgenArgs, type PktgenSummary } from './pktgen';

const COUNT = 1000;
const REQUIRED = ['-i', 'eth0', '--dst-ip', '192.0.2.2', '--dst-mac', '02:00:00:00:00:02'];

// ---------------------------------------------------------------------------------------------- parsing

test('pktgen: options parse to their values and defaults', () => {
  assert.deepEqual(parsePktgenArgs(REQUIRED), {
    ifname: 'eth0', srcIp: null, dstIp: '192.0.2.2', srcMac: null, dstMac: '02:00:00:00:00:02', srcPort: 9000, dstPort: 9001,
    size: 64, count: null, duration: 10, rate: null, mode: 'auto', queue: 0, batch: 64, json: false, help: false,
  });
  const o = parsePktgenArgs([...REQUIRED, '--src-ip', '192.0.2.1', '--src-mac', '02:00:00:00:00:01', '--src-port', '1', '--dst-port=2',
    '-s', '1400', '-c', '5000', '--rate', '2e5', '--mode', 'packet', '-q', '1', '--batch', '16', '--json']);
  assert.equal(o.srcIp, '192.0.2.1');
  assert.equal(o.srcMac, '02:00:00:00:00:01');
  assert.equal(o.srcPort, 1);
  assert.equal(o.dstPort, 2);
  assert.equal(o.size, 1400);
  assert.equal(o.count, 5000);
  assert.equal(o.duration, null, 'no default duration with a count');
  assert.equal(o.rate, 200_000);
  assert.equal(o.mode, 'packet');
  assert.equal(o.queue, 1);
  assert.equal(o.batch, 16);
  assert.equal(o.json, true);
  assert.equal(parsePktgenArgs([...REQUIRED, '-c', '10', '-d', '0.5']).duration, 0.5, 'both limits: whichever comes first');
  assert.equal(parsePktgenArgs(['--help']).help, true);
});

test('pktgen: bad usage throws ERR_KBYPASS_USAGE with a message that names the option', () => {
  const bad: Array<[string[], RegExp]> = [
    [[], /-i\/--interface is required/],
    [['-i', 'eth0', '--dst-mac', '02:00:00:00:00:02'], /--dst-ip is required/],
    [['-i', 'eth0', '--dst-ip', '192.0.2.2'], /--dst-mac is required/],
    [[...REQUIRED.slice(0, 2), '--dst-ip', '192.0.2', '--dst-mac', '02:00:00:00:00:02'], /--dst-ip must be an IPv4 address.*got '192\.0\.2'/],
    [[...REQUIRED.slice(0, 4), '--dst-mac', '02:00:00:00:00'], /--dst-mac must be a MAC address/],
    [[...REQUIRED, '--src-ip', '300.1.1.1'], /--src-ip must be an IPv4 address/],
    [[...REQUIRED, '--src-mac', 'zz:00:00:00:00:00'], /--src-mac must be a MAC address/],
    [[...REQUIRED, '--src-port', '65536'], /--src-port must be from 0 to 65535/],
    [[...REQUIRED, '-s', '3'], /-s\/--size must be from 4 to 65507/],
    [[...REQUIRED, '-c', '0'], /-c\/--count must be from 1/],
    [[...REQUIRED, '-d', '0'], /-d\/--duration takes a number of seconds above 0/],
    [[...REQUIRED, '--rate', 'fast'], /--rate takes a number of frames per second/],
    [[...REQUIRED, '--batch', '0'], /--batch must be from 1 to 4096/],
    [[...REQUIRED, '--mode', 'dpdk'], /--mode must be xdp, packet or auto/],
    [[...REQUIRED, '--bogus'], /Unknown option '--bogus'/],
    [[...REQUIRED, 'extra'], /Unexpected argument 'extra'/],
  ];
  assertUsageErrors(parsePktgenArgs, bad);
});

test('kbypass pktgen: bad usage exits 2 with a message; --help exits 0', () => {
  assertBadUsageExits('pktgen', [['pktgen'], ['pktgen', '-i', 'lo', '--dst-ip', '1.2.3.4'], ['pktgen', ...REQUIRED, '-s', 'big'], ['pktgen', '-x']]);
  // Checked against the interface and the rings: a payload larger than lo's MTU or a TX slot is bad usage too.
  const big = run(['pktgen', '-i', 'lo', '--dst-ip', '127.0.0.1', '--dst-mac', '00:00:00:00:00:00', '-s', '65507', '-c', '1']);
  assert.equal(big.status, 2, big.stderr);
  assert.match(big.stderr, /^kbypass pktgen: -s 65507 makes .*(MTU|TX ring slot)/);
  const h = run(['pktgen', '-h']);
  assert.equal(h.status, 0);
  assert.equal(h.stdout, PKTGEN_USAGE);
});

test('kbypass pktgen on an interface that does not exist exits 1 with the errno code', () => {
  const r = run(['pktgen', '-i', 'kbp-nonesuch', '--dst-ip', '192.0.2.2', '--dst-mac', '02:00:00:00:00:02', '-c', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /ENODEV/);
});

// ---------------------------------------------------------------------------------------------- end to end

const pktgenArgs = (tb: Testbed, ...more: string[]): string[] =>
  ['pktgen', '-i', tb.ifA, '--dst-ip', tb.ipB, '--dst-mac', tb.macB, '--json', ...more];

for (const mode of ['xdp', 'packet'] as const) {
  test(`kbypass pktgen --mode ${mode}: ${COUNT} frames, sequence numbers 0..${COUNT - 1} in order, all completed`, { timeout: 120_000 }, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    if (!hasTshark()) { t.skip('tshark is not installed'); return; }
    const file = path.join(tmpDirFor(t, 'kbp-pktgen-'), 'rx.pcap');
    await udpSink(t, tb);
    const cap = await startCapture(t, tb, ['-w', file, '-c', String(COUNT), '-G', '60', '--json'], 90_000);

    const gen = nodeIn(tb.nsA, BIN, pktgenArgs(tb, '-c', String(COUNT), '--mode', mode), { timeoutMs: 60_000 });
    const g = await gen.succeeded();
    const s = JSON.parse(g.stdout) as PktgenSummary;
    assert.equal(s.mode, mode);
    assert.equal(s.submitted, COUNT);
    assert.equal(s.completed, COUNT);
    assert.equal(s.frameBytes, 42 + 64);
    assert.equal(s.bytes, COUNT * s.frameBytes);
    assert.equal(s.stoppedBy, 'count');
    assert.equal(s.txError, 0);
    assert.ok(s.pps > 0 && s.seconds > 0);
    assert.match(g.stderr, new RegExp(`sending on ${tb.ifA} queue 0 via ${mode === 'xdp' ? 'AF_XDP' : 'AF_PACKET'}`));

    const c = await cap.succeeded();
    const cs = JSON.parse(c.stdout) as CaptureSummary;
    assert.equal(cs.packets, COUNT, c.stdout);

    const rows = tsharkFields(file, ['ip.src', 'udp.srcport', 'udp.dstport', 'data.data']);
    assert.equal(rows.length, COUNT);
    rows.forEach((row, i) => {
      const [src, sport, dport, data = ''] = row;
      assert.deepEqual([src, sport, dport], [tb.ipA, '9000', '9001'], `packet ${i + 1}: source address (the interface's) and ports`);
      assert.equal(parseInt(data.slice(0, 8), 16), i, `packet ${i + 1}: sequence number`);
    });
  });
}

test('kbypass pktgen --rate paces, -d stops on time, SIGINT stops early with a summary', { timeout: 90_000 }, async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  await udpSink(t, tb);

  // 2000 frames at 10000 pps: about 0.2 s, and not much faster.
  const paced = JSON.parse((await nodeIn(tb.nsA, BIN, pktgenArgs(tb, '-c', '2000', '--rate', '10000', '--mode', 'packet'), { timeoutMs: 30_000 }).succeeded()).stdout) as PktgenSummary;
  assert.equal(paced.completed, 2000);
  assert.ok(paced.seconds >= 0.19, `2000 frames at 10000 pps took ${paced.seconds} s`);
  assert.ok(paced.pps <= 10_500, `paced at ${paced.pps} pps`);

  // -d 0.5 without a count.
  const timed = JSON.parse((await nodeIn(tb.nsA, BIN, pktgenArgs(tb, '-d', '0.5', '--rate', '20000'), { timeoutMs: 30_000 }).succeeded()).stdout) as PktgenSummary;
  assert.equal(timed.stoppedBy, 'duration');
  assert.ok(timed.seconds >= 0.5 && timed.seconds < 3, `ran ${timed.seconds} s`);
  assert.equal(timed.completed, timed.submitted);
  assert.ok(timed.completed > 1000 && timed.completed <= 10_001, `${timed.completed} frames in 0.5 s at 20000 pps`);

  // SIGINT during a long run: it stops, completes what it submitted, and says why.
  const long = nodeIn(tb.nsA, BIN, pktgenArgs(tb, '-d', '60', '--rate', '50000'), { timeoutMs: 30_000 });
  await waitForStderr(long, /sending on/, 15_000);
  await new Promise((r) => setTimeout(r, 1300));
  long.kill('SIGINT');
  const l = await long.succeeded();
  const ls = JSON.parse(l.stdout) as PktgenSummary;
  assert.equal(ls.stoppedBy, 'signal');
  assert.ok(ls.completed > 0 && ls.completed === ls.submitted);
  assert.ok(ls.seconds < 10);
  assert.match(l.stderr, /\d+ pps, [\d.]+ Mbit\/s/, 'a progress line on stderr');
});
