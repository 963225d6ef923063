/**
 * The CQ's private lane (layout.ts part 1, cq-ring.ts claimLane): one producer at a time owns it and pushes
 * with plain stores; everyone else shares the other lane. Who may claim it, where its completions land, that
 * poll drains both lanes in turn without losing or reordering any producer's completions, overrun of the lane
 * alone, handing it over with its tail, refusing a corrupt one, and arming. (Four producer threads against one
 * consumer, one of them on the private lane, are in cq-ring.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkCompletion } from '../types';
import { CqRing, OVERRUN, PUSHED, PUSHED_NOTIFY } from './cq-ring';
import { CQE_SEQ, CQ_ARM_NEXT, CQ_I_HEAD1, CQ_I_OWNER1, CQ_I_TAIL, CQ_I_TAIL1, cqRegionBytes, cqeOffset } from './layout';

const wcs = (n: number): WorkCompletion[] => Array.from({ length: n }, () => new WorkCompletion());

function ring(cap: number): { buf: ArrayBuffer; cq: CqRing } {
  const buf = new ArrayBuffer(cqRegionBytes(cap));
  const cq = CqRing.init(buf, cap);
  cq.multiProducer = true; // shared, as the connection manager does before a peer attaches
  return { buf, cq };
}

/** Push completion `i` of producer `p` (wr_id p * 1000 + i). */
const push = (cq: CqRing, p: number, i: number, solicited = false): number =>
  cq.push(0, 0, i, p * 1000 + i, 0, p, 0, 0, solicited);

/** Poll everything (in batches of `batch`), as wr_ids. */
function drain(cq: CqRing, batch = 64): number[] {
  const out = wcs(batch);
  const ids: number[] = [];
  for (let n; (n = cq.poll(batch, out)) !== 0;) for (let k = 0; k < n; k++) ids.push(out[k]!.wrId);
  return ids;
}

/** The wr_ids of producer `p`, in the order polled. */
const of = (ids: number[], p: number): number[] => ids.filter((id) => Math.floor(id / 1000) === p);

test('one peer view at a time owns the private lane; the owner itself never does', () => {
  const { buf, cq } = ring(8);
  const i32 = new Int32Array(buf);
  assert.equal(cq.claimLane(), false, "the CQ's own view pushes into the shared lane");
  const a = CqRing.attach(buf);
  const b = CqRing.attach(buf);
  assert.equal(a.ownsLane, false, 'attaching does not claim');
  assert.equal(a.claimLane(), true);
  assert.equal(a.claimLane(), true, 'claiming again keeps it');
  assert.equal(b.claimLane(), false, 'taken');
  assert.equal(i32[CQ_I_OWNER1], 1);
  // Where the completions land: a's in the private lane, b's and the owner's in the shared one.
  assert.equal(push(a, 1, 0), PUSHED);
  assert.equal(push(b, 2, 0), PUSHED);
  assert.equal(push(cq, 3, 0), PUSHED);
  assert.equal(i32[(cqeOffset(8, 1, 0) >> 2) + CQE_SEQ], 1, "a's completion is the private lane's first");
  assert.equal(i32[(cqeOffset(8, 0, 1) >> 2) + CQE_SEQ], 2, "b's and the owner's take the shared lane's tickets");
  assert.equal(i32[CQ_I_TAIL], 2);
  assert.equal(i32[CQ_I_TAIL1], 0, 'the private tail stays with its producer until it gives the lane back');
  assert.equal(cq.depth, 3);
  assert.equal(cq.ready(), true);
  assert.deepEqual(drain(cq).sort((x, y) => x - y), [1000, 2000, 3000]);
  assert.equal(cq.ready(), false);
  assert.equal(cq.depth, 0);
});

test('poll takes both lanes, starting with each in turn, and keeps every producer in order', () => {
  const { buf, cq } = ring(16);
  const a = CqRing.attach(buf);
  const b = CqRing.attach(buf);
  assert.equal(a.claimLane(), true);
  for (let i = 0; i < 4; i++) { push(a, 1, i); push(b, 2, i); }
  const out = wcs(1);
  const firsts: number[] = [];
  for (let k = 0; k < 4; k++) { assert.equal(cq.poll(1, out), 1); firsts.push(Math.floor(out[0]!.wrId / 1000)); }
  assert.deepEqual(firsts.sort(), [1, 1, 2, 2], 'polls of one take from each lane in turn: neither starves');
  // Many laps, the two producers pushing at different rates, polled in batches of 3.
  const ids = drain(cq, 3);
  for (let i = 4, j = 4; i < 400; i++) {
    assert.equal(push(a, 1, i % 1000), PUSHED);
    if (i % 3 === 0) assert.equal(push(b, 2, j++ % 1000), PUSHED);
    if (i % 5 === 0) ids.push(...drain(cq, 3));
  }
  ids.push(...drain(cq, 3));
  const seqA = of(ids, 1).map((id) => id - 1000);
  const seqB = of(ids, 2).map((id) => id - 2000);
  assert.deepEqual(seqA, Array.from({ length: 398 }, (_, k) => (k + 2) % 1000), "a's completions, each once, in order");
  assert.deepEqual(seqB, Array.from({ length: seqB.length }, (_, k) => k + 2), "b's completions, each once, in order");
  assert.equal(seqB.length, 2 + 132);
});

test('the private lane overruns on its own: refused, flagged, nothing written; the shared lane goes on', () => {
  const { buf, cq } = ring(4);
  const a = CqRing.attach(buf);
  a.claimLane();
  for (let i = 0; i < 4; i++) assert.equal(push(a, 1, i), PUSHED);
  const before = new Uint8Array(buf.slice(0));
  assert.equal(push(a, 1, 4), OVERRUN);
  assert.equal(cq.overrun, true);
  const after = new Uint8Array(buf);
  for (let k = 0; k < after.length; k++) if (k !== 12 && after[k] !== before[k]) assert.fail(`byte ${k} changed by a refused push`);
  assert.equal(push(cq, 3, 0), PUSHED, 'the shared lane has room');
  assert.deepEqual(drain(cq).sort((x, y) => x - y), [1000, 1001, 1002, 1003, 3000]);
  assert.equal(new Int32Array(buf)[CQ_I_HEAD1], 4, 'the consumer publishes the private head');
  assert.equal(push(a, 1, 5), PUSHED, 'room again once polled');
  assert.deepEqual(drain(cq), [1005]);
});

test('releaseLane hands the lane over with its tail: the next owner goes on where the last one stopped', () => {
  const { buf, cq } = ring(4);
  const a = CqRing.attach(buf);
  const b = CqRing.attach(buf);
  a.claimLane();
  for (let i = 0; i < 3; i++) push(a, 1, i);
  assert.deepEqual(drain(cq), [1000, 1001, 1002]);
  push(a, 1, 3);
  a.releaseLane(); // (a requester releases on detach, after its last push)
  assert.equal(a.ownsLane, false);
  assert.equal(b.claimLane(), true);
  for (let i = 0; i < 6; i++) {
    assert.equal(push(b, 2, i), PUSHED);
    assert.deepEqual(drain(cq), i === 0 ? [1003, 2000] : [2000 + i], "a's last completion first, then b's, round the same lane");
  }
});

test('a private lane whose tail is more than a lap past its head (a corrupt region) is not claimed', () => {
  const { buf, cq } = ring(4);
  const i32 = new Int32Array(buf);
  i32[CQ_I_TAIL1] = 9;
  const a = CqRing.attach(buf);
  assert.equal(a.claimLane(), false);
  assert.equal(push(a, 1, 0), PUSHED, 'its pushes use the shared lane');
  assert.deepEqual(drain(cq), [1000]);
});

test('a push into the private lane sees an arm, once', () => {
  const { buf, cq } = ring(8);
  const a = CqRing.attach(buf);
  a.claimLane();
  cq.arm(CQ_ARM_NEXT);
  assert.equal(push(a, 1, 0), PUSHED_NOTIFY);
  assert.equal(push(a, 1, 1), PUSHED);
  assert.equal(cq.events, 1);
  const quiet = CqRing.attach(buf, false);
  cq.arm(CQ_ARM_NEXT);
  a.releaseLane();
  assert.equal(quiet.claimLane(), true);
  assert.equal(push(quiet, 2, 0), PUSHED, 'a producer that may not look leaves the arm');
  assert.equal(push(cq, 3, 0), PUSHED_NOTIFY);
  assert.deepEqual(drain(cq).sort((x, y) => x - y), [1000, 1001, 2000, 3000]);
});

test('spillLane: what the private lane holds is handed out before anything pushed after it, one poll at a time', () => {
  const { buf, cq } = ring(8);
  const a = CqRing.attach(buf);
  a.claimLane();
  for (let i = 0; i < 3; i++) push(a, 1, i);
  cq.spillLane(); // the owner is about to push completions that must come after these (a flush)
  for (let i = 0; i < 2; i++) push(cq, 3, i);
  push(a, 1, 3);
  assert.equal(cq.depth, 6);
  assert.equal(cq.ready(), true);
  const out = wcs(1);
  const ids: number[] = [];
  for (let k = 0; k < 6; k++) { assert.equal(cq.poll(1, out), 1); ids.push(out[0]!.wrId); }
  assert.deepEqual(ids.slice(0, 3), [1000, 1001, 1002], 'the spilled ones first, in order, whichever lane a poll starts with');
  assert.deepEqual(ids.slice(3).sort((x, y) => x - y), [1003, 3000, 3001]);
  assert.equal(cq.poll(1, out), 0);
  assert.equal(cq.ready(), false);
  assert.equal(cq.depth, 0);
  assert.equal(push(a, 1, 4), PUSHED, 'the spilled slots are free again');
  for (let i = 5; i < 12; i++) assert.equal(push(a, 1, i), PUSHED);
  assert.equal(push(a, 1, 12), OVERRUN, 'a full lap');
  cq.spillLane();
  assert.deepEqual(drain(cq, 3), [1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011], 'a batch spans the spill and the lanes');
});
