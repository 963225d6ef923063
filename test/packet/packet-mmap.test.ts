/**
 * PACKET_MMAP (TPACKET_V3) between two namespaces: every frame arrives once, in order, with its kernel timestamp;
 * held frames keep their block until released; a flood into a small ring adds up (received + tp_drops = sent);
 * a fanout group shares the traffic without losing any.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeIn } from '../../bench/packet/testbed';
import { RX_FIXTURE, TX_FIXTURE, dropTotal, frameAtoB, sendAndReceive, testbedFor, type RxResult } from '../helpers/packet';

const COUNT = 20_000;

test(`TPACKET_V3: ${COUNT} frames arrive once, in order, with good checksums and timestamps`, async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const { rx, tx, rxReady } = await sendAndReceive(tb,
    { port: { ifname: tb.ifB, mode: 'packet', tx: false }, expect: COUNT, seconds: 30 },
    { port: { ifname: tb.ifA, mode: 'xdp', rx: false }, payload: 64, count: COUNT, pps: 100_000 });
  assert.equal(rxReady.mode, 'packet');
  assert.equal(tx.stats.txCompleted, COUNT);
  assert.equal(rx.ours, COUNT);
  assert.equal(rx.missing, 0);
  assert.equal(rx.duplicates, 0);
  assert.equal(rx.outOfOrder, 0);
  assert.equal(rx.badChecksum, 0);
  assert.equal(rx.metaBad, 0);
  assert.equal(dropTotal(rx.stats), 0);
  // The socket also sees what nsB sends (ICMP port unreachable for our UDP, rate-limited): all of it counted.
  assert.equal(rx.stats.kernel['tpPackets'], rx.frames);
  assert.equal(rx.stats.rxPackets, rx.frames);
});

test('TPACKET_V3 with event-loop delivery and held frames (a held block stays ours until released)', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const { rx } = await sendAndReceive(tb,
    { port: { ifname: tb.ifB, mode: 'packet', tx: false }, expect: 5000, seconds: 30, event: true, holdEvery: 100 },
    { port: { ifname: tb.ifA, mode: 'packet', rx: false }, payload: 64, count: 5000, pps: 50_000 });
  assert.equal(rx.ours, 5000);
  assert.equal(rx.held, 50);
  assert.equal(rx.heldIntact, 50);
  assert.equal(dropTotal(rx.stats), 0);
});

test('TPACKET_V3 flood into a small ring: received + tp_drops = sent', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const count = 50_000;
  const { rx, tx } = await sendAndReceive(tb,
    { port: { ifname: tb.ifB, mode: 'packet', tx: false, blockSize: 4096, blockCount: 2 }, expect: count, seconds: 20, slowMicros: 5 },
    { port: { ifname: tb.ifA, mode: 'packet', rx: false }, payload: 64, count });
  assert.equal(tx.stats.txCompleted, count);
  const dropped = rx.stats.drops['tpDrops'] ?? 0;
  // A frame the receiving side's backlog could not take never reached the socket: the sending veth counts it in
  // tx_dropped (and the receiving one in rx_dropped too: the same frame, counted once here).
  const lostOnWire = tx.iface['tx_dropped'] ?? 0;
  assert.ok(dropped > 0, 'the flood should overrun two 4 KiB blocks behind a slow receiver');
  assert.equal(rx.ours + dropped + lostOnWire, count,
    `received ${rx.ours} + tp_drops ${dropped} + link drops ${lostOnWire} should be ${count}`);
  assert.equal(rx.stats.kernel['tpPackets'], rx.frames + dropped);
  assert.equal(rx.duplicates, 0);
});

test('TPACKET_V3 fanout: two sockets in one group share the traffic, none lost or seen twice', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const count = 10_000;
  const port = { ifname: tb.ifB, mode: 'packet', tx: false, fanout: { id: 4242, type: 'lb' } };
  const rxs = [0, 1].map(() => nodeIn(tb.nsB, RX_FIXTURE, [JSON.stringify({ port, dstPort: 9001, expect: count, seconds: 30 })], { keepStdin: true }));
  try {
    for (const r of rxs) assert.equal((await r.nextJson<{ ready: boolean }>(15_000)).ready, true);
    const s = nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifA, mode: 'packet', rx: false }, frame: frameAtoB(tb), payload: 64, count, pps: 50_000 })]);
    await s.nextJson(15_000);
    await s.nextJson(45_000);
    await new Promise((r) => setTimeout(r, 300));
    const results: RxResult[] = [];
    for (const r of rxs) { r.child.stdin?.end(); results.push(await r.nextJson<RxResult>(15_000)); }
    const [a, b] = results as [RxResult, RxResult];
    assert.equal(a.ours + b.ours, count);
    assert.ok(a.ours > count / 4 && b.ours > count / 4, `load-balanced: ${a.ours} / ${b.ours}`);
    assert.equal(a.duplicates + b.duplicates, 0);
    assert.equal(a.missing + b.missing, count); // each sees a share; together they miss nothing
    assert.equal(dropTotal(a.stats) + dropTotal(b.stats), 0);
  } finally {
    for (const r of rxs) r.kill();
  }
});
