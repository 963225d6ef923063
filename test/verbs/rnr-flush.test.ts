/**
 * Receiver Not Ready and flushing: a SEND with no receive posted fails with RNR_RETRY_EXC_ERR once rnr_retry
 * is used up (at once for rnr_retry 0), or waits forever (7) and completes — with the WRs behind it, in order —
 * once a receive is posted; ibv_post_send's checks (state, opcode per QP type, badWr); moving a QP to ERROR or
 * disconnecting flushes its outstanding work with WR_FLUSH_ERR.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cm from '../../src/cm';
import {
  Mtu, PostError, QpAttrMask as M, QpState, QpType, SendFlags, WcOpcode, WcStatus, WrOpcode, type SendWr,
} from '../../src/verbs';
import { destroySide, expectNoCompletion, makeSide, pollN, sleep, withPair } from '../helpers/verbs';
import type { ShmCq } from '../../src/verbs/shm/cq';
import { CQ_I_OWNER1 } from '../../src/verbs/shm/layout';

const SIG = SendFlags.SIGNALED;
const isPostError = (code: string, badWr: number) => (e: unknown): boolean => {
  assert.ok(e instanceof PostError, `a PostError, got ${String(e)}`);
  assert.equal(e.code, code);
  assert.equal(e.badWr, badWr);
  return true;
};

test('rnrRetry 0: a SEND with no receive posted → RNR_RETRY_EXC_ERR, the QP in ERROR', async () => {
  await withPair({ rnrRetry: 0, minRnrTimer: 1 }, async ({ client, server }) => {
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] });
    const [wc] = await pollN(client.cq, 1, 1000);
    assert.equal(wc!.wrId, 1);
    assert.equal(wc!.status, WcStatus.RNR_RETRY_EXC_ERR);
    assert.equal(client.qp.state, QpState.ERR);
    // A receive posted afterwards stays unconsumed.
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    await expectNoCompletion(server.cq, 20);
  });
});

test('rnrRetry 0 means no retry at all: a receive posted right after the RNR NAK is not used', async () => {
  // A long RNR timer (code 14 = 1.28 ms) leaves time to post the receive before any retry could happen.
  await withPair({ rnrRetry: 0, minRnrTimer: 14 }, async ({ client, server }) => {
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] });
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    const [wc] = await pollN(client.cq, 1, 1000);
    assert.equal(wc!.status, WcStatus.RNR_RETRY_EXC_ERR);
    await expectNoCompletion(server.cq, 10);
  });
});

test('rnrRetry 1: one retry, after the RNR timer: a receive posted in between is used', async () => {
  await withPair({ rnrRetry: 1, minRnrTimer: 14 }, async ({ client, server }) => {
    client.mr.buffer.set(Buffer.from('retried'), 0);
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 7, lkey: client.mr.lkey }] });
    assert.equal(client.cq.poll(1), 0, 'RNR: not completed yet');
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    const [wc] = await pollN(client.cq, 1, 1000);
    assert.deepEqual([wc!.wrId, wc!.status], [1, WcStatus.SUCCESS]);
    const [r] = await pollN(server.cq, 1);
    assert.deepEqual([r!.wrId, r!.byteLen], [2, 7]);
    assert.equal(Buffer.from(server.mr.buffer.subarray(0, 7)).toString(), 'retried');
  });
});

test('rnrRetry 2 with no receive ever posted: fails after its retries with RNR_RETRY_EXC_ERR', async () => {
  await withPair({ rnrRetry: 2, minRnrTimer: 1 }, async ({ client }) => {
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] });
    assert.equal(client.cq.poll(1), 0);
    const [wc] = await pollN(client.cq, 1, 1000);
    assert.equal(wc!.status, WcStatus.RNR_RETRY_EXC_ERR);
    assert.equal(client.qp.state, QpState.ERR);
  });
});

test('rnrRetry 7 (forever): the SEND waits, the WRs behind it wait in order, and all complete once receives are posted', async () => {
  await withPair({ minRnrTimer: 1 }, async ({ client, server }) => {
    server.mr.buffer.fill(0);
    client.mr.buffer.set(Buffer.from('first-second'), 0);
    client.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 5, lkey: client.mr.lkey }] },
      { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 12, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 2000, rkey: server.mr.rkey } },
      { wrId: 3, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr + 6, length: 6, lkey: client.mr.lkey }] },
    ]);
    await expectNoCompletion(client.cq, 30);
    assert.equal(client.qp.state, QpState.RTS);
    assert.ok(server.mr.buffer.subarray(2000, 2012).every((x) => x === 0), 'the WRITE behind the waiting SEND has not run');
    // Change the source now: WR 2 and 3 were not inline, so they send what the buffer holds when they run.
    server.qp.postRecv({ wrId: 10, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    const first = await pollN(client.cq, 1, 1000);
    assert.equal(first[0]!.wrId, 1);
    // WR 3 needs a second receive: WR 2 completed, WR 3 is the new head, waiting.
    const second = await pollN(client.cq, 1, 1000);
    assert.equal(second[0]!.wrId, 2);
    assert.equal(Buffer.from(server.mr.buffer.subarray(2000, 2012)).toString(), 'first-second');
    await expectNoCompletion(client.cq, 20);
    server.qp.postRecv({ wrId: 11, sgList: [{ addr: server.mr.addr + 64, length: 64, lkey: server.mr.lkey }] });
    const third = await pollN(client.cq, 1, 1000);
    assert.deepEqual([third[0]!.wrId, third[0]!.status], [3, WcStatus.SUCCESS]);
    const r = await pollN(server.cq, 2);
    assert.deepEqual(r.map((w) => [w.wrId, w.byteLen]), [[10, 5], [11, 6]]);
    assert.equal(Buffer.from(server.mr.buffer.subarray(0, 5)).toString(), 'first');
    assert.equal(Buffer.from(server.mr.buffer.subarray(64, 70)).toString(), 'second');
  });
});

test('an INLINE SEND waiting on RNR sends the bytes it had at post time (its buffer was reusable at once)', async () => {
  await withPair({ minRnrTimer: 1 }, async ({ client, server }) => {
    client.mr.buffer.set(Buffer.from('original'), 0);
    const data = Uint8Array.from(Buffer.from('inline-data'));
    client.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG | SendFlags.INLINE, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] },
      { wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG | SendFlags.INLINE, inlineData: data },
    ]);
    client.mr.buffer.set(Buffer.from('CHANGED!'), 0);
    data.fill(0x21);
    await sleep(5);
    server.qp.postRecv([
      { wrId: 1, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] },
      { wrId: 2, sgList: [{ addr: server.mr.addr + 64, length: 64, lkey: server.mr.lkey }] },
    ]);
    const s = await pollN(client.cq, 2, 1000);
    assert.deepEqual(s.map((w) => [w.wrId, w.status]), [[1, 0], [2, 0]]);
    await pollN(server.cq, 2);
    assert.equal(Buffer.from(server.mr.buffer.subarray(0, 8)).toString(), 'original');
    assert.equal(Buffer.from(server.mr.buffer.subarray(64, 75)).toString(), 'inline-data');
  });
});

test('postSend outside RTS (RESET, INIT, RTR) → PostError EINVAL, badWr 0', () => {
  const s = makeSide();
  try {
    const wr: SendWr = { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] };
    assert.throws(() => s.qp.postSend(wr), isPostError('EINVAL', 0));
    cm.initQp(s.qp);
    assert.equal(s.qp.state, QpState.INIT);
    assert.throws(() => s.qp.postSend([wr, wr]), isPostError('EINVAL', 0));
    s.qp.modify({
      qpState: QpState.RTR, ahAttr: { dlid: 1, portNum: 1 }, pathMtu: Mtu.MTU_1024, destQpNum: 0x123, rqPsn: 0,
      maxDestRdAtomic: 1, minRnrTimer: 12,
    }, M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER);
    assert.equal(s.qp.state, QpState.RTR);
    assert.throws(() => s.qp.postSend(wr), isPostError('EINVAL', 0));
    assert.equal(s.cq.poll(1), 0, 'nothing was queued');
    // Receives may be posted from INIT on (in RTR here).
    s.qp.postRecv({ wrId: 5, sgList: [{ addr: s.mr.addr, length: 64, lkey: s.mr.lkey }] });
  } finally {
    destroySide(s);
  }
});

test('a bad WR in the middle of a list: badWr is its index; the WRs before it were posted and ran', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0);
    client.mr.buffer.fill(9, 0, 16);
    const write = (i: number): SendWr => ({ wrId: i, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 8 * i, rkey: server.mr.rkey } });
    assert.throws(() => client.qp.postSend([write(0), write(1), { wrId: 2, opcode: 42 }, write(3)]), isPostError('EINVAL', 2));
    const wcs = await pollN(client.cq, 2);
    assert.deepEqual(wcs.map((w) => [w.wrId, w.status]), [[0, 0], [1, 0]]);
    await expectNoCompletion(client.cq, 10);
    assert.deepEqual([...server.mr.buffer.subarray(0, 32)], [9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9, ...new Array(20).fill(0)]);
    // Too many SGEs, and an SGE that is not well formed, are refused the same way.
    const tooMany = { wrId: 4, opcode: WrOpcode.SEND, sgList: new Array(client.qp.cap.maxSendSge + 1).fill({ addr: client.mr.addr, length: 1, lkey: client.mr.lkey }) };
    assert.throws(() => client.qp.postSend([write(5), tooMany]), isPostError('EINVAL', 1));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.SEND, sgList: [{ addr: -1, length: 1, lkey: 0 }] }), isPostError('EINVAL', 0));
    await pollN(client.cq, 1);
    assert.equal(client.qp.state, QpState.RTS);
  });
});

test('an opcode the QP type does not have → EINVAL: READ and atomics on UC, WRITE and READ on UD', async () => {
  await withPair({ client: { qpType: QpType.UC }, server: { qpType: QpType.UC } }, async ({ client, server }) => {
    const r = { remoteAddr: server.mr.addr, rkey: server.mr.rkey };
    const sg = [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }];
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.RDMA_READ, sgList: sg, rdma: r }), isPostError('EINVAL', 0));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sgList: sg, atomic: { ...r, compareAdd: 1n } }), isPostError('EINVAL', 0));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sgList: sg, atomic: { ...r, compareAdd: 1n, swap: 2n } }), isPostError('EINVAL', 0));
    // WRITE is fine on UC.
    client.qp.postSend({ wrId: 7, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: sg, rdma: r });
    const [wc] = await pollN(client.cq, 1);
    assert.deepEqual([wc!.wrId, wc!.status, wc!.opcode], [7, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE]);
  });
  await withPair({ client: { qpType: QpType.UD }, server: { qpType: QpType.UD } }, async ({ client, server }) => {
    const ah = client.pd.createAh({ dlid: client.conn!.remote.lid });
    const ud = { ah, remoteQpn: client.conn!.remote.qpn, remoteQkey: client.conn!.remote.qkey };
    const r = { remoteAddr: server.mr.addr, rkey: server.mr.rkey };
    const sg = [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }];
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.RDMA_WRITE, sgList: sg, rdma: r, ud }), isPostError('EINVAL', 0));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 1, sgList: sg, rdma: r, ud }), isPostError('EINVAL', 0));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.RDMA_READ, sgList: sg, rdma: r, ud }), isPostError('EINVAL', 0));
    assert.throws(() => client.qp.postSend({ opcode: WrOpcode.SEND, sgList: sg }), isPostError('EINVAL', 0), 'a UD send needs ud');
    assert.equal(client.qp.state, QpState.RTS);
  });
});

test('moving a QP to ERROR flushes its posted receives (in order) and later posts', async () => {
  await withPair({}, async ({ client, server }) => {
    for (let i = 0; i < 3; i++) server.qp.postRecv({ wrId: 100 + i, sgList: [{ addr: server.mr.addr + 64 * i, length: 64, lkey: server.mr.lkey }] });
    await expectNoCompletion(server.cq, 5);
    server.qp.modify({ qpState: QpState.ERR }, M.STATE);
    assert.equal(server.qp.state, QpState.ERR);
    const wcs = await pollN(server.cq, 3);
    assert.deepEqual(wcs.map((w) => [w.wrId, w.status, w.qpNum]), [100, 101, 102].map((id) => [id, WcStatus.WR_FLUSH_ERR, server.qp.qpNum]));
    server.qp.postRecv({ wrId: 103, sgList: [] });
    server.qp.postSend({ wrId: 104, opcode: WrOpcode.SEND, sgList: [] });
    const later = await pollN(server.cq, 2);
    assert.deepEqual(later.map((w) => [w.wrId, w.status]), [[103, WcStatus.WR_FLUSH_ERR], [104, WcStatus.WR_FLUSH_ERR]]);
    // The peer's sends to a QP in ERROR do not land (RC: the transport gives up).
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] });
    const [c] = await pollN(client.cq, 1);
    assert.notEqual(c!.status, WcStatus.SUCCESS);
    await expectNoCompletion(server.cq, 5);
  });
});

test('a flush comes after the receives the peer completed before it, though they sit in the private lane (not polled yet)', async () => {
  await withPair({}, async ({ client, server }) => {
    for (let i = 0; i < 4; i++) server.qp.postRecv({ wrId: 100 + i, sgList: [{ addr: server.mr.addr + 64 * i, length: 64, lkey: server.mr.lkey }] });
    for (let i = 0; i < 2; i++) {
      client.qp.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] });
    }
    assert.equal((await pollN(client.cq, 2)).filter((w) => w.status === WcStatus.SUCCESS).length, 2);
    // Nothing polled on the server yet: 100 and 101 wait in its CQ's private lane (the client's), and the flush
    // of 102 and 103 goes to the shared lane. Poll one at a time, so each poll could start with either lane.
    assert.equal(new Int32Array((server.cq as ShmCq).region.buffer)[CQ_I_OWNER1], 1, "the client's requester has the lane");
    server.qp.modify({ qpState: QpState.ERR }, M.STATE);
    const got: Array<[number, number]> = [];
    for (let k = 0; k < 4; k++) { const [w] = await pollN(server.cq, 1); got.push([w!.wrId, w!.status]); }
    assert.deepEqual(got, [[100, WcStatus.SUCCESS], [101, WcStatus.SUCCESS], [102, WcStatus.WR_FLUSH_ERR], [103, WcStatus.WR_FLUSH_ERR]]);
    await expectNoCompletion(server.cq, 5);
  });
});

test('moving a QP to ERROR flushes the sends waiting on RNR', async () => {
  await withPair({ minRnrTimer: 1 }, async ({ client }) => {
    client.qp.postSend([
      { wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] },
      { wrId: 2, opcode: WrOpcode.SEND, sgList: [] },
    ]);
    await expectNoCompletion(client.cq, 10);
    client.qp.modify({ qpState: QpState.ERR }, M.STATE);
    const wcs = await pollN(client.cq, 2);
    assert.deepEqual(wcs.map((w) => [w.wrId, w.status]), [[1, WcStatus.WR_FLUSH_ERR], [2, WcStatus.WR_FLUSH_ERR]]);
  });
});

test('disconnect flushes: both QPs go to ERROR; posted receives and waiting sends complete WR_FLUSH_ERR', async () => {
  // RNR timer code 0 = 655 ms: the client's SEND, which met no receive, waits that long before its retry.
  await withPair({ minRnrTimer: 0 }, async ({ client, server }) => {
    for (let i = 0; i < 2; i++) client.qp.postRecv({ wrId: 200 + i, sgList: [{ addr: client.mr.addr + 64 * i, length: 64, lkey: client.mr.lkey }] });
    client.qp.postSend({ wrId: 300, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [] });
    for (let i = 0; i < 2; i++) server.qp.postRecv({ wrId: 400 + i, sgList: [{ addr: server.mr.addr + 64 * i, length: 64, lkey: server.mr.lkey }] });
    await expectNoCompletion(client.cq, 5);
    const disconnected = new Promise((resolve) => server.conn!.once('DISCONNECTED', resolve));
    await client.conn!.disconnect();
    assert.equal(client.conn!.state, 'disconnected');
    assert.equal(client.qp.state, QpState.ERR);
    const c = await pollN(client.cq, 3);
    assert.deepEqual(c.map((w) => [w.wrId, w.status]), [[300, WcStatus.WR_FLUSH_ERR], [200, WcStatus.WR_FLUSH_ERR], [201, WcStatus.WR_FLUSH_ERR]]);
    await disconnected;
    assert.equal(server.qp.state, QpState.ERR);
    const s = await pollN(server.cq, 2);
    assert.deepEqual(s.map((w) => [w.wrId, w.status]), [[400, WcStatus.WR_FLUSH_ERR], [401, WcStatus.WR_FLUSH_ERR]]);
    await expectNoCompletion(server.cq, 5);
  });
});
