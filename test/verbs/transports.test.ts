/**
 * The other transports and shared receive queues: UC (WRITE and SEND work; what RC would report as an error is
 * silently dropped), UD (address handles, the 40-byte GRH space, Q_Keys) and an SRQ shared by two RC QPs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_ALL, Access, GRH_BYTES, PostError, QpState, QpType, SendFlags, WcFlags, WcOpcode, WcStatus, WrOpcode, openDevice,
  type CompletionQueue, type MemoryRegion, type SendWr,
} from '../../src/verbs';
import {
  connectQps, destroySide, expectNoCompletion, makeSide, pollN, withPair, type Side,
} from '../helpers/verbs';
import type { ShmCq } from '../../src/verbs/shm/cq';
import { CQ_I_OWNER1 } from '../../src/verbs/shm/layout';

const SIG = SendFlags.SIGNALED;
const UC = { client: { qpType: QpType.UC }, server: { qpType: QpType.UC } };
const UD = { client: { qpType: QpType.UD }, server: { qpType: QpType.UD } };
const text = (mr: MemoryRegion, off: number, len: number): string => Buffer.from(mr.buffer.subarray(off, off + len)).toString();
/** The owner word of a CQ's private lane, from its shared memory (layout.ts, part 1): 1 while a peer has it. */
const laneOwner = (cq: CompletionQueue): number => new Int32Array((cq as ShmCq).region.buffer)[CQ_I_OWNER1]!;

async function sendOk(s: Side, wr: SendWr): Promise<void> {
  s.qp.postSend({ ...wr, sendFlags: (wr.sendFlags ?? 0) | SIG });
  const [wc] = await pollN(s.cq, 1);
  assert.equal(wc!.status, WcStatus.SUCCESS, `status ${wc!.status}`);
  assert.equal(wc!.wrId, wr.wrId ?? 0);
}

// --- UC ------------------------------------------------------------------------------------------------------

test('UC: RDMA WRITE, WRITE_WITH_IMM and SEND work', async () => {
  await withPair(UC, async ({ client, server }) => {
    assert.equal(client.qp.qpType, QpType.UC);
    client.mr.buffer.set(Buffer.from('uc write|uc send'), 0);
    await sendOk(client, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 3000, rkey: server.mr.rkey } });
    assert.equal(text(server.mr, 3000, 8), 'uc write');
    server.qp.postRecv([
      { wrId: 10, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] },
      { wrId: 11, sgList: [{ addr: server.mr.addr + 64, length: 64, lkey: server.mr.lkey }] },
    ]);
    await sendOk(client, { wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr + 9, length: 7, lkey: client.mr.lkey }] });
    await sendOk(client, { wrId: 3, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 77, sgList: [{ addr: client.mr.addr, length: 2, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 4000, rkey: server.mr.rkey } });
    const r = await pollN(server.cq, 2);
    assert.deepEqual(r.map((w) => [w.wrId, w.status, w.opcode, w.byteLen]), [[10, 0, WcOpcode.RECV, 7], [11, 0, WcOpcode.RECV_RDMA_WITH_IMM, 2]]);
    assert.equal(r[1]!.immData, 77);
    assert.equal(text(server.mr, 0, 7), 'uc send');
    assert.equal(text(server.mr, 4000, 2), 'uc');
  });
});

test('UC: an access violation is silently dropped (sender SUCCESS, QP stays RTS, target unchanged)', async () => {
  await withPair(UC, async ({ client, server }) => {
    server.mr.buffer.fill(0x5c);
    const snap = Buffer.from(server.mr.buffer);
    client.mr.buffer.fill(1, 0, 64);
    const sg = [{ addr: client.mr.addr, length: 64, lkey: client.mr.lkey }];
    await sendOk(client, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sgList: sg, rdma: { remoteAddr: server.mr.addr, rkey: (server.mr.rkey ^ 0x100) >>> 0 } });
    await sendOk(client, { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sgList: sg, rdma: { remoteAddr: server.mr.addr + server.mr.length - 8, rkey: server.mr.rkey } });
    const ro = server.pd.registerMemory(4096, Access.REMOTE_READ);
    try {
      const roSnap = Buffer.from(ro.buffer);
      await sendOk(client, { wrId: 3, opcode: WrOpcode.RDMA_WRITE, sgList: sg, rdma: { remoteAddr: ro.addr, rkey: ro.rkey } });
      assert.ok(Buffer.from(ro.buffer).equals(roSnap));
    } finally {
      ro.deregister();
    }
    assert.equal(client.qp.state, QpState.RTS);
    assert.ok(Buffer.from(server.mr.buffer).equals(snap), 'target unchanged');
    await expectNoCompletion(server.cq, 5);
    // The QP still works.
    await sendOk(client, { wrId: 4, opcode: WrOpcode.RDMA_WRITE, sgList: sg, rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    assert.ok(server.mr.buffer.subarray(0, 64).every((x) => x === 1));
  });
});

test('UC: a SEND with no receive posted is dropped (no RNR): SUCCESS, and a later receive gets the next message', async () => {
  await withPair({ ...UC, rnrRetry: 0 }, async ({ client, server }) => {
    client.mr.buffer.set(Buffer.from('lost|kept'), 0);
    await sendOk(client, { wrId: 1, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }] });
    server.qp.postRecv({ wrId: 9, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    await expectNoCompletion(server.cq, 10);
    await sendOk(client, { wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr + 5, length: 4, lkey: client.mr.lkey }] });
    const [r] = await pollN(server.cq, 1);
    assert.deepEqual([r!.wrId, r!.byteLen], [9, 4]);
    assert.equal(text(server.mr, 0, 4), 'kept');
    assert.equal(client.qp.state, QpState.RTS);
  });
});

test('UC: a QP cannot take an SRQ (EINVAL)', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const cq = ctx.createCq(16);
  const srq = pd.createSrq({ maxWr: 4 });
  try {
    assert.throws(() => pd.createQp({ qpType: QpType.UC, sendCq: cq, recvCq: cq, srq, cap: {} }), (e: unknown) => (e as { code?: string }).code === 'EINVAL');
  } finally {
    srq.destroy();
    cq.destroy();
    pd.dealloc();
    ctx.close();
  }
});

// --- UD ------------------------------------------------------------------------------------------------------

function udTarget(s: Side): { ah: ReturnType<Side['pd']['createAh']>; remoteQpn: number; remoteQkey: number } {
  return { ah: s.pd.createAh({ dlid: s.conn!.remote.lid }), remoteQpn: s.conn!.remote.qpn, remoteQkey: s.conn!.remote.qkey };
}

test('UD: a SEND through an address handle lands after the 40-byte GRH space; byteLen counts the 40 bytes', async () => {
  await withPair(UD, async ({ client, server }) => {
    assert.equal(GRH_BYTES, 40);
    server.mr.buffer.fill(0);
    server.qp.postRecv({ wrId: 5, sgList: [{ addr: server.mr.addr, length: 40 + 100, lkey: server.mr.lkey }] });
    client.mr.buffer.set(Buffer.from('datagram!'), 0);
    const ud = udTarget(client);
    assert.equal(ud.remoteQpn, server.qp.qpNum);
    await sendOk(client, { wrId: 1, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xabcdef01, sgList: [{ addr: client.mr.addr, length: 9, lkey: client.mr.lkey }], ud });
    const [r] = await pollN(server.cq, 1);
    assert.equal(r!.wrId, 5);
    assert.equal(r!.status, WcStatus.SUCCESS);
    assert.equal(r!.opcode, WcOpcode.RECV);
    assert.equal(r!.byteLen, 40 + 9);
    assert.equal(r!.srcQp, client.qp.qpNum);
    assert.equal(r!.qpNum, server.qp.qpNum);
    assert.equal(r!.immData, 0xabcdef01);
    assert.equal(r!.wcFlags & WcFlags.WITH_IMM, WcFlags.WITH_IMM);
    assert.equal(text(server.mr, 40, 9), 'datagram!');
    // The GRH space may span SGEs: a first SGE of 40 bytes holds only it.
    server.qp.postRecv({ wrId: 6, sgList: [{ addr: server.mr.addr + 1000, length: 40, lkey: server.mr.lkey }, { addr: server.mr.addr + 2000, length: 64, lkey: server.mr.lkey }] });
    await sendOk(client, { wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }], ud });
    const [r2] = await pollN(server.cq, 1);
    assert.deepEqual([r2!.wrId, r2!.byteLen], [6, 48]);
    assert.equal(text(server.mr, 2000, 8), 'datagram');
    // And the other way: the server answers the client.
    client.qp.postRecv({ wrId: 7, sgList: [{ addr: client.mr.addr + 4096, length: 128, lkey: client.mr.lkey }] });
    server.mr.buffer.set(Buffer.from('pong'), 3000);
    await sendOk(server, { wrId: 3, opcode: WrOpcode.SEND, sgList: [{ addr: server.mr.addr + 3000, length: 4, lkey: server.mr.lkey }], ud: udTarget(server) });
    const [r3] = await pollN(client.cq, 1);
    assert.deepEqual([r3!.wrId, r3!.byteLen, r3!.srcQp], [7, 44, server.qp.qpNum]);
    assert.equal(text(client.mr, 4096 + 40, 4), 'pong');
    // Anyone may send to a UD QP: no sender claims its CQ's private lane (WQE order).
    assert.equal(laneOwner(server.cq), 0);
    assert.equal(laneOwner(client.cq), 0);
  });
});

test('UD: a wrong Q_Key or an unknown QPN is dropped (sender SUCCESS, no receive consumed); a Q_Key with the high bit set means the QP\'s own', async () => {
  await withPair(UD, async ({ client, server }) => {
    const ud = udTarget(client);
    server.qp.postRecv({ wrId: 1, sgList: [{ addr: server.mr.addr, length: 128, lkey: server.mr.lkey }] });
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr + 128, length: 128, lkey: server.mr.lkey }] });
    client.mr.buffer.set(Buffer.from('xxxx'), 0);
    const sg = [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }];
    await sendOk(client, { wrId: 10, opcode: WrOpcode.SEND, sgList: sg, ud: { ...ud, remoteQkey: (ud.remoteQkey ^ 1) >>> 0 } });
    await sendOk(client, { wrId: 11, opcode: WrOpcode.SEND, sgList: sg, ud: { ...ud, remoteQpn: (ud.remoteQpn + 1000) & 0xffffff } });
    await sendOk(client, { wrId: 12, opcode: WrOpcode.SEND, sgList: sg, ud: { ...ud, ah: client.pd.createAh({ dlid: (ud.ah.dlid + 1) & 0xffff }) } });
    await expectNoCompletion(server.cq, 10);
    assert.equal(client.qp.state, QpState.RTS);
    // IB C10-15: the high-order bit set → the Q_Key of the sending QP (the CM gave both QPs the same one).
    await sendOk(client, { wrId: 13, opcode: WrOpcode.SEND, sgList: sg, ud: { ...ud, remoteQkey: 0x80000000 } });
    await sendOk(client, { wrId: 14, opcode: WrOpcode.SEND, sgList: sg, ud });
    const r = await pollN(server.cq, 2);
    assert.deepEqual(r.map((w) => [w.wrId, w.status, w.byteLen]), [[1, 0, 44], [2, 0, 44]], 'the dropped datagrams consumed no receive');
  });
});

test('UD: no receive posted → the datagram is dropped, no RNR wait', async () => {
  await withPair(UD, async ({ client, server }) => {
    const ud = udTarget(client);
    await sendOk(client, { wrId: 1, opcode: WrOpcode.SEND, sgList: [], ud });
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    await expectNoCompletion(server.cq, 10);
    await sendOk(client, { wrId: 3, opcode: WrOpcode.SEND, sgList: [], ud });
    const [r] = await pollN(server.cq, 1);
    assert.deepEqual([r!.wrId, r!.byteLen], [2, 40]);
  });
});

// --- SRQ -----------------------------------------------------------------------------------------------------

test('SRQ: two client QPs sending to two server QPs that share one SRQ; receives are taken in order from it', async () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const mr = pd.registerMemory(8192, ACCESS_ALL);
  const cq: CompletionQueue = ctx.createCq(64);
  const srq = pd.createSrq({ maxWr: 16, maxSge: 2 });
  const cap = { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 64 };
  const qpA = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap });
  const qpB = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, srq, cap });
  const c1 = makeSide();
  const c2 = makeSide();
  const conns: Array<{ disconnect(): Promise<void> }> = [];
  try {
    assert.equal(qpA.cap.maxRecvWr, 0, 'a QP on an SRQ has no receive queue of its own');
    assert.throws(() => qpA.postRecv({ wrId: 1, sgList: [] }), (e: unknown) => e instanceof PostError && e.code === 'EINVAL');
    const a = await connectQps(c1.qp, qpA, { minRnrTimer: 1 });
    const b = await connectQps(c2.qp, qpB, { minRnrTimer: 1 });
    conns.push(a.client, a.server, b.client, b.server);
    mr.buffer.fill(0);
    for (let i = 0; i < 4; i++) srq.postRecv({ wrId: 100 + i, sgList: [{ addr: mr.addr + 64 * i, length: 64, lkey: mr.lkey }] });
    const send = async (c: Side, msg: string, id: number): Promise<void> => {
      c.mr.buffer.set(Buffer.from(msg), 0);
      await sendOk(c, { wrId: id, opcode: WrOpcode.SEND, sgList: [{ addr: c.mr.addr, length: msg.length, lkey: c.mr.lkey }] });
    };
    await send(c1, 'A-one', 1);
    await send(c2, 'B-one', 2);
    await send(c2, 'B-two', 3);
    await send(c1, 'A-two', 4);
    const r = await pollN(cq, 4);
    // Each QP's completions come in order; between the two QPs verbs promise no order, so they are also compared
    // in WQE order.
    assert.deepEqual(r.filter((w) => w.qpNum === qpA.qpNum).map((w) => w.wrId), [100, 103]);
    assert.deepEqual(r.filter((w) => w.qpNum === qpB.qpNum).map((w) => w.wrId), [101, 102]);
    assert.deepEqual(r.map((w) => [w.wrId, w.status, w.qpNum, w.srcQp]).sort((x, y) => x[0]! - y[0]!), [
      [100, 0, qpA.qpNum, c1.qp.qpNum], [101, 0, qpB.qpNum, c2.qp.qpNum], [102, 0, qpB.qpNum, c2.qp.qpNum], [103, 0, qpA.qpNum, c1.qp.qpNum],
    ]);
    assert.deepEqual([0, 1, 2, 3].map((i) => text(mr, 64 * i, 5)), ['A-one', 'B-one', 'B-two', 'A-two']);
    assert.equal(laneOwner(cq), 0, "requesters taking from an SRQ never claim the CQ's private lane (WQE order)");
    // An empty SRQ makes RC senders wait (RNR) until it is refilled.
    c1.mr.buffer.set(Buffer.from('late'), 0);
    c1.qp.postSend({ wrId: 5, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: c1.mr.addr, length: 4, lkey: c1.mr.lkey }] });
    await expectNoCompletion(c1.cq, 10);
    srq.postRecv({ wrId: 104, sgList: [{ addr: mr.addr + 512, length: 64, lkey: mr.lkey }] });
    const [s] = await pollN(c1.cq, 1);
    assert.deepEqual([s!.wrId, s!.status], [5, 0]);
    const [r5] = await pollN(cq, 1);
    assert.deepEqual([r5!.wrId, r5!.qpNum], [104, qpA.qpNum]);
    assert.equal(text(mr, 512, 4), 'late');
    assert.throws(() => srq.destroy(), (e: unknown) => (e as { code?: string }).code === 'EBUSY');
  } finally {
    for (const c of conns) await c.disconnect();
    qpA.destroy();
    qpB.destroy();
    srq.destroy();
    cq.destroy();
    mr.deregister();
    pd.dealloc();
    ctx.close();
    destroySide(c1);
    destroySide(c2);
  }
});
