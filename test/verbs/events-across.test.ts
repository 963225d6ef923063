/**
 * Completions pushed from another process (the requester runs in the peer: src/verbs/shm/engine.ts). A child
 * process sends thousands of SENDs in bursts with pauses, so the receiver here is sometimes busy and sometimes
 * asleep:
 * - with a completion channel, received by libibverbs' event loop (arm, take everything, sleep until the event).
 *   A wake-up lost between the producer's commit and its read of the armed word would leave the receiver waiting
 *   with completions in its CQ; the wait is bounded, so that fails the test instead of hanging it;
 * - without a channel, received by polling: the CQ can never be armed, so the producer's view is attached as not
 *   armable (checked through the child's report) and skips the armed word; every completion must still arrive,
 *   once. (The armed word is 0 here either way: that the skip raises no event is cq-ring.test.ts's business.)
 * (The race itself is a window of nanoseconds, too narrow for a test to hit reliably; the locked read that closes
 * it is argued in cq-ring.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as cm from '../../src/cm';
import { ACCESS_ALL, QpType, WcStatus, openDevice } from '../../src/verbs';
import { cmAddress, withTimeout } from '../helpers/verbs';
import { killPeers, spawnPeer } from '../helpers/peer';

after(killPeers);

const COUNT = 20_000;

async function receiveAll(withChannel: boolean): Promise<{ events: number }> {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const mr = pd.registerMemory(4096, ACCESS_ALL);
  const channel = withChannel ? ctx.createCompChannel() : null;
  const cq = ctx.createCq(COUNT, channel);
  const qp = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: COUNT } });
  const address = cmAddress();
  const listener = cm.listen(address);
  const child = spawnPeer('verbs-sender', [address, String(COUNT)]);
  let conn: cm.CmConnection | null = null;
  try {
    const [req] = (await once(listener, 'CONNECT_REQUEST', { signal: AbortSignal.timeout(10_000) })) as [cm.ConnectRequest];
    conn = await req.accept(qp);
    listener.close();
    const hello = await child.next<{ armable: boolean | null }>('connected');
    assert.equal(hello.armable, withChannel, "whether the requester's view of our CQ can be armed");
    // Every receive posted up front, so no SEND meets RNR.
    for (let i = 0; i < COUNT; i++) qp.postRecv({ wrId: i, sgList: [{ addr: mr.addr + 64 * (i % 64), length: 64, lkey: mr.lkey }] });
    const childGone = Promise.race([
      child.exited.then((x) => { throw new Error(`the sender exited (${JSON.stringify(x)}); output:\n${child.output}`); }),
      child.next<{ message?: string }>('error', 120_000).then((m) => { throw new Error(`the sender failed: ${m.message}`); }),
    ]);
    childGone.catch(() => { /* raced below; after the run it no longer matters */ });
    child.send({ type: 'go' });
    let got = 0;
    let events = 0;
    const seen = new Uint8Array(COUNT);
    const take = (): number => {
      const n = cq.poll(64);
      for (let k = 0; k < n; k++) {
        const wc = cq.wc[k]!;
        assert.equal(wc.status, WcStatus.SUCCESS);
        assert.equal(seen[wc.wrId], 0, `receive ${wc.wrId} completed twice`);
        seen[wc.wrId] = 1;
      }
      got += n;
      return n;
    };
    if (channel !== null) {
      cq.requestNotify();
      for (;;) {
        while (take() !== 0) { /* everything there */ }
        if (got === COUNT) break;
        // (A child that died fails the wait with its own story, not as a lost wake-up.)
        await withTimeout(Promise.race([channel.getCqEvent(), childGone]), 5000, `the event for receive ${got} of ${COUNT} (a lost wake-up)`);
        cq.ackEvents(1);
        events++;
        cq.requestNotify();
      }
    } else {
      const deadline = Date.now() + 30_000;
      while (got < COUNT) {
        if (take() === 0) {
          assert.ok(Date.now() < deadline, `only ${got} of ${COUNT} arrived`);
          await Promise.race([new Promise((r) => setImmediate(r)), childGone]);
        }
      }
    }
    await child.next('sent');
    child.send({ type: 'exit' });
    assert.equal(got, COUNT);
    return { events };
  } finally {
    // Each step on its own: a failing one must neither hide the test's own failure nor skip the others.
    const steps: Array<() => unknown> = [() => child.kill(), () => conn?.disconnect(), () => listener.close(), () => qp.destroy(),
      () => cq.destroy(), () => channel?.destroy(), () => mr.deregister(), () => pd.dealloc(), () => ctx.close()];
    for (const step of steps) {
      try { await step(); } catch { /* after a failure (e.g. an event never fetched): the mappings go with the process */ }
    }
  }
}

test('with a channel: 20 000 SENDs from another process, in bursts and pauses, and no wake-up lost', { timeout: 60_000 }, async (t) => {
  const r = await receiveAll(true);
  t.diagnostic(`${r.events} events (the receiver fell asleep that often)`);
  assert.ok(r.events > 0, 'the receiver slept at least once, so arming was exercised');
});

test('without a channel: the requester attaches our CQ as not armable, and all 20 000 arrive by polling, once each', { timeout: 60_000 }, async () => {
  await receiveAll(false);
});
