/**
 * A CQ's private lane end to end (layout.ts part 1): the connected peer's requester claims it, an orderly
 * disconnect gives it back, and the next connection into the same CQ claims it and goes on from its tail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QpType, SendFlags, WcStatus, WrOpcode, type CompletionQueue, type QueuePair } from '../../src/verbs';
import type { ShmCq } from '../../src/verbs/shm/cq';
import { CQ_I_OWNER1 } from '../../src/verbs/shm/layout';
import { connectQps, destroySide, makeSide, pollN, sleep, type Side } from '../helpers/verbs';

const laneOwner = (cq: CompletionQueue): number => new Int32Array((cq as ShmCq).region.buffer)[CQ_I_OWNER1]!;

/** `n` SENDs from `from` into receives posted on `to`, which completes them into `cq`; returns their wrIds. */
async function exchange(from: Side, to: QueuePair, toMr: Side['mr'], cq: CompletionQueue, n: number, base: number): Promise<number[]> {
  for (let i = 0; i < n; i++) to.postRecv({ wrId: base + i, sgList: [{ addr: toMr.addr + 64 * i, length: 64, lkey: toMr.lkey }] });
  for (let i = 0; i < n; i++) {
    from.qp.postSend({ wrId: i, opcode: WrOpcode.SEND, sendFlags: SendFlags.SIGNALED, sgList: [{ addr: from.mr.addr, length: 16, lkey: from.mr.lkey }] });
  }
  const sent = await pollN(from.cq, n);
  assert.deepEqual(sent.map((w) => w.status), new Array<number>(n).fill(WcStatus.SUCCESS));
  const got = await pollN(cq, n);
  for (const w of got) { assert.equal(w.status, WcStatus.SUCCESS); assert.equal(w.qpNum, to.qpNum); }
  return got.map((w) => w.wrId);
}

test('a disconnect gives the private lane back; the next connection into the same CQ claims it and goes on', async () => {
  const server = makeSide();
  const first = makeSide();
  const second = makeSide();
  const qp2 = server.pd.createQp({
    qpType: QpType.RC, sendCq: server.cq, recvCq: server.cq,
    cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4 },
  });
  try {
    assert.equal(laneOwner(server.cq), 0);
    const a = await connectQps(first.qp, server.qp);
    assert.equal(laneOwner(server.cq), 1, "the first client's requester has the lane");
    assert.deepEqual(await exchange(first, server.qp, server.mr, server.cq, 5, 100), [100, 101, 102, 103, 104]);
    await a.client.disconnect();
    await a.server.disconnect();
    for (let t = 0; t < 100 && laneOwner(server.cq) !== 0; t++) await sleep(5);
    assert.equal(laneOwner(server.cq), 0, 'given back on disconnect');
    const b = await connectQps(second.qp, qp2);
    try {
      assert.equal(laneOwner(server.cq), 1, "the second client's requester has it now");
      // Round the lane more than once (the CQ has 256 entries), polled as it goes.
      const ids: number[] = [];
      for (let k = 0; k < 12; k++) ids.push(...await exchange(second, qp2, server.mr, server.cq, 30, 1000 + 30 * k));
      assert.deepEqual(ids, Array.from({ length: 360 }, (_, i) => 1000 + i), 'in order, none lost, none repeated');
    } finally {
      await b.client.disconnect();
      await b.server.disconnect();
    }
  } finally {
    qp2.destroy();
    destroySide(first);
    destroySide(second);
    destroySide(server);
  }
});
