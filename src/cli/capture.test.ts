/**
 * `kbypass capture`: argument parsing (bad usage exits 2 with a message), and end to end on a testbed: `kbypass
 * pktgen` sends 1000 sequence-numbered frames from nsA while `kbypass capture -c 1000` runs in nsB, in AF_PACKET
 * and in AF_XDP mode; tshark must read the file without complaint and find the 1000 frames, in order, packet for
 * packet. Runs from dist (bin/kbypass.js loads dist/src/cli/main.js): build first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeIn } from '../../bench/packet/testbed';
import {
  BIN, assertBadUsageExits, assertUsageErrors, hasTshark, run, startCapture, tmpDirFor, tsharkFields, udpSink, within,
} from '../../test/helpers/cli';
import { testbedFor } from '../../test/helpers/packet';
import { readPcap } from '../packet/pcap';
import { CAPTURE_USAGE, parseCaptureArgs, type CaptureSummary } from './capture';
import type { PktgenSummary } from './pktgen';

const COUNT = 1000;

// ---------------------------------------------------------------------------------------------- parsing

test('capture: options parse to their values and defaults', () => {
  const d = parseCaptureArgs(['-i', 'eth0', '-w', 'out.pcap']);
  assert.deepEqual(d, { ifname: 'eth0', file: 'out.pcap', queue: 0, mode: 'packet', count: null, duration: null, snaplen: 262144, bufferKiB: null, json: false, help: false });
  const o = parseCaptureArgs(['--interface=veth1', '--write', '-', '-q', '3', '--mode', 'xdp', '-c1000', '-G', '2.5', '-s', '96', '-B', '65536', '--json']);
  assert.deepEqual(o, { ifname: 'veth1', file: '-', queue: 3, mode: 'xdp', count: 1000, duration: 2.5, snaplen: 96, bufferKiB: 65536, json: true, help: false });
  assert.equal(parseCaptureArgs(['-h']).help, true, '-h needs no other option');
});

test('capture: bad usage throws ERR_KBYPASS_USAGE with a message that names the option', () => {
  const bad: Array<[string[], RegExp]> = [
    [[], /-i\/--interface is required/],
    [['-i', 'eth0'], /-w\/--write is required/],
    [['-w', 'x.pcap'], /-i\/--interface is required/],
    [['-i', 'eth0', '-w', 'x', '-c', '0'], /-c\/--count must be from 1/],
    [['-i', 'eth0', '-w', 'x', '-c', 'many'], /-c\/--count takes a whole number/],
    [['-i', 'eth0', '-w', 'x', '-G', '0'], /-G\/--duration takes a number of seconds above 0/],
    [['-i', 'eth0', '-w', 'x', '-G', '-1'], /ambiguous|-G/],
    [['-i', 'eth0', '-w', 'x', '-s', '262145'], /-s\/--snaplen must be from 1 to 262144/],
    [['-i', 'eth0', '-w', 'x', '-q', '65536'], /-q\/--queue must be from 0 to 65535/],
    [['-i', 'eth0', '-w', 'x', '-B', '100'], /-B\/--buffer-size must be from 1024 to 1048576/],
    [['-i', 'eth0', '-w', 'x', '--mode', 'raw'], /--mode must be packet, xdp or auto/],
    [['-i', 'eth0', '-w', 'x', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['-i', 'eth0', '-w', 'x', 'extra'], /Unexpected argument 'extra'/],
    [['-i'], /argument missing/],
  ];
  assertUsageErrors(parseCaptureArgs, bad);
});

test('kbypass capture: bad usage exits 2 with a message; --help exits 0 and warns that xdp takes the traffic', () => {
  assertBadUsageExits('capture', [['capture'], ['capture', '-i', 'lo'], ['capture', '-i', 'lo', '-w', '/dev/null', '-c', 'x'], ['capture', '--nope']]);
  const h = run(['capture', '--help']);
  assert.equal(h.status, 0);
  assert.equal(h.stdout, CAPTURE_USAGE);
  assert.match(h.stdout, /TAKES the queue's traffic AWAY from the kernel/);
  const top = run(['--help']);
  assert.match(top.stdout, /capture -i IF -w FILE\.pcap/);
  assert.match(top.stdout, /pktgen -i IF --dst-ip A --dst-mac M/);
});

test('kbypass capture on an interface that does not exist exits 1 with the errno code', () => {
  const r = run(['capture', '-i', 'kbp-nonesuch', '-w', path.join(os.tmpdir(), `kbp-never-${process.pid}.pcap`)]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /ENODEV/);
});

// ---------------------------------------------------------------------------------------------- end to end

for (const mode of ['packet', 'xdp'] as const) {
  test(`kbypass capture --mode ${mode}: the ${COUNT} frames of kbypass pktgen, packet for packet, readable by tshark`, { timeout: 120_000 }, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    if (!hasTshark()) { t.skip('tshark is not installed'); return; }
    const file = path.join(tmpDirFor(t, 'kbp-capture-'), `${mode}.pcap`);

    await udpSink(t, tb);
    const cap = await startCapture(t, tb, ['-w', file, '-c', String(COUNT), '--mode', mode, '-G', '60', '--json'], 90_000);

    const gen = nodeIn(tb.nsA, BIN, ['pktgen', '-i', tb.ifA, '--dst-ip', tb.ipB, '--dst-mac', tb.macB, '-c', String(COUNT), '--mode', 'packet', '--json'], { timeoutMs: 60_000 });
    const g = await gen.succeeded();
    const sent = JSON.parse(g.stdout) as PktgenSummary;
    assert.equal(sent.completed, COUNT, g.stderr);

    let c = await within(cap, 10_000);
    if (c === null) { cap.kill('SIGINT'); c = await cap.result; }
    assert.equal(c.code, 0, `capture: ${c.stderr}`);
    const summary = JSON.parse(c.stdout) as CaptureSummary;
    assert.equal(summary.mode, mode);
    assert.equal(summary.packets, COUNT, `captured ${summary.packets}: ${c.stdout}`);
    assert.equal(summary.stoppedBy, 'count');
    assert.equal(summary.dropped, 0, JSON.stringify(summary.drops));
    assert.equal(summary.bytes, COUNT * sent.frameBytes);
    assert.match(c.stderr, /listening on/);

    const rows = tsharkFields(file, ['udp.srcport', 'data.data']);
    assert.equal(rows.length, COUNT, 'one row per packet');
    for (let i = 0; i < COUNT; i++) {
      const [port, data = ''] = rows[i]!;
      assert.equal(port, '9000', `packet ${i + 1} is ours`);
      assert.equal(parseInt(data.slice(0, 8), 16), i, `packet ${i + 1} carries sequence number ${i}`);
      assert.equal(data.length, 2 * 64, `packet ${i + 1}: a 64-byte payload`);
    }
    // And our own reader: lengths and timestamps.
    const recs = readPcap(file);
    assert.equal(recs.length, COUNT);
    let last = 0;
    for (const r of recs) {
      assert.equal(r.capLen, sent.frameBytes);
      assert.equal(r.origLen, sent.frameBytes);
      const ts = r.tsSec * 1e9 + r.tsNsec;
      assert.ok(ts >= last, 'timestamps do not go backwards');
      assert.ok(r.tsSec > 1.6e9, 'wall-clock timestamps');
      last = ts;
    }
  });
}

test('kbypass capture stops cleanly on SIGINT and on -G, and -s cuts packets to the snaplen', { timeout: 60_000 }, async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const dir = tmpDirFor(t, 'kbp-capture-');
  await udpSink(t, tb);

  // SIGINT: the frames so far are in the file, the summary says so.
  const file = path.join(dir, 'int.pcap');
  const cap = await startCapture(t, tb, ['-w', file, '-s', '50', '--json'], 30_000);
  const gen = nodeIn(tb.nsA, BIN, ['pktgen', '-i', tb.ifA, '--dst-ip', tb.ipB, '--dst-mac', tb.macB, '-c', '100', '--mode', 'packet'], { timeoutMs: 30_000 });
  await gen.succeeded();
  await new Promise((r) => setTimeout(r, 200));
  cap.kill('SIGINT');
  const c = await cap.result;
  assert.equal(c.code, 0, c.stderr);
  const s = JSON.parse(c.stdout) as CaptureSummary;
  assert.equal(s.stoppedBy, 'signal');
  assert.equal(s.packets, 100);
  assert.equal(s.bytes, 100 * 50, 'each packet cut to the 50-byte snaplen');
  assert.equal(s.wireBytes, 100 * 106, 'with its length on the wire kept');
  const recs = readPcap(file);
  assert.equal(recs.length, 100);
  assert.ok(recs.every((r) => r.capLen === 50 && r.origLen === 106));

  // -G: stops on its own, with nothing captured.
  const started = Date.now();
  const quiet = nodeIn(tb.nsB, BIN, ['capture', '-i', tb.ifB, '-w', path.join(dir, 'quiet.pcap'), '-G', '0.5'], { timeoutMs: 30_000 });
  const q = await quiet.succeeded();
  assert.ok(Date.now() - started >= 500);
  assert.match(q.stdout, /^0 packets captured/m);
  assert.match(q.stdout, /^stopped by: duration$/m);
  assert.equal(readPcap(path.join(dir, 'quiet.pcap')).length, 0, 'an empty but valid pcap file');
});
