/**
 * The device and its objects' life cycle, as libibverbs defines them: the device list, ibv_open_device by name,
 * ibv_query_device / ibv_query_port, ibv_reg_mr's access and length rules, ibv_create_qp's capability checks
 * and the QP's first state, and the EBUSY rules of ibv_dealloc_pd / ibv_close_device / ibv_destroy_cq /
 * ibv_destroy_comp_channel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRegion } from '../../src/memory/region';
import { native } from '../../src/native/binding';
import {
  ACCESS_ALL, Access, AtomicCap, Mtu, PostError, QpAttrMask, QpState, QpType, getDeviceList, openDevice, type Context, type QpInitAttr,
} from '../../src/verbs';

const code = (c: string) => (e: unknown): boolean => (e as { code?: string }).code === c;

/** A context, PD and CQ for the QP tests; close() tears them down (and fails if something was left). */
function base(): { ctx: Context; pd: ReturnType<Context['allocPd']>; cq: ReturnType<Context['createCq']>; close(): void } {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const cq = ctx.createCq(16);
  return { ctx, pd, cq, close() { cq.destroy(); pd.dealloc(); ctx.close(); } };
}

test('getDeviceList lists shm0; openDevice opens it by name', () => {
  const list = getDeviceList();
  const shm = list.find((d) => d.name === 'shm0');
  assert.ok(shm, `shm0 in ${JSON.stringify(list.map((d) => d.name))}`);
  assert.equal(shm.transport, 'shm');
  assert.equal(typeof shm.guid, 'bigint');
  assert.notEqual(shm.guid, 0n);
  assert.equal(new Set(list.map((d) => d.name)).size, list.length, 'device names are unique');
  const ctx = openDevice('shm0');
  assert.equal(ctx.device.name, 'shm0');
  assert.equal(ctx.device.guid, shm.guid);
  // Two opens are two independent contexts.
  const ctx2 = openDevice('shm0');
  assert.notEqual(ctx2, ctx);
  ctx.close();
  ctx2.close();
});

test("openDevice('nope') → ENODEV naming the devices there are; a non-string name → ERR_INVALID_ARG_TYPE", () => {
  assert.throws(() => openDevice('nope'), (e: Error & { code?: string }) => e.code === 'ENODEV' && /nope/.test(e.message) && /shm0/.test(e.message));
  assert.throws(() => openDevice(''), code('ENODEV'));
  assert.throws(() => openDevice('shm1'), code('ENODEV'));
  assert.throws(() => openDevice(0 as unknown as string), code('ERR_INVALID_ARG_TYPE'));
});

test('query(): sane limits, and a copy each time', () => {
  const ctx = openDevice('shm0');
  const a = ctx.query();
  for (const k of ['maxQp', 'maxQpWr', 'maxSge', 'maxCq', 'maxCqe', 'maxMr', 'maxPd', 'maxSrq', 'maxSrqWr', 'maxSrqSge',
    'maxQpRdAtom', 'maxQpInitRdAtom', 'maxPkeys', 'physPortCnt', 'maxMrSize', 'pageSizeCap'] as const) {
    assert.ok(Number.isSafeInteger(a[k]) && a[k] > 0, `${k} = ${a[k]}`);
  }
  assert.ok(Number.isInteger(a.maxInlineData) && a.maxInlineData >= 0);
  assert.equal(a.physPortCnt, 1);
  assert.equal(a.atomicCap, AtomicCap.HCA, 'atomics are atomic between every process of the host');
  assert.equal(a.nodeGuid, ctx.device.guid);
  assert.ok(a.maxCqe >= a.maxQpWr, 'a CQ can hold a full send queue');
  assert.ok(a.maxSrqWr <= a.maxQpWr || a.maxSrqWr > 0);
  assert.ok(a.maxMrSize >= 1 << 30, 'MRs of at least 1 GiB');
  assert.ok((a.pageSizeCap & (a.pageSizeCap - 1)) === 0, 'page sizes are powers of two');
  assert.equal(typeof a.fwVer, 'string');
  a.maxQp = -1;
  assert.notEqual(ctx.query().maxQp, -1, 'query() returns a copy');
  ctx.close();
});

test('queryPort(1) describes an active port; port 0 and 2 → EINVAL', () => {
  const ctx = openDevice('shm0');
  const p = ctx.queryPort(1);
  assert.equal(p.state, 4, 'IBV_PORT_ACTIVE');
  assert.ok(p.activeMtu >= Mtu.MTU_256 && p.activeMtu <= p.maxMtu && p.maxMtu <= Mtu.MTU_4096);
  assert.ok(p.lid >= 1 && p.lid <= 0xfffe, `lid ${p.lid}`);
  assert.ok(p.gidTblLen >= 1 && p.pkeyTblLen >= 1);
  assert.ok(p.linkLayer === 'InfiniBand' || p.linkLayer === 'Ethernet');
  assert.deepEqual(ctx.queryPort(1), p, 'stable');
  for (const bad of [0, 2, -1, 1.5, NaN]) assert.throws(() => ctx.queryPort(bad), code('EINVAL'), `port ${bad}`);
  ctx.close();
});

test('registerMemory: REMOTE_WRITE or REMOTE_ATOMIC without LOCAL_WRITE → EINVAL; unknown bits → EINVAL; local read is implied', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const L = Access.LOCAL_WRITE;
  for (const acc of [Access.REMOTE_WRITE, Access.REMOTE_ATOMIC, Access.REMOTE_WRITE | Access.REMOTE_READ, Access.REMOTE_ATOMIC | Access.REMOTE_READ,
    Access.REMOTE_WRITE | Access.REMOTE_ATOMIC | Access.REMOTE_READ]) {
    assert.throws(() => pd.registerMemory(4096, acc), code('EINVAL'), `access 0x${acc.toString(16)}`);
  }
  for (const acc of [1 << 4, 1 << 5, ACCESS_ALL | (1 << 20), 1 << 31, -1, 0.5, NaN, '1' as unknown as number]) {
    assert.throws(() => pd.registerMemory(4096, acc), code('EINVAL'), `access ${String(acc)}`);
  }
  const mrs = [0, L, Access.REMOTE_READ, L | Access.REMOTE_WRITE, L | Access.REMOTE_ATOMIC, ACCESS_ALL].map((acc) => {
    const mr = pd.registerMemory(4096, acc);
    assert.equal(mr.access, acc);
    return mr;
  });
  // Nothing refused was registered: exactly these MRs hold the PD.
  for (const mr of mrs) mr.deregister();
  pd.dealloc();
  ctx.close();
});

test('registerMemory: lengths and regions', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const max = ctx.query().maxMrSize;
  for (const len of [0, -1, 1.5, NaN, Infinity, max + 1]) {
    assert.throws(() => pd.registerMemory(len, Access.LOCAL_WRITE), code('EINVAL'), `length ${len}`);
  }
  for (const bad of ['4096', null, undefined, {}, new ArrayBuffer(8), new Uint8Array(8), { buffer: new ArrayBuffer(8), size: 8 }]) {
    assert.throws(() => pd.registerMemory(bad as unknown as number, Access.LOCAL_WRITE), code('ERR_INVALID_ARG_TYPE'), `argument ${String(bad)}`);
  }
  // A new MR of n bytes: n bytes of zeroed memory at a nonzero address, lkey = rkey, nonzero.
  const a = pd.registerMemory(100, Access.LOCAL_WRITE);
  assert.equal(a.length, 100);
  assert.equal(a.buffer.length, 100);
  assert.ok(a.buffer.every((b) => b === 0));
  assert.ok(Number.isSafeInteger(a.addr) && a.addr > 0);
  assert.ok(a.lkey !== 0 && a.lkey === a.rkey);
  assert.equal(a.pd, pd);
  const b = pd.registerMemory(1, Access.LOCAL_WRITE);
  assert.notEqual(b.lkey, a.lkey);
  assert.ok(b.addr >= a.addr + a.length || b.addr + b.length <= a.addr, 'MRs of different regions do not overlap');
  // A shared region registered (twice: two MRs over the same bytes, with different keys).
  const region = createRegion(8192);
  const r1 = pd.registerMemory(region, ACCESS_ALL);
  const r2 = pd.registerMemory(region, Access.REMOTE_READ);
  assert.equal(r1.length, region.size);
  assert.equal(r1.addr, r2.addr);
  assert.notEqual(r1.lkey, r2.lkey);
  r1.buffer[5] = 42;
  assert.equal(r2.buffer[5], 42, 'the same memory');
  assert.equal(new Uint8Array(region.buffer)[5], 42);
  // A region whose fd was closed can never be handed to a peer: EBADF.
  const closed = createRegion(4096);
  native().close(closed.fd);
  closed.fd = -1;
  assert.throws(() => pd.registerMemory(closed, Access.LOCAL_WRITE), code('EBADF'));
  // Deregistering twice is harmless; the PD then holds nothing.
  for (const mr of [a, b, r1, r2]) { mr.deregister(); mr.deregister(); }
  pd.dealloc();
  native().close(region.fd);
  ctx.close();
});

test('dealloc → EBUSY while MRs, QPs or SRQs exist; then succeeds once; the PD is unusable after', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const cq = ctx.createCq(8);
  const mr = pd.registerMemory(4096, Access.LOCAL_WRITE);
  assert.throws(() => pd.dealloc(), code('EBUSY'));
  mr.deregister();
  const qp = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: {} });
  assert.throws(() => pd.dealloc(), code('EBUSY'));
  qp.destroy();
  const srq = pd.createSrq({ maxWr: 4 });
  assert.throws(() => pd.dealloc(), code('EBUSY'));
  srq.destroy();
  // Still usable after the refusals.
  const mr2 = pd.registerMemory(64, 0);
  mr2.deregister();
  pd.dealloc();
  pd.dealloc(); // idempotent
  assert.throws(() => pd.registerMemory(64, 0), code('EINVAL'));
  assert.throws(() => pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: {} }), code('EINVAL'));
  assert.throws(() => pd.createSrq({ maxWr: 1 }), code('EINVAL'));
  cq.destroy();
  ctx.close();
});

test('close → EBUSY while PDs exist; then closed for good', () => {
  const ctx = openDevice('shm0');
  const pd1 = ctx.allocPd();
  const pd2 = ctx.allocPd();
  assert.notEqual(pd1, pd2);
  assert.equal(pd1.context, ctx);
  assert.throws(() => ctx.close(), code('EBUSY'));
  pd1.dealloc();
  assert.throws(() => ctx.close(), code('EBUSY'));
  pd2.dealloc();
  ctx.close();
  ctx.close(); // idempotent
  assert.throws(() => ctx.allocPd(), code('EINVAL'));
  assert.throws(() => ctx.createCq(1), code('EINVAL'));
  assert.throws(() => ctx.createCompChannel(), code('EINVAL'));
});

test('CQs: cqe is checked and rounded up; destroy → EBUSY while a QP uses it; channels → EBUSY while CQs use them', () => {
  const ctx = openDevice('shm0');
  const max = ctx.query().maxCqe;
  for (const bad of [0, -1, 1.5, NaN, max + 1]) assert.throws(() => ctx.createCq(bad), code('EINVAL'), `cqe ${bad}`);
  const other = openDevice('shm0');
  const ch = ctx.createCompChannel();
  const cq = ctx.createCq(5, ch);
  assert.ok(cq.cqe >= 5, `cqe ${cq.cqe}`);
  assert.equal(cq.channel, ch);
  assert.equal(cq.poll(), 0, 'a new CQ is empty');
  const plain = ctx.createCq(1);
  assert.ok(plain.cqe >= 1);
  assert.equal(plain.channel, null);
  assert.throws(() => plain.requestNotify(), code('EINVAL'), 'no channel to notify');
  assert.throws(() => ch.destroy(), code('EBUSY'));
  const pd = ctx.allocPd();
  const qp = pd.createQp({ qpType: QpType.UD, sendCq: cq, recvCq: plain, cap: {} });
  assert.throws(() => cq.destroy(), code('EBUSY'));
  assert.throws(() => plain.destroy(), code('EBUSY'));
  qp.destroy();
  qp.destroy(); // idempotent
  cq.destroy();
  plain.destroy();
  ch.destroy();
  pd.dealloc();
  ctx.close();
  other.close();
});

test('createQp: type, CQs and every cap are validated (EINVAL); caps come back rounded up', () => {
  const b = base();
  const attr = (cap: QpInitAttr['cap'], more: Partial<QpInitAttr> = {}): QpInitAttr => ({ qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, cap, ...more });
  const lim = b.ctx.query();
  const bad: Array<[string, QpInitAttr]> = [
    ['qpType 1', attr({}, { qpType: 1 as QpInitAttr['qpType'] })],
    ['qpType RAW (8)', attr({}, { qpType: 8 as QpInitAttr['qpType'] })],
    ['no sendCq', attr({}, { sendCq: undefined as unknown as QpInitAttr['sendCq'] })],
    ['recvCq not a CQ', attr({}, { recvCq: {} as QpInitAttr['recvCq'] })],
    ['maxSendWr too big', attr({ maxSendWr: lim.maxQpWr + 1 })],
    ['maxRecvWr too big', attr({ maxRecvWr: lim.maxQpWr + 1 })],
    ['maxSendWr negative', attr({ maxSendWr: -1 })],
    ['maxRecvWr fractional', attr({ maxRecvWr: 1.5 })],
    ['maxSendSge too big', attr({ maxSendSge: lim.maxSge + 1 })],
    ['maxRecvSge too big', attr({ maxRecvSge: lim.maxSge + 1 })],
    ['maxSendSge NaN', attr({ maxSendSge: NaN })],
    ['maxInlineData too big', attr({ maxInlineData: lim.maxInlineData + 1 })],
    ['maxInlineData negative', attr({ maxInlineData: -1 })],
    ['maxSendWr a string', attr({ maxSendWr: '4' as unknown as number })],
  ];
  for (const [what, a] of bad) assert.throws(() => b.pd.createQp(a), code('EINVAL'), what);
  assert.throws(() => b.pd.createQp(null as unknown as QpInitAttr), code('EINVAL'));
  // An SRQ: same PD only, not on UC.
  const srq = b.pd.createSrq({ maxWr: 4 });
  const pd2 = b.ctx.allocPd();
  const srq2 = pd2.createSrq({ maxWr: 4 });
  assert.throws(() => b.pd.createQp(attr({}, { srq: srq2 })), code('EINVAL'), "another PD's SRQ");
  assert.throws(() => b.pd.createQp(attr({}, { qpType: QpType.UC, srq })), code('EINVAL'), 'an SRQ on UC');
  // None of the refused QPs holds the PD or the CQ.
  srq2.destroy();
  pd2.dealloc();

  // Limits exactly at the maximum are accepted; caps round up and are reported.
  const qp = b.pd.createQp(attr({ maxSendWr: 5, maxRecvWr: 5, maxSendSge: lim.maxSge, maxRecvSge: 3, maxInlineData: lim.maxInlineData }));
  assert.ok(qp.cap.maxSendWr >= 5);
  assert.ok(qp.cap.maxRecvWr >= 5);
  assert.equal(qp.cap.maxSendSge, lim.maxSge);
  assert.ok(qp.cap.maxRecvSge >= 3);
  assert.equal(qp.cap.maxInlineData, lim.maxInlineData);
  const dflt = b.pd.createQp(attr({}));
  for (const k of ['maxSendWr', 'maxRecvWr', 'maxSendSge', 'maxRecvSge'] as const) assert.ok(dflt.cap[k] >= 1, `default ${k}`);
  const withSrq = b.pd.createQp(attr({ maxRecvWr: 100 }, { srq }));
  assert.equal(withSrq.cap.maxRecvWr, 0, 'receives come from the SRQ');
  for (const q of [qp, dflt, withSrq]) q.destroy();
  srq.destroy();
  b.close();
});

test('a new QP is in RESET with a unique 24-bit number; query() returns its state and cap', () => {
  const b = base();
  const qps = [QpType.RC, QpType.UC, QpType.UD].map((qpType) =>
    b.pd.createQp({ qpType, sendCq: b.cq, recvCq: b.cq, cap: { maxSendWr: 3, maxRecvWr: 6, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 64 } }));
  for (const [i, qp] of qps.entries()) {
    assert.equal(qp.qpType, [QpType.RC, QpType.UC, QpType.UD][i]);
    assert.equal(qp.state, QpState.RESET);
    assert.equal(qp.pd, b.pd);
    assert.ok(qp.qpNum > 1 && qp.qpNum <= 0xffffff, `qpn ${qp.qpNum}`);
    const q = qp.query();
    assert.equal(q.qpState, QpState.RESET);
    assert.deepEqual(q.cap, qp.cap);
    assert.ok(qp.cap.maxRecvWr >= 6 && qp.cap.maxSendWr >= 3 && qp.cap.maxSendSge >= 2 && qp.cap.maxRecvSge >= 2 && qp.cap.maxInlineData >= 64);
    // query() hands out a copy.
    q.cap!.maxSendWr = 0;
    assert.ok(qp.query().cap!.maxSendWr >= 3);
  }
  assert.equal(new Set(qps.map((q) => q.qpNum)).size, qps.length, 'QP numbers are unique');
  // Nothing can be sent or received in RESET.
  assert.throws(() => qps[0]!.postRecv({ wrId: 1 }), code('EINVAL'));
  assert.throws(() => qps[0]!.postSend({ wrId: 1, opcode: 2 }), code('EINVAL'));
  for (const qp of qps) qp.destroy();
  b.close();
});

test('a receive queue takes exactly the receives its cap reports (twice those asked for), then ENOMEM with badWr', () => {
  const b = base();
  const qp = b.pd.createQp({ qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, cap: { maxRecvWr: 5 } });
  // 5 rounds up to 8, doubled (rq-ring.ts, rqSlots): a queue kept full of the receives asked for is half full.
  assert.equal(qp.cap.maxRecvWr, 16);
  qp.modify({ qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, QpAttrMask.STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.ACCESS_FLAGS);
  const wr = { wrId: 1 };
  for (let i = 0; i < qp.cap.maxRecvWr; i++) qp.postRecv(wr);
  assert.throws(() => qp.postRecv([wr, wr]), (e: unknown) => e instanceof PostError && e.code === 'ENOMEM' && e.badWr === 0);
  // At the device's limit there is no doubling: the cap never exceeds what query() says the device allows.
  const lim = b.ctx.query();
  const big = b.pd.createQp({ qpType: QpType.RC, sendCq: b.cq, recvCq: b.cq, cap: { maxRecvWr: lim.maxQpWr - 1 } });
  assert.equal(big.cap.maxRecvWr, lim.maxQpWr);
  const srq = b.pd.createSrq({ maxWr: 3 });
  assert.equal(srq.maxWr, 8);
  for (let i = 0; i < srq.maxWr; i++) srq.postRecv(wr);
  assert.throws(() => srq.postRecv(wr), (e: unknown) => e instanceof PostError && e.code === 'ENOMEM' && e.badWr === 0);
  const bigSrq = b.pd.createSrq({ maxWr: lim.maxSrqWr });
  assert.equal(bigSrq.maxWr, lim.maxSrqWr);
  for (const q of [qp, big]) q.destroy();
  for (const s of [srq, bigSrq]) s.destroy();
  b.close();
});
