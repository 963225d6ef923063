/**
 * Regressions for what the code review of the verbs found: registration limits and all-or-nothing, malformed
 * WRs refused without harming the QP, UC/UD send errors to SQE, a target that is not ready yet, SQD→RTS
 * starting queued work, the source LID in UD completions, and a completion channel that is gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRegion } from '../../src/memory/region';
import { native } from '../../src/native/binding';
import {
  ACCESS_ALL, PostError, QpAttrMask, QpState, QpType, SendFlags, WcStatus, WrOpcode, openDevice,
} from '../../src/verbs';
import { LOCAL_LID } from '../../src/verbs/shm/lid';
import { pollN, withPair } from '../helpers/verbs';

const SIG = SendFlags.SIGNALED;

test('registerMemory: over max_mr_size is EINVAL and leaves the PD as it was', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const max = ctx.query().maxMrSize;
  assert.throws(() => pd.registerMemory(max + 1, ACCESS_ALL), { code: 'EINVAL' });
  const big = createRegion(max + 4096); // sparse: nothing is touched
  try {
    assert.throws(() => pd.registerMemory(big, ACCESS_ALL), { code: 'EINVAL' });
  } finally {
    native().close(big.fd);
  }
  pd.dealloc(); // no half-registered MR keeps it busy
  ctx.close();
});

test('registerMemory keeps its own descriptor: the caller may close theirs', async () => {
  await withPair({}, async ({ client, server }) => {
    const r = createRegion(8192);
    const mr = server.pd.registerMemory(r, ACCESS_ALL);
    native().close(r.fd);
    r.fd = -1;
    client.mr.buffer.set([1, 2, 3, 4], 0);
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }],
      rdma: { remoteAddr: mr.addr + 100, rkey: mr.rkey } });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.SUCCESS);
    assert.deepEqual([...mr.buffer.subarray(100, 104)], [1, 2, 3, 4]);
    mr.deregister();
  });
});

test('a malformed opcode or wrId is EINVAL at post time; the QP stays in RTS', async () => {
  await withPair({}, async ({ client }) => {
    const sg = [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }];
    for (const opcode of [2.5, NaN, -1, 7]) {
      assert.throws(() => client.qp.postSend({ opcode, sgList: sg }), (e: PostError) => e instanceof PostError && e.code === 'EINVAL' && e.badWr === 0);
    }
    assert.throws(() => client.qp.postSend({ wrId: 'x' as unknown as number, opcode: WrOpcode.SEND, sgList: sg }), { code: 'EINVAL' });
    assert.equal(client.qp.state, QpState.RTS);
  });
});

test('UD: a message over the MTU is LOC_LEN_ERR and the QP goes to SQE, where receives still work', async () => {
  await withPair({ client: { qpType: QpType.UD, mrBytes: 16384 }, server: { qpType: QpType.UD, mrBytes: 16384 } }, async ({ client, server }) => {
    const ah = client.pd.createAh({ dlid: client.conn!.remote.lid });
    const ud = { ah, remoteQpn: client.conn!.remote.qpn, remoteQkey: client.conn!.remote.qkey };
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 5000, lkey: client.mr.lkey }], ud });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.LOC_LEN_ERR);
    assert.equal(client.qp.state, QpState.SQE);
    // Receives go on in SQE: the server sends, the client receives, with the server's LID and QPN as the source.
    client.qp.postRecv({ wrId: 9, sgList: [{ addr: client.mr.addr + 8192, length: 128, lkey: client.mr.lkey }] });
    const back = { ah: server.pd.createAh({ dlid: server.conn!.remote.lid }), remoteQpn: server.conn!.remote.qpn, remoteQkey: server.conn!.remote.qkey };
    server.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: server.mr.addr, length: 16, lkey: server.mr.lkey }], ud: back });
    const [sent] = await pollN(server.cq, 1);
    assert.equal(sent!.status, WcStatus.SUCCESS);
    const [got] = await pollN(client.cq, 1);
    assert.equal(got!.status, WcStatus.SUCCESS);
    assert.equal(got!.wrId, 9);
    assert.equal(got!.srcQp, server.qp.qpNum);
    assert.equal(got!.slid, LOCAL_LID);
    // SQE → RTS resumes sending.
    client.qp.modify({ qpState: QpState.RTS }, QpAttrMask.STATE);
    assert.equal(client.qp.state, QpState.RTS);
  });
});

test('RC: a target still in RESET is retried after the ACK timeout; once it is ready the WRITE lands', async () => {
  await withPair({}, async ({ client, server }) => {
    const attr = server.qp.query();
    server.qp.modify({ qpState: QpState.RESET }, QpAttrMask.STATE);
    client.mr.buffer.set([9, 8, 7], 0);
    client.qp.postSend({ wrId: 5, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 3, lkey: client.mr.lkey }],
      rdma: { remoteAddr: server.mr.addr + 50, rkey: server.mr.rkey } });
    assert.equal(client.cq.poll(1), 0, 'not completed while the target is in RESET');
    // Bring the target back (the CM's attributes) within the retry budget (7 × 67 ms).
    server.qp.modify({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: attr.qpAccessFlags! },
      QpAttrMask.STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.ACCESS_FLAGS);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.cq.poll(1), 0, 'INIT does not take packets either');
    server.qp.modify({ qpState: QpState.RTR, ahAttr: attr.ahAttr!, pathMtu: attr.pathMtu!, destQpNum: attr.destQpNum!, rqPsn: 0,
      maxDestRdAtomic: attr.maxDestRdAtomic!, minRnrTimer: attr.minRnrTimer! },
    QpAttrMask.STATE | QpAttrMask.AV | QpAttrMask.PATH_MTU | QpAttrMask.DEST_QPN | QpAttrMask.RQ_PSN |
      QpAttrMask.MAX_DEST_RD_ATOMIC | QpAttrMask.MIN_RNR_TIMER);
    const [wc] = await pollN(client.cq, 1, 2000);
    assert.equal(wc!.status, WcStatus.SUCCESS);
    assert.deepEqual([...server.mr.buffer.subarray(50, 53)], [9, 8, 7]);
  });
});

test('RC: a target that never becomes ready: RETRY_EXC_ERR after retry_cnt timeouts, target untouched', async () => {
  await withPair({ retryCnt: 2 }, async ({ client, server }) => {
    server.qp.modify({ qpState: QpState.RESET }, QpAttrMask.STATE);
    const t0 = performance.now();
    client.qp.postSend({ wrId: 6, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 3, lkey: client.mr.lkey }],
      rdma: { remoteAddr: server.mr.addr + 50, rkey: server.mr.rkey } });
    const [wc] = await pollN(client.cq, 1, 3000);
    assert.equal(wc!.status, WcStatus.RETRY_EXC_ERR);
    assert.ok(performance.now() - t0 >= 2 * 60, 'two ACK timeouts of 67 ms passed first');
    assert.equal(client.qp.state, QpState.ERR);
  });
});

test('SQD → RTS starts the WRs posted while drained, without polling', async () => {
  await withPair({}, async ({ client, server }) => {
    client.qp.modify({ qpState: QpState.SQD }, QpAttrMask.STATE);
    client.mr.buffer.set([42], 0);
    client.qp.postSend({ wrId: 7, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 1, lkey: client.mr.lkey }],
      rdma: { remoteAddr: server.mr.addr + 10, rkey: server.mr.rkey } });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.mr.buffer[10], 0, 'nothing runs in SQD');
    client.qp.modify({ qpState: QpState.RTS }, QpAttrMask.STATE);
    await new Promise((r) => setTimeout(r, 20)); // the event loop alone (no poll) must run it
    assert.equal(server.mr.buffer[10], 42);
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.SUCCESS);
  });
});

test('createCq with a destroyed completion channel is EINVAL', () => {
  const ctx = openDevice('shm0');
  const ch = ctx.createCompChannel();
  ch.destroy();
  assert.throws(() => ctx.createCq(4, ch), { code: 'EINVAL' });
  ctx.close();
});

test('CQ overrun: a receive completion that finds the peer CQ full is lost, cq.overrun says so, the sender gets REM_OP_ERR', async () => {
  await withPair({}, async ({ client, server }) => {
    // The helper's CQs hold 256; make the server's receives complete into a CQ of 2 instead.
    const small = server.ctx.createCq(2);
    const qp = server.pd.createQp({ qpType: QpType.RC, sendCq: small, recvCq: small, cap: { maxRecvWr: 8 } });
    const c2 = client.pd.createQp({ qpType: QpType.RC, sendCq: client.cq, recvCq: client.cq, cap: { maxSendWr: 8 } });
    const { connectQps } = await import('../helpers/verbs');
    const pair = await connectQps(c2, qp);
    try {
      for (let i = 0; i < 3; i++) qp.postRecv({ wrId: i, sgList: [{ addr: server.mr.addr + 64 * i, length: 64, lkey: server.mr.lkey }] });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        c2.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] });
        statuses.push((await pollN(client.cq, 1))[0]!.status);
      }
      assert.deepEqual(statuses, [WcStatus.SUCCESS, WcStatus.SUCCESS, WcStatus.REM_OP_ERR]);
      assert.equal(small.overrun, true);
      assert.equal(c2.state, QpState.ERR);
    } finally {
      await pair.client.disconnect();
      await pair.server.disconnect();
      c2.destroy();
      qp.destroy();
      small.destroy();
    }
  });
});

test('a hostile MR table entry (a misaligned MR address) makes an atomic fail with REM_ACCESS_ERR, not throw', async () => {
  const { ShmPd } = await import('../../src/verbs/shm/pd');
  await withPair({}, async ({ client, server }) => {
    const pd = server.pd as InstanceType<typeof ShmPd>;
    const mr = server.mr as unknown as { lkey: number; access: number; regionId: number; addr: number; length: number };
    pd.table.publish(mr.lkey, mr.access, mr.regionId, mr.addr + 4, mr.length - 4); // as a hostile peer could
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sendFlags: SIG,
      sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }],
      atomic: { remoteAddr: mr.addr + 8, rkey: server.mr.rkey, compareAdd: 1n } });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.REM_ACCESS_ERR);
  });
});

test('a hostile event count in a CQ header queues at most 64 events per look, not billions', async () => {
  const { CQ_I_EVENTS } = await import('../../src/verbs/shm/layout');
  const ctx = openDevice('shm0');
  const ch = ctx.createCompChannel();
  const cq = ctx.createCq(4, ch);
  const header = new Int32Array((cq as unknown as { region: { buffer: ArrayBuffer } }).region.buffer, 0, 64);
  Atomics.store(header, CQ_I_EVENTS, -1); // 2^32 − 1 notifications, as a peer could write
  let got = 0;
  for (;;) {
    const r = await Promise.race([ch.getCqEvent().then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 20))]);
    if (!r) break;
    got++;
    if (got > 100) break;
  }
  assert.equal(got, 64);
  cq.ackEvents(64);
  cq.destroy();
  ch.destroy();
  ctx.close();
});
