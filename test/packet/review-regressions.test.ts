/**
 * Regressions from the review of packet I/O: release() and close() from a
 * handler, re-entrant calls, a held TPACKET_V3 block on wrap and while idle, TX length limits and a throwing
 * filler, hold/release/hold, set-up failures that must leave nothing bound, a foreign XDP program, and a
 * fanout member that leaves its group on close. Each reproduces a defect the review found in the first version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { nodeIn, runIn, type NsProcess, type Testbed } from '../../bench/packet/testbed';
import { native } from '../../src/native/binding';
import { RX_FIXTURE, TX_FIXTURE, frameAtoB, testbedFor, type RxResult } from '../helpers/packet';

const REVIEW = path.join(__dirname, '..', 'fixtures', 'packet-review.js');
const SINK = path.join(__dirname, '..', '..', 'bench', 'packet', 'sink.js');

function send(tb: Testbed, count: number, pps: number): NsProcess {
  return nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifA, mode: 'packet', rx: false }, frame: frameAtoB(tb), payload: 64, count, pps })]);
}

async function scenario(tb: Testbed, name: string, mode: 'xdp' | 'packet', count: number, pps: number): Promise<Record<string, unknown>> {
  const p = nodeIn(tb.nsB, REVIEW, [name, tb.ifB, mode, String(count)], { timeoutMs: 40_000 });
  const ready = await p.nextJson<{ ready?: boolean; error?: boolean; message?: string }>(15_000);
  assert.equal(ready.ready, true, ready.message);
  const s = send(tb, count, pps);
  let line: { result?: Record<string, unknown>; error?: boolean; stack?: string };
  do line = await p.nextJson(30_000); while (line.result === undefined && !line.error);
  assert.ok(!line.error, line.stack);
  await s.result;
  await p.succeeded();
  return line.result!;
}

for (const mode of ['xdp', 'packet'] as const) {
  test(`${mode}: release() from inside a handler keeps every frame in one place`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'releaseInHandler', mode, 4000, 20_000);
    // Every frame received or dropped by a counted reason (a 64-entry ring can overflow), none twice, none changed.
    assert.deepEqual(r, { all: 4000, dup: 0, bad: 0, held: 1 });
  });

  test(`${mode}: close() from a handler under start(): no handler call after it, no error, no crash`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'closeInHandler', mode, 2000, 20_000);
    assert.deepEqual(r, { calls: 5, after: 0, errors: 0, receive: 'ERR_KBYPASS_PORT_CLOSED' });
  });

  test(`${mode}: re-entrant receive()/transmit() are refused with ERR_KBYPASS_REENTRANT; forwarding is allowed`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'reentrant', mode, 200, 10_000);
    assert.deepEqual(r, {
      nestedReceive: 'ERR_KBYPASS_REENTRANT', inner: 'ERR_KBYPASS_REENTRANT', nestedTransmit: 'none',
      claim: 'ERR_KBYPASS_REENTRANT', claimInFiller: 'none', forwarded: 1,
    });
  });

  test(`${mode}: TX frames are capped at MTU + 14; a throwing filler's frames are counted and sent`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'txLimits', mode, 10, 1000);
    assert.deepEqual(r, { cap: 1514, tooLong: 'ERR_OUT_OF_RANGE', threw: 'undefined', submitted: 3, completed: 3 });
  });

  test(`${mode}: hold, release, hold in one handler call really holds`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'holdTwice', mode, 200, 10_000);
    assert.equal(r['held'], 1);
    assert.equal(r['heldAfter'], 1);
    assert.equal(r['heldReleased'], 0);
  });
}

test('packet: a held block is not delivered again when the ring wraps, and the walk goes on once it is released', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const p = nodeIn(tb.nsB, REVIEW, ['heldBlockWrap', tb.ifB, 'packet', '200000'], { timeoutMs: 40_000 });
  assert.equal((await p.nextJson<{ ready: boolean }>(15_000)).ready, true);
  const first = send(tb, 2000, 20_000);
  await first.result;
  assert.equal((await p.nextJson<{ phase: string }>(15_000)).phase, 'released');
  const second = send(tb, 2000, 20_000);
  const { result } = await p.nextJson<{ result: { before: number; after: number; dup: number; held: number } }>(20_000);
  await second.result;
  assert.equal(result.dup, 0);
  assert.ok(result.before > 0 && result.before < 2000, `the ring froze on the held block after ${result.before} frames`);
  assert.ok(result.after > 0, 'frames arrive again after the release');
  assert.equal(result.held, 0);
});

for (const mode of ['packet', 'xdp'] as const) {
  test(`${mode}: an idle event-loop port costs no CPU, a held frame (a held block) included`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const r = await scenario(tb, 'heldIdleCpu', mode, 50, 1000);
    assert.equal(r['held'], true);
    assert.ok((r['cpuMs'] as number) < 200, `${String(r['cpuMs'])} ms of CPU in an idle second`);
  });
}

test('xdp: another program on the interface is named as the cause, and a failed open leaves the queue free', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const foreign = nodeIn(tb.nsB, SINK, [tb.ifB], { keepStdin: true });
  try {
    await foreign.nextJson(15_000);
    const p = nodeIn(tb.nsB, path.join(__dirname, '..', 'fixtures', 'packet-open.js'), [JSON.stringify([{ ifname: tb.ifB, mode: 'xdp' }])]);
    const a = await p.nextJson<{ ok: boolean; code?: string; message?: string }>(15_000);
    assert.equal(a.ok, false);
    assert.equal(a.code, 'EBUSY');
    assert.match(a.message ?? '', /xdp-attach: .*another XDP program is attached/);
  } finally {
    foreign.child.stdin?.end();
    await foreign.result;
  }
  // The failed attempt kept nothing bound: the queue opens at once.
  const again = nodeIn(tb.nsB, path.join(__dirname, '..', 'fixtures', 'packet-open.js'), [JSON.stringify([{ ifname: tb.ifB, mode: 'xdp' }])]);
  assert.equal((await again.nextJson<{ ok: boolean }>(15_000)).ok, true);
});

test('packet fanout: a member that closes leaves the group at once', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const port = { ifname: tb.ifB, mode: 'packet', tx: false, fanout: { id: 99, type: 'lb' } };
  const script = `const { openPort } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'packet', 'index.js'))});
    openPort(${JSON.stringify(port)}).then((p) => { p.close(); console.log('{"closed":true}'); setTimeout(() => {}, 20000); });`;
  const quitter = runIn(tb.nsB, process.execPath, ['-e', script]);
  const stayer = nodeIn(tb.nsB, RX_FIXTURE, [JSON.stringify({ port, dstPort: 9001, expect: 2000, seconds: 20 })], { keepStdin: true });
  try {
    await quitter.nextJson(15_000);
    await stayer.nextJson(15_000);
    await send(tb, 2000, 20_000).result;
    await new Promise((r) => setTimeout(r, 300));
    stayer.child.stdin?.end();
    const r = await stayer.nextJson<RxResult>(15_000);
    assert.equal(r.ours, 2000, 'the closed member (its process still alive) took no share');
  } finally {
    quitter.kill();
    stayer.kill();
  }
});

test('the native program loader reports a bad program kind without stray bytes', (t) => {
  if (process.getuid?.() !== 0) { t.skip('loading BPF programs needs root'); return; }
  assert.throws(() => native().xdpProgLoad(7, 0), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'EINVAL');
    assert.doesNotMatch(e.message, /verifier log/);
    return true;
  });
});
