/**
 * The shared receive queue (layout.ts part 2, rq-ring.ts): post/take order and contents, full → false, wrap,
 * a corrupt num_sge reported as numSge −1, attach() checks, and consumer threads racing on one queue (each WQE
 * taken exactly once, intact, in order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { RecvWqe, RqRing } from './rq-ring';
import { QP_BLOCK_BYTES, RQ_HEADER_BYTES, RQ_I_CAPACITY, RQ_I_HEAD, RQ_I_MAGIC, RQ_I_MAX_SGE, RQ_I_TAIL, RQ_I_VERSION, LAYOUT_VERSION, rqBytes, rqStride } from './layout';

const layoutErr = (re: RegExp) => (e: unknown): boolean => (e as { code?: string }).code === 'ERR_KBYPASS_LAYOUT' && re.test((e as Error).message);

function sges(w: RecvWqe): Array<{ addr: number; length: number; lkey: number }> {
  const r = [];
  for (let k = 0; k < w.numSge; k++) r.push({ addr: w.addr[k]!, length: w.length[k]!, lkey: w.lkey[k]! });
  return r;
}

test('init writes the header at its offset; an empty queue has nothing to take', () => {
  const buf = new ArrayBuffer(QP_BLOCK_BYTES + rqBytes(8, 3));
  const rq = RqRing.init(buf, QP_BLOCK_BYTES, 8, 3);
  const i32 = new Int32Array(buf, QP_BLOCK_BYTES);
  assert.equal(i32[RQ_I_CAPACITY], 8);
  assert.equal(i32[RQ_I_MAX_SGE], 3);
  assert.equal(i32[RQ_I_VERSION], LAYOUT_VERSION);
  assert.equal(new Int32Array(buf)[0], 0, 'nothing written before the offset');
  assert.equal(rq.count, 0);
  const w = new RecvWqe(3);
  assert.equal(rq.take(w), false);
});

test('post → take: order, wr_id and every SGE field (u32 lengths and keys, 53-bit addresses), zero-SGE WQEs', () => {
  const buf = new ArrayBuffer(rqBytes(8, 4));
  const owner = RqRing.init(buf, 0, 8, 4);
  const peer = RqRing.attach(buf, 0);
  assert.equal(peer.capacity, 8);
  assert.equal(peer.maxSge, 4);
  const lists = [
    [{ addr: 2 ** 53 - 1, length: 0xffffffff, lkey: 0xffffffff }],
    [],
    [{ addr: 0, length: 0, lkey: 0 }, { addr: 2 ** 36 * 3 + 17, length: 64, lkey: 0x80000001 }, { addr: 5, length: 6, lkey: 7 }, { addr: 8, length: 9, lkey: 10 }],
  ];
  assert.equal(owner.post(1.5e15, lists[0]), true);
  assert.equal(owner.post(0, undefined), true);
  assert.equal(owner.post(42, lists[2]), true);
  assert.equal(owner.count, 3);
  assert.equal(peer.count, 3);
  const w = new RecvWqe(4);
  assert.equal(peer.take(w), true);
  assert.equal(w.wrId, 1.5e15);
  assert.deepEqual(sges(w), lists[0]);
  assert.equal(w.capacityBytes(), 0xffffffff);
  assert.equal(peer.take(w), true);
  assert.equal(w.wrId, 0);
  assert.equal(w.numSge, 0);
  assert.equal(w.capacityBytes(), 0);
  assert.equal(peer.take(w), true);
  assert.equal(w.wrId, 42);
  assert.deepEqual(sges(w), lists[2]);
  assert.equal(w.capacityBytes(), 64 + 6 + 9);
  assert.equal(peer.take(w), false);
  assert.equal(owner.count, 0);
});

test('a full queue refuses the post (false) and accepts again once a WQE is taken; 500 laps keep order', () => {
  const cap = 4;
  const buf = new ArrayBuffer(rqBytes(cap, 1));
  const owner = RqRing.init(buf, 0, cap, 1);
  const peer = RqRing.attach(buf, 0);
  for (let i = 0; i < cap; i++) assert.equal(owner.post(i, [{ addr: i * 8, length: i, lkey: i }]), true);
  const before = new Uint8Array(buf).slice();
  assert.equal(owner.post(99, [{ addr: 99, length: 99, lkey: 99 }]), false);
  assert.deepEqual(new Uint8Array(buf), before, 'a refused post writes nothing');
  const w = new RecvWqe(1);
  assert.equal(peer.take(w), true);
  assert.equal(w.wrId, 0);
  assert.equal(owner.post(cap, [{ addr: cap * 8, length: cap, lkey: cap }]), true);
  assert.equal(owner.post(99, undefined), false);
  let posted = cap + 1;
  let taken = 1;
  while (taken < cap * 500) {
    assert.equal(peer.take(w), true);
    assert.equal(w.wrId, taken);
    assert.deepEqual(sges(w), [{ addr: taken * 8, length: taken, lkey: taken }]);
    taken++;
    if (posted < cap * 500) { assert.equal(owner.post(posted, [{ addr: posted * 8, length: posted, lkey: posted }]), true); posted++; }
  }
  assert.equal(peer.take(w), false);
});

test('a corrupt num_sge is reported as numSge −1 (and the WQE is consumed); the next WQE is intact', () => {
  const buf = new ArrayBuffer(rqBytes(8, 2));
  const owner = RqRing.init(buf, 0, 8, 2);
  const peer = RqRing.attach(buf, 0);
  const i32 = new Int32Array(buf);
  const numSgeAt = (slot: number): number => (RQ_HEADER_BYTES + slot * rqStride(2) + 8) >> 2;
  for (let i = 0; i < 4; i++) owner.post(100 + i, [{ addr: i, length: 1, lkey: 1 }]);
  i32[numSgeAt(0)] = 3; // more than max_sge
  i32[numSgeAt(1)] = -1;
  i32[numSgeAt(2)] = 0x7fffffff;
  const w = new RecvWqe(2);
  for (let i = 0; i < 3; i++) {
    assert.equal(peer.take(w), true);
    assert.equal(w.numSge, -1, `corrupt WQE ${i}`);
    assert.equal(w.wrId, 100 + i, 'wr_id is still reported (the receive completes in error)');
    assert.equal(w.capacityBytes(), 0);
  }
  assert.equal(peer.take(w), true);
  assert.equal(w.numSge, 1);
  assert.deepEqual(sges(w), [{ addr: 3, length: 1, lkey: 1 }]);
  // A taker whose WQE copy holds fewer SGEs than the WQE names also reports it rather than overflowing.
  owner.post(7, [{ addr: 1, length: 1, lkey: 1 }, { addr: 2, length: 2, lkey: 2 }]);
  const small = new RecvWqe(1);
  assert.equal(peer.take(small), true);
  assert.equal(small.numSge, -1);
});

test('attach() checks the region, magic, version and geometry', () => {
  const good = (offset = 0): ArrayBuffer => { const b = new ArrayBuffer(offset + rqBytes(8, 2)); RqRing.init(b, offset, 8, 2); return b; };
  assert.equal(RqRing.attach(good(), 0).capacity, 8);
  assert.equal(RqRing.attach(good(QP_BLOCK_BYTES), QP_BLOCK_BYTES).maxSge, 2);
  assert.throws(() => RqRing.attach(new ArrayBuffer(RQ_HEADER_BYTES - 4), 0), layoutErr(/beyond its region/));
  assert.throws(() => RqRing.attach(good(), rqBytes(8, 2) - RQ_HEADER_BYTES + 4), layoutErr(/beyond its region/));
  assert.throws(() => RqRing.attach(new ArrayBuffer(rqBytes(8, 2)), 0), layoutErr(/bad magic/));
  assert.throws(() => RqRing.attach(good(QP_BLOCK_BYTES), 0), layoutErr(/bad magic/), 'the wrong offset');
  let b = good();
  new Int32Array(b)[RQ_I_MAGIC] = 0x5143424b; // a CQ's magic
  assert.throws(() => RqRing.attach(b, 0), layoutErr(/bad magic/));
  b = good();
  new Int32Array(b)[RQ_I_VERSION] = LAYOUT_VERSION + 1;
  assert.throws(() => RqRing.attach(b, 0), layoutErr(/version/));
  for (const [cap, sge] of [[0, 2], [-8, 2], [6, 2], [16, 2], [8, 0], [8, -1], [8, 65], [8, 3]] as const) {
    b = good();
    new Int32Array(b)[RQ_I_CAPACITY] = cap;
    new Int32Array(b)[RQ_I_MAX_SGE] = sge;
    assert.throws(() => RqRing.attach(b, 0), layoutErr(/geometry/), `${cap} × ${sge}`);
  }
});

test('an owner re-attaching continues from the published tail', () => {
  const buf = new ArrayBuffer(rqBytes(4, 1));
  const owner = RqRing.init(buf, 0, 4, 1);
  owner.post(1, undefined);
  owner.post(2, undefined);
  const i32 = new Int32Array(buf);
  assert.equal(i32[RQ_I_TAIL], 2);
  assert.equal(i32[RQ_I_HEAD], 0);
  const again = RqRing.attach(buf, 0);
  again.post(3, undefined);
  const w = new RecvWqe(1);
  const ids = [];
  while (again.take(w)) ids.push(w.wrId);
  assert.deepEqual(ids, [1, 2, 3]);
});

test('three consumer threads racing on a 16-entry queue: every WQE taken exactly once, intact, in order', { timeout: 30_000 }, async () => {
  const cap = 16;
  const total = 60_000;
  const consumers = 3;
  const sab = new SharedArrayBuffer(rqBytes(cap, 2));
  const owner = RqRing.init(sab as unknown as ArrayBuffer, 0, cap, 2);
  // Per consumer: how many it took, then the wr_ids it took (in its order).
  const results = Array.from({ length: consumers }, () => new SharedArrayBuffer(4 * (total + 2)));
  const progress = new SharedArrayBuffer(8);
  const modulePath = path.join(__dirname, 'rq-ring.js');
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { RqRing, RecvWqe } = require(${JSON.stringify(modulePath)});
    const rq = RqRing.attach(workerData.sab, 0);
    const out = new Int32Array(workerData.result);
    const prog = new Int32Array(workerData.progress);
    const w = new RecvWqe(2);
    let n = 0, torn = 0;
    const deadline = Date.now() + 20000;
    while (Atomics.load(prog, 0) < workerData.total && Date.now() < deadline) {
      if (!rq.take(w)) continue;
      const id = w.wrId;
      // Each WQE's SGEs derive from its wr_id: a torn or stale copy shows.
      if (w.numSge !== 2 || w.addr[0] !== id * 64 || w.length[0] !== (id & 0xffff) || w.lkey[0] !== ((id ^ 0xa5a5a5a5) >>> 0) ||
          w.addr[1] !== id * 64 + 32 || w.length[1] !== 32 || w.lkey[1] !== id) torn++;
      out[2 + n++] = id;
      Atomics.add(prog, 0, 1);
    }
    out[0] = n; out[1] = torn;
    parentPort.postMessage('done');
  `;
  const workers = results.map((result) => new Worker(code, { eval: true, workerData: { sab, result, progress, total } }));
  const finished = Promise.all(workers.map((wk) => new Promise<void>((resolve, reject) => { wk.once('message', () => resolve()); wk.once('error', reject); })));
  try {
    // The owner posts from this thread, spinning while the queue is full (bounded).
    let posted = 0;
    const deadline = Date.now() + 20_000;
    while (posted < total && Date.now() < deadline) {
      if (owner.post(posted, [{ addr: posted * 64, length: posted & 0xffff, lkey: (posted ^ 0xa5a5a5a5) >>> 0 }, { addr: posted * 64 + 32, length: 32, lkey: posted }])) posted++;
    }
    assert.equal(posted, total, 'the consumers kept the queue moving');
    await finished;
    const seen = new Uint8Array(total);
    let sum = 0;
    for (let c = 0; c < consumers; c++) {
      const out = new Int32Array(results[c]!);
      const n = out[0]!;
      assert.equal(out[1], 0, `consumer ${c} saw torn WQEs`);
      let prev = -1;
      for (let k = 0; k < n; k++) {
        const id = out[2 + k]!;
        assert.ok(id > prev, `consumer ${c} took ${id} after ${prev}`);
        prev = id;
        assert.equal(seen[id], 0, `WQE ${id} taken twice`);
        seen[id] = 1;
      }
      sum += n;
    }
    assert.equal(sum, total, 'every WQE taken');
    assert.equal(owner.count, 0);
  } finally {
    await Promise.all(workers.map((wk) => wk.terminate()));
  }
});
