/**
 * Memory protection, the bar: a wrong rkey, an address out of bounds, a missing access flag, another
 * PD's MR or a deregistered MR → REM_ACCESS_ERR at the requester, its QP in ERROR (later WRs flushed), the
 * target memory byte-identical; a wrong lkey → LOC_PROT_ERR. Each case on a fresh pair, for WRITE, READ and the
 * atomics where it applies. Also ibv_reg_mr's access rules and a receive buffer with a bad lkey.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ACCESS_ALL, Access, QpAttrMask, QpState, SendFlags, WcStatus, WrOpcode, openDevice, type MemoryRegion, type SendWr,
} from '../../src/verbs';
import { expectNoCompletion, pollN, withPair, type Pair } from '../helpers/verbs';

const SIG = SendFlags.SIGNALED;
type Op = 'WRITE' | 'READ' | 'FETCH_ADD' | 'CMP_SWAP';
const OPS: readonly Op[] = ['WRITE', 'READ', 'FETCH_ADD', 'CMP_SWAP'];

/** A WR of `op` at (remoteAddr, rkey) moving `len` bytes (8 for atomics) from/to the client's MR at offset 0. */
function wrFor(p: Pair, op: Op, remoteAddr: number, rkey: number, len: number, wrId: number): SendWr {
  const lmr = p.client.mr;
  if (op === 'WRITE' || op === 'READ') {
    return {
      wrId, opcode: op === 'WRITE' ? WrOpcode.RDMA_WRITE : WrOpcode.RDMA_READ, sendFlags: SIG,
      sgList: [{ addr: lmr.addr, length: len, lkey: lmr.lkey }], rdma: { remoteAddr, rkey },
    };
  }
  return {
    wrId, opcode: op === 'FETCH_ADD' ? WrOpcode.ATOMIC_FETCH_AND_ADD : WrOpcode.ATOMIC_CMP_AND_SWP, sendFlags: SIG,
    sgList: [{ addr: lmr.addr, length: 8, lkey: lmr.lkey }],
    atomic: { remoteAddr, rkey, compareAdd: op === 'FETCH_ADD' ? 1n : 0n, swap: 0x4141414141414141n },
  };
}

/**
 * Post `wr` and check the bar: REM_ACCESS_ERR (or `status`) at the requester, its QP in ERROR, every
 * watched byte range unchanged (the remote target and the local buffer), and a WR posted afterwards flushed.
 */
async function expectViolation(p: Pair, wr: SendWr, watched: MemoryRegion[], status: number = WcStatus.REM_ACCESS_ERR): Promise<void> {
  const snaps = watched.map((m) => Buffer.from(m.buffer));
  p.client.qp.postSend(wr);
  const [wc] = await pollN(p.client.cq, 1);
  assert.equal(wc!.status, status, `expected status ${status}, got ${wc!.status}`);
  assert.equal(wc!.wrId, wr.wrId);
  assert.equal(wc!.qpNum, p.client.qp.qpNum);
  assert.equal(p.client.qp.state, QpState.ERR, 'the requester QP is in ERROR');
  assert.equal(p.client.qp.query().qpState, QpState.ERR);
  // Later WRs (even valid ones) are flushed, and still touch nothing.
  p.client.qp.postSend({ ...wrFor(p, 'WRITE', p.server.mr.addr, p.server.mr.rkey, 16, 4711) });
  p.client.qp.postSend({ wrId: 4712, opcode: WrOpcode.SEND, sgList: [] }); // unsignaled, but a flush always completes
  const flushed = await pollN(p.client.cq, 2);
  assert.deepEqual(flushed.map((w) => [w.wrId, w.status]), [[4711, WcStatus.WR_FLUSH_ERR], [4712, WcStatus.WR_FLUSH_ERR]]);
  await expectNoCompletion(p.client.cq, 5);
  watched.forEach((m, i) => assert.ok(Buffer.from(m.buffer).equals(snaps[i]!), `MR ${i} changed`));
  await expectNoCompletion(p.server.cq, 5); // nothing completes at the target
}

/** Fill the MRs with recognisable bytes. */
function scribble(...mrs: MemoryRegion[]): void { for (const m of mrs) m.buffer.set(randomBytes(m.length)); }

for (const op of OPS) {
  const len = op === 'WRITE' || op === 'READ' ? 64 : 8;

  test(`${op}: a wrong rkey → REM_ACCESS_ERR, QP in ERROR, target unchanged`, async () => {
    await withPair({}, async (p) => {
      scribble(p.server.mr, p.client.mr);
      await expectViolation(p, wrFor(p, op, p.server.mr.addr, (p.server.mr.rkey ^ 0x5a5a00) >>> 0, len, 1), [p.server.mr, p.client.mr]);
    });
  });

  test(`${op}: an address one byte past the MR's end → REM_ACCESS_ERR`, async () => {
    await withPair({}, async (p) => {
      scribble(p.server.mr, p.client.mr);
      const end = p.server.mr.addr + p.server.mr.length; // 8192: aligned for the atomics too
      await expectViolation(p, wrFor(p, op, end, p.server.mr.rkey, op === 'WRITE' || op === 'READ' ? 1 : 8, 2), [p.server.mr, p.client.mr]);
    });
  });

  test(`${op}: a range crossing the MR's end → REM_ACCESS_ERR, no partial access`, async () => {
    await withPair({}, async (p) => {
      // An MR whose length is not a multiple of 8, so that an aligned atomic word can straddle its end.
      const mr = p.server.pd.registerMemory(8188, ACCESS_ALL);
      try {
        scribble(mr, p.server.mr, p.client.mr);
        const addr = op === 'WRITE' || op === 'READ' ? mr.addr + mr.length - 10 : mr.addr + 8184;
        await expectViolation(p, wrFor(p, op, addr, mr.rkey, len, 3), [mr, p.server.mr, p.client.mr]);
      } finally {
        mr.deregister();
      }
    });
  });

  const need = op === 'WRITE' ? Access.REMOTE_WRITE : op === 'READ' ? Access.REMOTE_READ : Access.REMOTE_ATOMIC;
  const needName = op === 'WRITE' ? 'REMOTE_WRITE' : op === 'READ' ? 'REMOTE_READ' : 'REMOTE_ATOMIC';
  test(`${op}: an MR without ${needName} → REM_ACCESS_ERR (the other remote rights still work)`, async () => {
    await withPair({}, async (p) => {
      const mr = p.server.pd.registerMemory(4096, ACCESS_ALL & ~need);
      try {
        scribble(mr, p.client.mr);
        // Control: an operation the MR does allow succeeds first.
        const other: Op = op === 'READ' ? 'WRITE' : 'READ';
        p.client.qp.postSend(wrFor(p, other, mr.addr + 512, mr.rkey, 8, 10));
        const [ok] = await pollN(p.client.cq, 1);
        assert.equal(ok!.status, WcStatus.SUCCESS);
        await expectViolation(p, wrFor(p, op, mr.addr, mr.rkey, len, 11), [mr, p.client.mr]);
      } finally {
        mr.deregister();
      }
    });
  });

  test(`${op}: the rkey of an MR in another PD of the target → REM_ACCESS_ERR, neither MR touched`, async () => {
    await withPair({}, async (p) => {
      const pd2 = p.server.ctx.allocPd();
      const mr2 = pd2.registerMemory(8192, ACCESS_ALL);
      try {
        scribble(mr2, p.server.mr, p.client.mr);
        await expectViolation(p, wrFor(p, op, mr2.addr, mr2.rkey, len, 4), [mr2, p.server.mr, p.client.mr]);
      } finally {
        mr2.deregister();
        pd2.dealloc();
      }
    });
  });

  test(`${op}: an MR deregistered after the peer learned its rkey → REM_ACCESS_ERR`, async () => {
    await withPair({}, async (p) => {
      const mr = p.server.pd.registerMemory(4096, ACCESS_ALL);
      let dereg = false;
      try {
        scribble(mr, p.client.mr);
        // It works while registered (the region reaches the client after the connection was set up).
        p.client.qp.postSend(wrFor(p, op, mr.addr, mr.rkey, len, 20));
        const [ok] = await pollN(p.client.cq, 1);
        assert.equal(ok!.status, WcStatus.SUCCESS);
        mr.deregister();
        dereg = true;
        await expectViolation(p, wrFor(p, op, mr.addr, mr.rkey, len, 21), [mr, p.server.mr, p.client.mr]);
      } finally {
        if (!dereg) mr.deregister();
      }
    });
  });

  test(`${op}: a wrong lkey → LOC_PROT_ERR, QP in ERROR, target unchanged`, async () => {
    await withPair({}, async (p) => {
      scribble(p.server.mr, p.client.mr);
      const wr = wrFor(p, op, p.server.mr.addr, p.server.mr.rkey, len, 5);
      wr.sgList = [{ ...wr.sgList![0]!, lkey: (p.client.mr.lkey ^ 0x33300) >>> 0 }];
      await expectViolation(p, wr, [p.server.mr, p.client.mr], WcStatus.LOC_PROT_ERR);
    });
  });
}

test('SEND: a wrong lkey → LOC_PROT_ERR, no receive consumed', async () => {
  await withPair({}, async (p) => {
    p.server.qp.postRecv({ wrId: 1, sgList: [{ addr: p.server.mr.addr, length: 64, lkey: p.server.mr.lkey }] });
    scribble(p.server.mr);
    await expectViolation(p, { wrId: 6, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: p.client.mr.addr, length: 8, lkey: 0x12345 }] },
      [p.server.mr], WcStatus.LOC_PROT_ERR);
  });
});

test('a local SGE beyond its MR, or in another PD\'s MR → LOC_PROT_ERR', async () => {
  await withPair({}, async (p) => {
    const m = p.client.mr;
    await expectViolation(p, { wrId: 7, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: m.addr + m.length - 4, length: 8, lkey: m.lkey }], rdma: { remoteAddr: p.server.mr.addr, rkey: p.server.mr.rkey } },
      [p.server.mr], WcStatus.LOC_PROT_ERR);
  });
  await withPair({}, async (p) => {
    const pd2 = p.client.ctx.allocPd();
    const other = pd2.registerMemory(4096, ACCESS_ALL);
    try {
      scribble(p.server.mr);
      await expectViolation(p, { wrId: 8, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: other.addr, length: 8, lkey: other.lkey }], rdma: { remoteAddr: p.server.mr.addr, rkey: p.server.mr.rkey } },
        [p.server.mr], WcStatus.LOC_PROT_ERR);
    } finally {
      other.deregister();
      pd2.dealloc();
    }
  });
});

test('READ into a local MR without LOCAL_WRITE → LOC_PROT_ERR, its bytes unchanged', async () => {
  await withPair({}, async (p) => {
    const ro = p.client.pd.registerMemory(4096, Access.REMOTE_READ);
    try {
      scribble(ro, p.server.mr);
      await expectViolation(p, { wrId: 9, opcode: WrOpcode.RDMA_READ, sendFlags: SIG, sgList: [{ addr: ro.addr, length: 64, lkey: ro.lkey }], rdma: { remoteAddr: p.server.mr.addr, rkey: p.server.mr.rkey } },
        [ro, p.server.mr], WcStatus.LOC_PROT_ERR);
    } finally {
      ro.deregister();
    }
  });
});

test('a receive buffer with a wrong lkey: receiver LOC_PROT_ERR, sender REM_OP_ERR, buffer unchanged', async () => {
  await withPair({}, async (p) => {
    scribble(p.server.mr);
    const snap = Buffer.from(p.server.mr.buffer);
    p.server.qp.postRecv({ wrId: 40, sgList: [{ addr: p.server.mr.addr, length: 64, lkey: (p.server.mr.lkey ^ 0x700) >>> 0 }] });
    p.client.qp.postSend({ wrId: 41, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: p.client.mr.addr, length: 32, lkey: p.client.mr.lkey }] });
    const [r] = await pollN(p.server.cq, 1);
    assert.equal(r!.wrId, 40);
    assert.equal(r!.status, WcStatus.LOC_PROT_ERR);
    const [s] = await pollN(p.client.cq, 1);
    assert.equal(s!.wrId, 41);
    assert.equal(s!.status, WcStatus.REM_OP_ERR);
    assert.equal(p.client.qp.state, QpState.ERR);
    assert.ok(Buffer.from(p.server.mr.buffer).equals(snap));
  });
});

test('a receive buffer in an MR without LOCAL_WRITE: receiver LOC_PROT_ERR, sender REM_OP_ERR', async () => {
  await withPair({}, async (p) => {
    const ro = p.server.pd.registerMemory(4096, Access.REMOTE_READ);
    try {
      scribble(ro);
      const snap = Buffer.from(ro.buffer);
      p.server.qp.postRecv({ wrId: 50, sgList: [{ addr: ro.addr, length: 64, lkey: ro.lkey }] });
      p.client.qp.postSend({ wrId: 51, opcode: WrOpcode.SEND, sendFlags: SIG, sgList: [{ addr: p.client.mr.addr, length: 32, lkey: p.client.mr.lkey }] });
      const [r] = await pollN(p.server.cq, 1);
      assert.equal(r!.status, WcStatus.LOC_PROT_ERR);
      const [s] = await pollN(p.client.cq, 1);
      assert.equal(s!.status, WcStatus.REM_OP_ERR);
      assert.ok(Buffer.from(ro.buffer).equals(snap));
    } finally {
      ro.deregister();
    }
  });
});

test('registerMemory: REMOTE_WRITE or REMOTE_ATOMIC without LOCAL_WRITE → EINVAL; unknown bits → EINVAL', () => {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  try {
    const einval = (e: unknown) => (e as { code?: string }).code === 'EINVAL';
    assert.throws(() => pd.registerMemory(4096, Access.REMOTE_WRITE), einval);
    assert.throws(() => pd.registerMemory(4096, Access.REMOTE_ATOMIC), einval);
    assert.throws(() => pd.registerMemory(4096, Access.REMOTE_WRITE | Access.REMOTE_READ), einval);
    assert.throws(() => pd.registerMemory(4096, 1 << 20), einval);
    assert.throws(() => pd.registerMemory(0, ACCESS_ALL), einval);
    // Accepted: local read only, REMOTE_READ alone, REMOTE_WRITE with LOCAL_WRITE.
    const mrs = [0, Access.REMOTE_READ, Access.LOCAL_WRITE | Access.REMOTE_WRITE, Access.LOCAL_WRITE | Access.REMOTE_ATOMIC]
      .map((a) => pd.registerMemory(4096, a));
    assert.deepEqual(mrs.map((m) => m.access), [0, Access.REMOTE_READ, Access.LOCAL_WRITE | Access.REMOTE_WRITE, Access.LOCAL_WRITE | Access.REMOTE_ATOMIC]);
    assert.equal(new Set(mrs.map((m) => m.lkey)).size, 4, 'distinct keys');
    assert.throws(() => pd.dealloc(), (e: unknown) => (e as { code?: string }).code === 'EBUSY');
    for (const m of mrs) m.deregister();
  } finally {
    pd.dealloc();
    ctx.close();
  }
});

test('keys are unique across protection domains (an lkey/rkey names one MR of one PD)', () => {
  const ctx = openDevice('shm0');
  const pds = [ctx.allocPd(), ctx.allocPd(), ctx.allocPd()];
  const mrs = pds.map((pd) => pd.registerMemory(4096, ACCESS_ALL));
  try {
    assert.equal(new Set(mrs.map((m) => m.rkey)).size, 3, `rkeys ${mrs.map((m) => m.rkey.toString(16)).join(', ')}`);
    // The same slot reused in one PD gets a new key: a stale key never names the new MR.
    const old = mrs[0]!.rkey;
    mrs[0]!.deregister();
    mrs[0] = pds[0]!.registerMemory(4096, ACCESS_ALL);
    assert.notEqual(mrs[0].rkey, old);
    assert.equal(new Set(mrs.map((m) => m.rkey)).size, 3);
  } finally {
    for (const m of mrs) m.deregister();
    for (const pd of pds) pd.dealloc();
    ctx.close();
  }
});

test('an atomic at an address that is not 8-byte aligned → REM_INV_REQ_ERR, target unchanged', async () => {
  for (const op of ['FETCH_ADD', 'CMP_SWAP'] as const) {
    await withPair({}, async (p) => {
      scribble(p.server.mr, p.client.mr);
      await expectViolation(p, wrFor(p, op, p.server.mr.addr + 12, p.server.mr.rkey, 8, 60), [p.server.mr, p.client.mr], WcStatus.REM_INV_REQ_ERR);
    });
  }
});

test('the responder QP\'s own access flags (qpAccessFlags) are checked too: each right removed → REM_ACCESS_ERR', async () => {
  for (const op of OPS) {
    const need = op === 'WRITE' ? Access.REMOTE_WRITE : op === 'READ' ? Access.REMOTE_READ : Access.REMOTE_ATOMIC;
    await withPair({}, async (p) => {
      // RTS→RTS may change the access flags (ibv_modify_qp); the MR itself allows everything.
      p.server.qp.modify({ qpState: QpState.RTS, qpAccessFlags: (Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC) & ~need },
        QpAttrMask.STATE | QpAttrMask.ACCESS_FLAGS);
      assert.equal(p.server.qp.query().qpAccessFlags! & need, 0);
      scribble(p.server.mr, p.client.mr);
      // Control: another right still works.
      p.client.qp.postSend(wrFor(p, op === 'READ' ? 'WRITE' : 'READ', p.server.mr.addr + 4096, p.server.mr.rkey, 8, 70));
      const [ok] = await pollN(p.client.cq, 1);
      assert.equal(ok!.status, WcStatus.SUCCESS);
      await expectViolation(p, wrFor(p, op, p.server.mr.addr, p.server.mr.rkey, op === 'WRITE' || op === 'READ' ? 64 : 8, 71), [p.server.mr, p.client.mr]);
    });
  }
});
