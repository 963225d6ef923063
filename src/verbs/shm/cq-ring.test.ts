/**
 * The shared completion queue (layout.ts part 1, cq-ring.ts): fields and order of push → poll, many laps of
 * wrap-around, overrun (refused, flagged, nothing written), arming (NEXT / SOLICITED) and the events counter,
 * attach() checks, and four producer threads against one consumer over a SharedArrayBuffer (with and without
 * one of them on the private lane: cq-lane.test.ts covers that lane).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkCompletion } from '../types';
import { CqRing, OVERRUN, PUSHED, PUSHED_NOTIFY } from './cq-ring';
import {
  CQE_BYTES, CQ_ARM_NEXT, CQ_ARM_NONE, CQ_ARM_SOLICITED, CQ_HEADER_BYTES, CQ_I_CAPACITY, CQ_I_FLAGS, CQ_I_HEAD, CQ_I_MAGIC,
  CQ_I_TAIL, CQ_I_TAIL1, CQ_I_VERSION, LAYOUT_VERSION, cqRegionBytes,
} from './layout';

const wcs = (n: number): WorkCompletion[] => Array.from({ length: n }, () => new WorkCompletion());
const layoutErr = (re: RegExp) => (e: unknown): boolean => (e as { code?: string }).code === 'ERR_KBYPASS_LAYOUT' && re.test((e as Error).message);

function ring(cap: number): { buf: ArrayBuffer; cq: CqRing } {
  const buf = new ArrayBuffer(cqRegionBytes(cap));
  return { buf, cq: CqRing.init(buf, cap) };
}

/** Push a completion whose fields all derive from `i`. */
function pushI(cq: CqRing, i: number, solicited = false): number {
  return cq.push(i % 22, i % 5, i * 3, i + 1e6, (i * 7) >>> 0, 0x100 + (i & 0xffff), 0x200 + (i & 0xff), i & 3, solicited);
}
function checkI(wc: WorkCompletion, i: number): void {
  assert.equal(wc.wrId, i + 1e6, `wrId of completion ${i}`);
  assert.equal(wc.status, i % 22);
  assert.equal(wc.opcode, i % 5);
  assert.equal(wc.byteLen, i * 3);
  assert.equal(wc.immData, (i * 7) >>> 0);
  assert.equal(wc.qpNum, 0x100 + (i & 0xffff));
  assert.equal(wc.srcQp, 0x200 + (i & 0xff));
  assert.equal(wc.wcFlags, i & 3);
  assert.equal(wc.vendorErr, 0);
}

test('init writes the header; an empty CQ polls nothing', () => {
  const { buf, cq } = ring(8);
  const i32 = new Int32Array(buf);
  assert.equal(cq.capacity, 8);
  assert.equal(i32[CQ_I_CAPACITY], 8);
  assert.equal(i32[CQ_I_VERSION]! & 0xffff, LAYOUT_VERSION);
  assert.equal(i32[CQ_I_VERSION]! >>> 16, CQE_BYTES);
  assert.equal(cq.depth, 0);
  assert.equal(cq.ready(), false);
  assert.equal(cq.overrun, false);
  assert.equal(cq.events, 0);
  assert.equal(cq.poll(4, wcs(4)), 0);
});

test('push → poll: every field round-trips, oldest first, extreme values included', () => {
  const { cq } = ring(8);
  assert.equal(cq.push(10, 0x81, 0xffffffff, 2 ** 53 - 1, 0xffffffff, 0xffffff, 0xfffffe, 3, false), PUSHED);
  assert.equal(cq.push(0, 4, 8, 0, 0, 1, 0, 0, true), PUSHED);
  assert.equal(cq.push(5, 2, 0, 12345.0, 0x80000000, 0x800000, 7, 2, false), PUSHED);
  assert.equal(cq.depth, 3);
  assert.equal(cq.ready(), true);
  const out = wcs(2);
  assert.equal(cq.poll(2, out), 2, 'max limits the count');
  assert.deepEqual({ ...out[0] }, { ...new WorkCompletion(), status: 10, opcode: 0x81, byteLen: 0xffffffff, wrId: 2 ** 53 - 1, immData: 0xffffffff, qpNum: 0xffffff, srcQp: 0xfffffe, wcFlags: 3 });
  assert.deepEqual({ ...out[1] }, { ...new WorkCompletion(), status: 0, opcode: 4, byteLen: 8, wrId: 0, qpNum: 1 });
  assert.equal(cq.depth, 1);
  assert.equal(cq.poll(2, out), 1);
  assert.equal(out[0]!.wrId, 12345);
  assert.equal(out[0]!.immData, 0x80000000);
  assert.equal(out[0]!.qpNum, 0x800000);
  assert.equal(cq.poll(2, out), 0);
  assert.equal(cq.depth, 0);
  assert.equal(cq.ready(), false);
});

test('the consumer publishes its head (producers see the space it frees)', () => {
  const { buf, cq } = ring(4);
  const i32 = new Int32Array(buf);
  for (let i = 0; i < 3; i++) pushI(cq, i);
  assert.equal(Atomics.load(i32, CQ_I_TAIL), 3);
  assert.equal(Atomics.load(i32, CQ_I_HEAD), 0);
  cq.poll(2, wcs(2));
  assert.equal(Atomics.load(i32, CQ_I_HEAD), 2);
  // Shared with a producer (as the connection manager does): it sees the head and may fill 4 − 1 = 3 more.
  cq.multiProducer = true;
  const producer = CqRing.attach(buf);
  for (let i = 3; i < 6; i++) assert.equal(pushI(producer, i), PUSHED);
  assert.equal(pushI(producer, 6), OVERRUN);
  const out = wcs(8);
  assert.equal(cq.poll(8, out), 4);
  for (let k = 0; k < 4; k++) checkI(out[k]!, 2 + k);
});

test('a CQ starts single-producer; an attached CQ is always multi-producer; switching on sharing keeps the sequence', () => {
  const { buf, cq } = ring(8);
  assert.equal(cq.multiProducer, false, 'nobody else can push into a CQ never shared');
  const out = wcs(8);
  for (let i = 0; i < 5; i++) assert.equal(pushI(cq, i), PUSHED);
  assert.equal(cq.poll(2, out), 2);
  checkI(out[0]!, 0);
  checkI(out[1]!, 1);
  assert.equal(new Int32Array(buf)[CQ_I_TAIL], 5, 'the single producer publishes its tail');
  // Shared now: the owner and a peer (and a second peer) push in turn, into one sequence.
  cq.multiProducer = true;
  const peer = CqRing.attach(buf);
  const peer2 = CqRing.attach(buf);
  assert.equal(peer.multiProducer, true, "a peer's view of the CQ must claim slots with a CAS");
  // Its consumer runs in another process: the armed flag is read with a locked instruction after the commit
  // (a plain load could pass the commit store, and an arm-then-poll consumer would miss both).
  assert.equal(peer.remote, true, "a peer's view of the CQ is remote");
  assert.equal(cq.remote, false, "the owner's own view is not");
  assert.equal(pushI(peer, 5), PUSHED);
  assert.equal(pushI(cq, 6), PUSHED);
  assert.equal(pushI(peer2, 7), PUSHED);
  assert.equal(pushI(peer, 8), PUSHED);
  assert.equal(pushI(peer2, 9), PUSHED);
  assert.equal(pushI(cq, 10), OVERRUN, '8 waiting: full for everyone');
  assert.equal(pushI(peer, 10), OVERRUN);
  assert.equal(cq.poll(8, out), 8);
  for (let k = 0; k < 8; k++) checkI(out[k]!, 2 + k);
  // Several laps more, the three producers taking turns.
  const producers = [cq, peer, peer2];
  for (let i = 10; i < 200; i++) {
    assert.equal(pushI(producers[i % 3]!, i), PUSHED);
    assert.equal(cq.poll(1, out), 1);
    checkI(out[0]!, i);
  }
});

test('a peer CQ attached as not armable (shared without a channel) never reads the armed word or raises events', () => {
  const { buf, cq } = ring(8);
  cq.multiProducer = true;
  const armable = CqRing.attach(buf);
  const never = CqRing.attach(buf, false);
  assert.equal(armable.armable, true);
  assert.equal(never.armable, false);
  cq.arm(CQ_ARM_NEXT);
  assert.equal(pushI(never, 0), PUSHED, 'no event from a producer that does not look');
  assert.equal(cq.events, 0);
  assert.equal(pushI(armable, 1), PUSHED_NOTIFY, 'the arm was left for one that does');
  assert.equal(cq.events, 1);
  const out = wcs(8);
  assert.equal(cq.poll(8, out), 2);
  checkI(out[0]!, 0);
  checkI(out[1]!, 1);
});

test('wrap-around: 1000 laps of a 4-entry CQ, in varying batch sizes, keep order and fields', () => {
  const cap = 4;
  const { cq } = ring(cap);
  const out = wcs(cap);
  let pushed = 0;
  let polled = 0;
  for (let round = 0; polled < cap * 1000; round++) {
    const n = 1 + (round % cap);
    for (let k = 0; k < n; k++) assert.equal(pushI(cq, pushed++), PUSHED);
    let got = 0;
    while (got < n) {
      const m = cq.poll(1 + (round % 3), out);
      assert.ok(m > 0, 'committed completions are visible');
      for (let k = 0; k < m; k++) checkI(out[k]!, polled++);
      got += m;
    }
    assert.equal(cq.depth, 0);
  }
  assert.equal(cq.overrun, false);
});

test('overrun: a push into a full CQ returns OVERRUN, sets the flag and writes nothing', () => {
  const cap = 8;
  const { buf, cq } = ring(cap);
  for (let i = 0; i < cap; i++) assert.equal(pushI(cq, i), PUSHED);
  cq.arm(CQ_ARM_NEXT);
  const before = new Uint8Array(buf).slice();
  assert.equal(pushI(cq, 99, true), OVERRUN);
  assert.equal(cq.overrun, true);
  const after = new Uint8Array(buf);
  for (let b = 0; b < buf.byteLength; b++) {
    if (b >= CQ_I_FLAGS * 4 && b < CQ_I_FLAGS * 4 + 4) continue;
    if (after[b] !== before[b]) assert.fail(`byte ${b} changed by a refused push`);
  }
  assert.equal(new Int32Array(buf)[CQ_I_FLAGS], 1);
  assert.equal(cq.events, 0, 'an overrun raises no completion event');
  assert.equal(cq.depth, cap);
  const out = wcs(cap);
  assert.equal(cq.poll(cap, out), cap);
  for (let i = 0; i < cap; i++) checkI(out[i]!, i);
  // Space again; the flag is sticky (IBV_EVENT_CQ_ERR is not undone by polling); the arm was not used up.
  assert.equal(pushI(cq, 100), PUSHED_NOTIFY);
  assert.equal(cq.events, 1);
  assert.equal(cq.overrun, true);
  assert.equal(cq.poll(1, out), 1);
  checkI(out[0]!, 100);
});

test('arm NEXT: the next completion (solicited or not) notifies once, then the CQ is disarmed', () => {
  const { cq } = ring(16);
  assert.equal(pushI(cq, 0, true), PUSHED, 'not armed: even a solicited completion does not notify');
  assert.equal(cq.events, 0);
  cq.arm(CQ_ARM_NEXT);
  assert.equal(pushI(cq, 1), PUSHED_NOTIFY);
  assert.equal(cq.events, 1);
  assert.equal(pushI(cq, 2), PUSHED, 'one event per arm');
  assert.equal(pushI(cq, 3, true), PUSHED);
  assert.equal(cq.events, 1);
  cq.arm(CQ_ARM_NEXT);
  assert.equal(pushI(cq, 4, true), PUSHED_NOTIFY);
  assert.equal(cq.events, 2);
  cq.arm(CQ_ARM_NEXT);
  cq.arm(CQ_ARM_NONE);
  assert.equal(pushI(cq, 5), PUSHED, 'disarmed');
  assert.equal(cq.events, 2);
});

test('arm SOLICITED: an error completion notifies too (IB spec), a successful unsolicited one does not', () => {
  const { cq } = ring(16);
  cq.arm(CQ_ARM_SOLICITED);
  assert.equal(cq.push(0, 0, 0, 1, 0, 1, 0, 0, false), PUSHED);
  assert.equal(cq.push(5 /* WR_FLUSH_ERR */, 0, 0, 2, 0, 1, 0, 0, false), PUSHED_NOTIFY);
  assert.equal(cq.events, 1);
});

test('arm SOLICITED: successful unsolicited completions pass silently; the next solicited one notifies once', () => {
  const { buf, cq } = ring(16);
  cq.arm(CQ_ARM_SOLICITED);
  assert.equal(pushI(cq, 0), PUSHED); // status 0, unsolicited
  assert.equal(cq.events, 0);
  assert.equal(pushI(cq, 1), PUSHED_NOTIFY, 'status 1 is an error completion: it notifies even unsolicited');
  assert.equal(cq.events, 1);
  cq.arm(CQ_ARM_SOLICITED);
  assert.equal(pushI(cq, 2, true), PUSHED_NOTIFY);
  assert.equal(cq.events, 2);
  assert.equal(pushI(cq, 3, true), PUSHED, 'disarmed after the event');
  assert.equal(cq.events, 2);
  // An attached producer (a peer) sees the arm and counts its event in the same header.
  cq.multiProducer = true;
  cq.arm(CQ_ARM_SOLICITED);
  const peer = CqRing.attach(buf);
  assert.equal(pushI(peer, 4, true), PUSHED_NOTIFY);
  assert.equal(cq.events, 3);
  assert.equal(peer.events, 3);
  const out = wcs(8);
  assert.equal(cq.poll(8, out), 5);
  for (let i = 0; i < 5; i++) checkI(out[i]!, i);
});

test('attach() checks magic, version, CQE size and capacity against the region', () => {
  const good = (): ArrayBuffer => { const b = new ArrayBuffer(cqRegionBytes(8)); CqRing.init(b, 8); return b; };
  assert.equal(CqRing.attach(good()).capacity, 8);

  assert.throws(() => CqRing.attach(new ArrayBuffer(CQ_HEADER_BYTES - 4)), layoutErr(/smaller than its header/));
  assert.throws(() => CqRing.attach(new ArrayBuffer(cqRegionBytes(8))), layoutErr(/bad magic/), 'zeroed memory');
  let b = good();
  new Int32Array(b)[CQ_I_MAGIC] = 0x5152424b; // an RQ's magic
  assert.throws(() => CqRing.attach(b), layoutErr(/bad magic/));
  b = good();
  new Int32Array(b)[CQ_I_VERSION] = (LAYOUT_VERSION + 1) | (CQE_BYTES << 16);
  assert.throws(() => CqRing.attach(b), layoutErr(/version/));
  b = good();
  new Int32Array(b)[CQ_I_VERSION] = LAYOUT_VERSION | (32 << 16);
  assert.throws(() => CqRing.attach(b), layoutErr(/version/), 'a different CQE size');
  for (const cap of [0, -8, 6, 16, 1 << 30]) {
    b = good();
    new Int32Array(b)[CQ_I_CAPACITY] = cap;
    assert.throws(() => CqRing.attach(b), layoutErr(/capacity/), `capacity ${cap}`);
  }
  // A bigger region than needed is fine (pages round up).
  const big = new ArrayBuffer(cqRegionBytes(8) + 4096);
  CqRing.init(big, 8);
  assert.equal(CqRing.attach(big).capacity, 8);
});

for (const lane of [false, true]) {
  test(`four producer threads and one consumer over shared memory${lane ? ', one producer on the private lane' : ''}: nothing lost, duplicated or reordered per producer`, { timeout: 30_000 }, async () => {
    const cap = 64;
    const producers = 4;
    const perProducer = 20_000;
    const sab = new SharedArrayBuffer(cqRegionBytes(cap));
    const cq = CqRing.init(sab as unknown as ArrayBuffer, cap);
    cq.multiProducer = true;
    const modulePath = path.join(__dirname, 'cq-ring.js');
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { CqRing, OVERRUN } = require(${JSON.stringify(modulePath)});
      const cq = CqRing.attach(workerData.sab);
      const claimed = workerData.lane && cq.claimLane(); // all four try: one at a time has it
      let overruns = 0;
      for (let i = 0; i < workerData.n; i++) {
        // Completion i of producer p: wr_id p * 1e6 + i, the other fields derived from it.
        while (cq.push(0, workerData.p, i, workerData.p * 1e6 + i, i ^ 0x5a5a, workerData.p, i & 0xffff, 0, false) === OVERRUN) overruns++;
      }
      cq.releaseLane(); // done: the tail is stored for a next owner
      parentPort.postMessage({ overruns, claimed });
    `;
    const workers = Array.from({ length: producers }, (_, p) => new Worker(code, { eval: true, workerData: { sab, p, n: perProducer, lane } }));
    const done = Promise.all(workers.map((w) => new Promise<{ overruns: number; claimed: boolean }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    try {
      const next = new Array<number>(producers).fill(0);
      const out = wcs(32);
      const total = producers * perProducer;
      let got = 0;
      let bad = '';
      const deadline = Date.now() + 20_000;
      while (got < total && Date.now() < deadline) {
        const n = cq.poll(32, out);
        for (let k = 0; k < n; k++) {
          const wc = out[k]!;
          const p = wc.opcode;
          const i = wc.byteLen;
          if (bad === '' && (p < 0 || p >= producers || i !== next[p] || wc.wrId !== p * 1e6 + i || wc.immData !== ((i ^ 0x5a5a) >>> 0) ||
              wc.qpNum !== p || wc.srcQp !== (i & 0xffff))) {
            bad = `completion ${got + k}: producer ${p}, index ${i} (expected ${next[p]}), wrId ${wc.wrId}, imm ${wc.immData}`;
          }
          if (p >= 0 && p < producers) next[p] = i + 1;
        }
        got += n;
        if (n === 0) await new Promise((r) => setImmediate(r));
      }
      assert.equal(bad, '');
      assert.equal(got, total, `polled ${got} of ${total} within the deadline`);
      assert.deepEqual(next, new Array<number>(producers).fill(perProducer));
      const reports = await done;
      assert.equal(cq.poll(32, out), 0, 'nothing left over');
      // The producers outran a 64-entry CQ: they were refused (and retried) rather than overwriting entries.
      const overruns = reports.reduce((s, r) => s + r.overruns, 0);
      assert.equal(cq.overrun, overruns > 0);
      // A producer that finished gives the lane back, so one that starts later may have it next.
      const claimers = reports.filter((r) => r.claimed).length;
      assert.ok(lane ? claimers >= 1 : claimers === 0, `${claimers} producer(s) had the private lane`);
      assert.equal(new Int32Array(sab)[CQ_I_TAIL1], claimers * perProducer, 'the private lane carried all of their completions (its tail, stored on release)');
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
}

test('fillHoles: a slot claimed by a producer that died before committing stops poll; once filled, poll passes it', () => {
  const { buf, cq } = ring(8);
  const peer = CqRing.attach(buf);
  assert.equal(pushI(peer, 0), PUSHED);
  // A second producer claims slot 1 (moves the tail) and dies before writing it.
  Atomics.add(new Int32Array(buf), CQ_I_TAIL, 1);
  assert.equal(pushI(peer, 2), PUSHED);
  const out = wcs(8);
  assert.equal(cq.poll(8, out), 1, 'the hole stops the consumer after the first completion');
  checkI(out[0]!, 0);
  assert.equal(cq.poll(8, out), 0);
  assert.equal(cq.fillHoles(), 1);
  assert.equal(cq.poll(8, out), 1, 'the skip entry is passed over, not reported');
  checkI(out[0]!, 2);
  assert.equal(cq.fillHoles(), 0, 'nothing left to fill');
});
