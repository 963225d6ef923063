/**
 * The data path of an RC connection over shm0, end to end through the connection manager: RDMA WRITE and READ
 * (the bytes really land; gather and scatter over several SGEs; zero-length), SEND/RECV and the completion
 * fields, the _WITH_IMM variants, INLINE sends, signaling (unsignaled WRs, sqSigAll), receive order, atomics,
 * and a message longer than the receive buffer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ACCESS_ALL, Access, PostError, QpState, SendFlags, WcFlags, WcOpcode, WcStatus, WrOpcode, type MemoryRegion,
  type SendWr, type WorkCompletion,
} from '../../src/verbs';
import { expectNoCompletion, pollN, remoteOf, withPair, type Side } from '../helpers/verbs';

const SIG = SendFlags.SIGNALED;

function fill(mr: MemoryRegion, off: number, bytes: Uint8Array): void { mr.buffer.set(bytes, off); }
const slice = (mr: MemoryRegion, off: number, len: number): Buffer => Buffer.from(mr.buffer.subarray(off, off + len));

/** One signaled WR and its completion (asserting success). */
async function run(s: Side, wr: SendWr): Promise<WorkCompletion> {
  s.qp.postSend({ ...wr, sendFlags: (wr.sendFlags ?? 0) | SIG });
  const [wc] = await pollN(s.cq, 1);
  assert.equal(wc!.status, WcStatus.SUCCESS, `status ${wc!.status}`);
  return wc!;
}

test('RDMA WRITE: the bytes land at the remote address and nothing else changes; one send completion', async () => {
  await withPair({}, async ({ client, server }) => {
    const data = randomBytes(300);
    fill(client.mr, 100, data);
    server.mr.buffer.fill(0xee);
    const before = Buffer.from(server.mr.buffer);
    const { remoteAddr, rkey } = remoteOf(server);
    const wc = await run(client, {
      wrId: 77, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: client.mr.addr + 100, length: 300, lkey: client.mr.lkey }],
      rdma: { remoteAddr: remoteAddr + 1000, rkey },
    });
    assert.equal(wc.wrId, 77);
    assert.equal(wc.opcode, WcOpcode.RDMA_WRITE);
    assert.equal(wc.qpNum, client.qp.qpNum);
    assert.deepEqual(slice(server.mr, 1000, 300), data);
    const expected = Buffer.from(before);
    data.copy(expected, 1000);
    assert.deepEqual(Buffer.from(server.mr.buffer), expected, 'only the written range changed');
    await expectNoCompletion(server.cq, 10); // a plain WRITE consumes no receive and completes nothing remotely
    await expectNoCompletion(client.cq, 5);
  });
});

test('RDMA WRITE gathers several SGEs (from two MRs) into one contiguous remote range', async () => {
  await withPair({}, async ({ client, server }) => {
    const mr2 = client.pd.registerMemory(4096, ACCESS_ALL);
    try {
      const a = randomBytes(10), b = randomBytes(33), c = randomBytes(200);
      fill(client.mr, 0, a);
      fill(mr2, 500, b);
      fill(client.mr, 3000, c);
      await run(client, {
        opcode: WrOpcode.RDMA_WRITE,
        sgList: [
          { addr: client.mr.addr, length: 10, lkey: client.mr.lkey },
          { addr: mr2.addr + 500, length: 33, lkey: mr2.lkey },
          { addr: client.mr.addr + 3000, length: 200, lkey: client.mr.lkey },
        ],
        rdma: { remoteAddr: server.mr.addr + 7, rkey: server.mr.rkey },
      });
      assert.deepEqual(slice(server.mr, 7, 243), Buffer.concat([a, b, c]));
    } finally {
      mr2.deregister();
    }
  });
});

test('RDMA READ: remote bytes land in the local buffer; completion RDMA_READ with byteLen', async () => {
  await withPair({}, async ({ client, server }) => {
    const data = randomBytes(1500);
    fill(server.mr, 2000, data);
    client.mr.buffer.fill(0);
    const wc = await run(client, {
      wrId: 5, opcode: WrOpcode.RDMA_READ, sgList: [{ addr: client.mr.addr + 64, length: 1500, lkey: client.mr.lkey }],
      rdma: { remoteAddr: server.mr.addr + 2000, rkey: server.mr.rkey },
    });
    assert.equal(wc.wrId, 5);
    assert.equal(wc.opcode, WcOpcode.RDMA_READ);
    assert.equal(wc.byteLen, 1500);
    assert.equal(wc.qpNum, client.qp.qpNum);
    assert.deepEqual(slice(client.mr, 64, 1500), data);
    assert.equal(client.mr.buffer[63], 0);
    assert.equal(client.mr.buffer[64 + 1500], 0);
  });
});

test('RDMA READ scatters one remote range over several local SGEs', async () => {
  await withPair({}, async ({ client, server }) => {
    const data = randomBytes(100);
    fill(server.mr, 0, data);
    client.mr.buffer.fill(0);
    const wc = await run(client, {
      opcode: WrOpcode.RDMA_READ,
      sgList: [
        { addr: client.mr.addr + 10, length: 7, lkey: client.mr.lkey },
        { addr: client.mr.addr + 500, length: 0, lkey: client.mr.lkey },
        { addr: client.mr.addr + 1000, length: 50, lkey: client.mr.lkey },
        { addr: client.mr.addr + 4000, length: 43, lkey: client.mr.lkey },
      ],
      rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey },
    });
    assert.equal(wc.byteLen, 100);
    assert.deepEqual(slice(client.mr, 10, 7), data.subarray(0, 7));
    assert.deepEqual(slice(client.mr, 1000, 50), data.subarray(7, 57));
    assert.deepEqual(slice(client.mr, 4000, 43), data.subarray(57, 100));
    assert.equal(client.mr.buffer[17], 0);
    assert.equal(client.mr.buffer[1050], 0);
  });
});

test('zero-length RDMA WRITE and READ succeed and move no bytes (rkey not needed for zero bytes, IB C9-88)', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0x11);
    client.mr.buffer.fill(0x22);
    await run(client, { opcode: WrOpcode.RDMA_WRITE, sgList: [], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    await run(client, { opcode: WrOpcode.RDMA_WRITE, rdma: { remoteAddr: server.mr.addr + 8192, rkey: server.mr.rkey } });
    const rd = await run(client, { opcode: WrOpcode.RDMA_READ, sgList: [], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    assert.equal(rd.byteLen, 0);
    // A zero-length operation carries no memory access: a bogus rkey and address are not checked (rxe does the same).
    await run(client, { opcode: WrOpcode.RDMA_WRITE, sgList: [], rdma: { remoteAddr: 12345, rkey: 0xdead00 } });
    await run(client, { opcode: WrOpcode.RDMA_READ, sgList: [], rdma: { remoteAddr: 12345, rkey: 0xdead00 } });
    assert.equal(client.qp.state, QpState.RTS);
    assert.ok(server.mr.buffer.every((x) => x === 0x11));
    assert.ok(client.mr.buffer.every((x) => x === 0x22));
  });
});

test('SEND/RECV: the payload lands in the posted buffer; both completions carry the right fields', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0xab);
    server.qp.postRecv({ wrId: 4242, sgList: [{ addr: server.mr.addr + 1024, length: 256, lkey: server.mr.lkey }] });
    const data = randomBytes(123);
    fill(client.mr, 0, data);
    const swc = await run(client, { wrId: 9, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 123, lkey: client.mr.lkey }] });
    assert.equal(swc.wrId, 9);
    assert.equal(swc.opcode, WcOpcode.SEND);
    assert.equal(swc.qpNum, client.qp.qpNum);
    const [rwc] = await pollN(server.cq, 1);
    assert.equal(rwc!.wrId, 4242);
    assert.equal(rwc!.status, WcStatus.SUCCESS);
    assert.equal(rwc!.opcode, WcOpcode.RECV);
    assert.equal(rwc!.byteLen, 123);
    assert.equal(rwc!.qpNum, server.qp.qpNum);
    assert.equal(rwc!.srcQp, client.qp.qpNum);
    assert.equal(rwc!.wcFlags & WcFlags.WITH_IMM, 0);
    assert.deepEqual(slice(server.mr, 1024, 123), data);
    assert.equal(server.mr.buffer[1023], 0xab);
    assert.equal(server.mr.buffer[1024 + 123], 0xab, 'the rest of the receive buffer is untouched');
  });
});

test('SEND gathers and RECV scatters over several SGEs; a zero-length SEND completes with byteLen 0', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0);
    server.qp.postRecv({
      wrId: 1, sgList: [
        { addr: server.mr.addr + 100, length: 10, lkey: server.mr.lkey },
        { addr: server.mr.addr + 300, length: 20, lkey: server.mr.lkey },
        { addr: server.mr.addr + 600, length: 100, lkey: server.mr.lkey },
      ],
    });
    server.qp.postRecv({ wrId: 2, sgList: [{ addr: server.mr.addr + 5000, length: 16, lkey: server.mr.lkey }] });
    const a = randomBytes(25), b = randomBytes(25);
    fill(client.mr, 0, a);
    fill(client.mr, 2000, b);
    await run(client, {
      opcode: WrOpcode.SEND, sgList: [
        { addr: client.mr.addr, length: 25, lkey: client.mr.lkey },
        { addr: client.mr.addr + 2000, length: 25, lkey: client.mr.lkey },
      ],
    });
    await run(client, { opcode: WrOpcode.SEND, sgList: [] });
    const wcs = await pollN(server.cq, 2);
    assert.deepEqual(wcs.map((w) => [w.wrId, w.status, w.byteLen]), [[1, WcStatus.SUCCESS, 50], [2, WcStatus.SUCCESS, 0]]);
    const msg = Buffer.concat([a, b]);
    assert.deepEqual(slice(server.mr, 100, 10), msg.subarray(0, 10));
    assert.deepEqual(slice(server.mr, 300, 20), msg.subarray(10, 30));
    assert.deepEqual(slice(server.mr, 600, 20), msg.subarray(30, 50));
    assert.equal(server.mr.buffer[620], 0);
    assert.ok(server.mr.buffer.subarray(5000, 5016).every((x) => x === 0));
  });
});

test('SEND_WITH_IMM: the receive completion carries immData and WITH_IMM', async () => {
  await withPair({}, async ({ client, server }) => {
    server.qp.postRecv({ wrId: 3, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    fill(client.mr, 0, Buffer.from('hello imm'));
    const swc = await run(client, {
      opcode: WrOpcode.SEND_WITH_IMM, immData: 0xdeadbeef, sgList: [{ addr: client.mr.addr, length: 9, lkey: client.mr.lkey }],
    });
    assert.equal(swc.opcode, WcOpcode.SEND);
    const [rwc] = await pollN(server.cq, 1);
    assert.equal(rwc!.status, WcStatus.SUCCESS);
    assert.equal(rwc!.opcode, WcOpcode.RECV);
    assert.equal(rwc!.immData, 0xdeadbeef);
    assert.equal(rwc!.wcFlags & WcFlags.WITH_IMM, WcFlags.WITH_IMM);
    assert.equal(rwc!.byteLen, 9);
    assert.equal(slice(server.mr, 0, 9).toString(), 'hello imm');
  });
});

test('RDMA_WRITE_WITH_IMM: data lands at the remote address, a receive is consumed (RECV_RDMA_WITH_IMM), its buffer untouched', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0);
    server.qp.postRecv({ wrId: 10, sgList: [{ addr: server.mr.addr + 6000, length: 64, lkey: server.mr.lkey }] });
    server.qp.postRecv({ wrId: 11, sgList: [{ addr: server.mr.addr + 6100, length: 64, lkey: server.mr.lkey }] });
    const data = randomBytes(200);
    fill(client.mr, 0, data);
    const swc = await run(client, {
      opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 0x01020304,
      sgList: [{ addr: client.mr.addr, length: 200, lkey: client.mr.lkey }],
      rdma: { remoteAddr: server.mr.addr + 40, rkey: server.mr.rkey },
    });
    assert.equal(swc.opcode, WcOpcode.RDMA_WRITE);
    const [rwc] = await pollN(server.cq, 1);
    assert.equal(rwc!.wrId, 10, 'the oldest receive was consumed');
    assert.equal(rwc!.status, WcStatus.SUCCESS);
    assert.equal(rwc!.opcode, WcOpcode.RECV_RDMA_WITH_IMM);
    assert.equal(rwc!.immData, 0x01020304);
    assert.equal(rwc!.wcFlags & WcFlags.WITH_IMM, WcFlags.WITH_IMM);
    assert.equal(rwc!.byteLen, 200);
    assert.equal(rwc!.srcQp, client.qp.qpNum);
    assert.deepEqual(slice(server.mr, 40, 200), data);
    assert.ok(server.mr.buffer.subarray(6000, 6064).every((x) => x === 0), 'the receive buffer is not written');
    // The next SEND takes the second receive.
    fill(client.mr, 0, Buffer.from('next'));
    await run(client, { opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }] });
    const [r2] = await pollN(server.cq, 1);
    assert.equal(r2!.wrId, 11);
    assert.equal(slice(server.mr, 6100, 4).toString(), 'next');
  });
});

test('INLINE from inlineData and from sgList; the source is reusable right after postSend; lkey not checked', async () => {
  await withPair({}, async ({ client, server }) => {
    const cap = client.qp.cap.maxInlineData;
    assert.ok(cap >= 64);
    for (let i = 0; i < 3; i++) server.qp.postRecv({ wrId: i, sgList: [{ addr: server.mr.addr + 256 * i, length: 256, lkey: server.mr.lkey }] });
    const inline = Uint8Array.from(Buffer.from('inline bytes'));
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sendFlags: SendFlags.INLINE | SIG, inlineData: inline });
    inline.fill(0); // reusable at once
    fill(client.mr, 0, Buffer.from('from an sge'));
    client.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sendFlags: SendFlags.INLINE | SIG, sgList: [{ addr: client.mr.addr, length: 11, lkey: client.mr.lkey }] });
    client.mr.buffer.fill(0, 0, 11);
    // IBV_SEND_INLINE: the CPU copies the data; the lkey is not checked.
    fill(client.mr, 100, Buffer.from('no lkey'));
    client.qp.postSend({ wrId: 3, opcode: WrOpcode.SEND, sendFlags: SendFlags.INLINE | SIG, sgList: [{ addr: client.mr.addr + 100, length: 7, lkey: 0 }] });
    const s = await pollN(client.cq, 3);
    assert.deepEqual(s.map((w) => [w.wrId, w.status]), [[1, 0], [2, 0], [3, 0]]);
    const r = await pollN(server.cq, 3);
    assert.deepEqual(r.map((w) => [w.wrId, w.status, w.byteLen]), [[0, 0, 12], [1, 0, 11], [2, 0, 7]]);
    assert.equal(slice(server.mr, 0, 12).toString(), 'inline bytes');
    assert.equal(slice(server.mr, 256, 11).toString(), 'from an sge');
    assert.equal(slice(server.mr, 512, 7).toString(), 'no lkey');
    // INLINE RDMA WRITE too.
    const w = Uint8Array.from(Buffer.from('inline write'));
    await run(client, { opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.INLINE, inlineData: w, rdma: { remoteAddr: server.mr.addr + 7000, rkey: server.mr.rkey } });
    assert.equal(slice(server.mr, 7000, 12).toString(), 'inline write');
  });
});

test('INLINE longer than maxInlineData: PostError EINVAL with badWr, nothing sent from that WR on', async () => {
  await withPair({}, async ({ client, server }) => {
    const cap = client.qp.cap.maxInlineData;
    server.mr.buffer.fill(0);
    const ok: SendWr = { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.INLINE | SIG, inlineData: new Uint8Array(cap).fill(1), rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } };
    const big: SendWr = { wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.INLINE | SIG, inlineData: new Uint8Array(cap + 1).fill(2), rdma: { remoteAddr: server.mr.addr + 4096, rkey: server.mr.rkey } };
    const bigSge: SendWr = { wrId: 3, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.INLINE | SIG, sgList: [{ addr: client.mr.addr, length: cap, lkey: client.mr.lkey }, { addr: client.mr.addr, length: 1, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 4096, rkey: server.mr.rkey } };
    assert.throws(() => client.qp.postSend([ok, big, ok]), (e: unknown) => e instanceof PostError && e.code === 'EINVAL' && e.badWr === 1);
    assert.throws(() => client.qp.postSend(bigSge), (e: unknown) => e instanceof PostError && e.code === 'EINVAL' && e.badWr === 0);
    const wcs = await pollN(client.cq, 1);
    assert.equal(wcs[0]!.wrId, 1, 'the WR before the bad one was posted');
    await expectNoCompletion(client.cq, 10);
    assert.ok(server.mr.buffer.subarray(0, cap).every((x) => x === 1));
    assert.ok(server.mr.buffer.subarray(4096).every((x) => x === 0), 'the refused WRs wrote nothing');
    assert.equal(client.qp.state, QpState.RTS, 'a refused post does not break the QP');
  });
});

test('unsignaled WRs make no completion; a signaled one after them makes exactly one', async () => {
  await withPair({}, async ({ client, server }) => {
    fill(client.mr, 0, Buffer.from('abcdefgh'));
    for (let i = 0; i < 4; i++) {
      client.qp.postSend({ wrId: i, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: client.mr.addr + i * 2, length: 2, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + i * 2, rkey: server.mr.rkey } });
    }
    await expectNoCompletion(client.cq, 15);
    assert.equal(slice(server.mr, 0, 8).toString(), 'abcdefgh', 'the unsignaled writes were executed');
    client.qp.postSend({ wrId: 99, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: client.mr.addr + 100, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.wrId, 99);
    await expectNoCompletion(client.cq, 10);
  });
});

test('sqSigAll: every WR completes, signaled or not', async () => {
  await withPair({ client: { sqSigAll: true } }, async ({ client, server }) => {
    server.qp.postRecv({ wrId: 1, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    client.qp.postSend([
      { wrId: 1, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 100, rkey: server.mr.rkey } },
      { wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] },
      { wrId: 3, opcode: WrOpcode.RDMA_READ, sgList: [{ addr: client.mr.addr + 100, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } },
    ]);
    const wcs = await pollN(client.cq, 3);
    assert.deepEqual(wcs.map((w) => [w.wrId, w.status, w.opcode]), [
      [1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE], [2, WcStatus.SUCCESS, WcOpcode.SEND], [3, WcStatus.SUCCESS, WcOpcode.RDMA_READ],
    ]);
    await expectNoCompletion(client.cq, 10);
  });
});

test('receives are consumed in the order they were posted', async () => {
  await withPair({}, async ({ client, server }) => {
    const n = 8;
    for (let i = 0; i < n; i++) server.qp.postRecv({ wrId: 500 + i, sgList: [{ addr: server.mr.addr + 64 * i, length: 64, lkey: server.mr.lkey }] });
    for (let i = 0; i < n; i++) {
      fill(client.mr, 32 * i, Buffer.from(`message ${i}`));
      client.qp.postSend({ wrId: i, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr + 32 * i, length: 9, lkey: client.mr.lkey }] });
    }
    const wcs = await pollN(server.cq, n);
    assert.deepEqual(wcs.map((w) => w.wrId), Array.from({ length: n }, (_, i) => 500 + i));
    for (let i = 0; i < n; i++) assert.equal(slice(server.mr, 64 * i, 9).toString(), `message ${i}`);
  });
});

test('atomics: FETCH_AND_ADD and CMP_AND_SWP change the remote word and return its old value', async () => {
  await withPair({}, async ({ client, server }) => {
    const word = new DataView(server.mr.buffer.buffer, server.mr.buffer.byteOffset + 64, 8);
    word.setBigUint64(0, 1000n, true);
    const local = new DataView(client.mr.buffer.buffer, client.mr.buffer.byteOffset, 16);
    const wc = await run(client, {
      wrId: 1, opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }],
      atomic: { remoteAddr: server.mr.addr + 64, rkey: server.mr.rkey, compareAdd: 5n },
    });
    assert.equal(wc.opcode, WcOpcode.FETCH_ADD);
    assert.equal(wc.byteLen, 8);
    assert.equal(local.getBigUint64(0, true), 1000n);
    assert.equal(word.getBigUint64(0, true), 1005n);
    const cas = await run(client, {
      opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sgList: [{ addr: client.mr.addr + 8, length: 8, lkey: client.mr.lkey }],
      atomic: { remoteAddr: server.mr.addr + 64, rkey: server.mr.rkey, compareAdd: 1005n, swap: 0xffff_ffff_ffffn },
    });
    assert.equal(cas.opcode, WcOpcode.COMP_SWAP);
    assert.equal(local.getBigUint64(8, true), 1005n);
    assert.equal(word.getBigUint64(0, true), 0xffff_ffff_ffffn);
    // A failed compare leaves the word and still returns it.
    await run(client, {
      opcode: WrOpcode.ATOMIC_CMP_AND_SWP, sgList: [{ addr: client.mr.addr + 8, length: 8, lkey: client.mr.lkey }],
      atomic: { remoteAddr: server.mr.addr + 64, rkey: server.mr.rkey, compareAdd: 1n, swap: 2n },
    });
    assert.equal(local.getBigUint64(8, true), 0xffff_ffff_ffffn);
    assert.equal(word.getBigUint64(0, true), 0xffff_ffff_ffffn);
  });
});

test('a message longer than the receive buffer: receiver LOC_LEN_ERR, sender REM_INV_REQ_ERR and ERROR', async () => {
  await withPair({}, async ({ client, server }) => {
    server.mr.buffer.fill(0);
    server.qp.postRecv({ wrId: 31, sgList: [{ addr: server.mr.addr, length: 16, lkey: server.mr.lkey }, { addr: server.mr.addr + 100, length: 16, lkey: server.mr.lkey }] });
    client.mr.buffer.fill(7, 0, 33);
    client.qp.postSend({ wrId: 32, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 33, lkey: client.mr.lkey }] });
    const [r] = await pollN(server.cq, 1);
    assert.equal(r!.wrId, 31);
    assert.equal(r!.status, WcStatus.LOC_LEN_ERR);
    assert.equal(r!.qpNum, server.qp.qpNum);
    const [s] = await pollN(client.cq, 1);
    assert.equal(s!.wrId, 32);
    assert.equal(s!.status, WcStatus.REM_INV_REQ_ERR);
    assert.equal(client.qp.state, QpState.ERR);
  });
});

test('Access flags reach the MR: a READ-only MR may be read remotely', async () => {
  await withPair({}, async ({ client, server }) => {
    const ro = server.pd.registerMemory(64, Access.REMOTE_READ);
    try {
      ro.buffer.set(Buffer.from('read-only'));
      await run(client, { opcode: WrOpcode.RDMA_READ, sgList: [{ addr: client.mr.addr, length: 9, lkey: client.mr.lkey }], rdma: { remoteAddr: ro.addr, rkey: ro.rkey } });
      assert.equal(slice(client.mr, 0, 9).toString(), 'read-only');
    } finally {
      ro.deregister();
    }
  });
});

test('SEND, RDMA WRITE and READ keep every bit, aligned or not: lengths 1–72 at offsets 0–9 on either side', async () => {
  await withPair({}, async ({ client, server }) => {
    const { remoteAddr, rkey } = remoteOf(server);
    // NaN bit patterns among the bytes (quiet, signalling, with payloads): a copy through doubles could change them.
    const nan = Buffer.from('7ff4000000000001fff8000000000000fff7ffffffffffff7ff8dead0000beef', 'hex');
    for (const len of [1, 3, 4, 7, 8, 9, 16, 24, 31, 32, 40, 64, 72]) {
      for (const lo of [0, 1, 4, 8, 9]) {
        for (const ro of [0, 2, 4, 8]) {
          const data = Buffer.concat([nan, randomBytes(len)]).subarray(len % 5, len % 5 + len);
          const where = `length ${len}, local offset ${lo}, remote offset ${ro}`;
          fill(client.mr, lo, data);
          server.mr.buffer.fill(0x33);
          // SEND into a posted receive.
          server.qp.postRecv({ wrId: 1, sgList: [{ addr: server.mr.addr + 2048 + ro, length: 128, lkey: server.mr.lkey }] });
          await run(client, { wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr + lo, length: len, lkey: client.mr.lkey }] });
          const [r] = await pollN(server.cq, 1);
          assert.equal(r!.byteLen, len, where);
          assert.deepEqual(slice(server.mr, 2048 + ro, len), data, `SEND, ${where}`);
          assert.equal(server.mr.buffer[2048 + ro + len], 0x33, `SEND wrote past the message, ${where}`);
          assert.equal(server.mr.buffer[2048 + ro - 1], 0x33, `SEND wrote before the buffer, ${where}`);
          // RDMA WRITE to the remote offset, then READ it back to another local offset.
          await run(client, { wrId: 3, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: client.mr.addr + lo, length: len, lkey: client.mr.lkey }],
            rdma: { remoteAddr: remoteAddr + 512 + ro, rkey } });
          assert.deepEqual(slice(server.mr, 512 + ro, len), data, `WRITE, ${where}`);
          assert.equal(server.mr.buffer[512 + ro + len], 0x33, `WRITE wrote past the range, ${where}`);
          assert.equal(server.mr.buffer[512 + ro - 1], 0x33, `WRITE wrote before the range, ${where}`);
          client.mr.buffer.fill(0x44, 1000, 1200);
          await run(client, { wrId: 4, opcode: WrOpcode.RDMA_READ, sgList: [{ addr: client.mr.addr + 1024 + lo, length: len, lkey: client.mr.lkey }],
            rdma: { remoteAddr: remoteAddr + 512 + ro, rkey } });
          assert.deepEqual(slice(client.mr, 1024 + lo, len), data, `READ, ${where}`);
          assert.equal(client.mr.buffer[1024 + lo + len], 0x44, `READ wrote past the range, ${where}`);
          assert.equal(client.mr.buffer[1024 + lo - 1], 0x44, `READ wrote before the range, ${where}`);
        }
      }
    }
  });
});
