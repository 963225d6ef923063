/**
 * Arming a CQ against producers in another process (src/verbs/shm/arm-fence.ts): a requester in a child
 * process sends thousands of SENDs in bursts with pauses, while this process receives them the way an
 * event-driven program does — poll until empty, requestNotify, poll once more, then wait for the channel's
 * event. A wake-up lost between the producer's commit and its read of the armed word would leave the receiver
 * waiting with completions in its CQ; the wait is bounded, so that fails the test instead of hanging it. Run with
 * the producer reading the armed word with a plain load (this process fences it after each arm), and with it
 * reading it with a locked instruction (KBYPASS_MEMBARRIER=off in the child).
 *
 * What this cannot do: hit the race itself. Its window is the few nanoseconds a commit sits in the producer's
 * store buffer; with the owner's fence removed from the compiled code, five runs still passed. So this checks
 * that the arm-and-wait loop loses no event across processes in either mode, and which mode each side chose;
 * the argument for the fence is in arm-fence.ts.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as cm from '../../src/cm';
import { ACCESS_ALL, QpType, WcStatus, openDevice } from '../../src/verbs';
import { armFenceAvailable } from '../../src/verbs/shm/arm-fence';
import type { ShmCq } from '../../src/verbs/shm/cq';
import { cmAddress, withTimeout } from '../helpers/verbs';
import { killPeers, spawnPeer } from '../helpers/peer';

after(killPeers);

const COUNT = 20_000;

async function receiveAll(env: NodeJS.ProcessEnv, expectPlain: boolean): Promise<{ events: number }> {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const mr = pd.registerMemory(4096, ACCESS_ALL);
  const channel = ctx.createCompChannel();
  const cq = ctx.createCq(COUNT, channel);
  const qp = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: COUNT } });
  const address = cmAddress();
  const listener = cm.listen(address);
  const child = spawnPeer('verbs-sender', [address, String(COUNT)], { env: { ...process.env, ...env } });
  let conn: cm.CmConnection | null = null;
  try {
    const [req] = (await once(listener, 'CONNECT_REQUEST', { signal: AbortSignal.timeout(10_000) })) as [cm.ConnectRequest];
    conn = await req.accept(qp);
    listener.close();
    const hello = await child.next<{ plainArmed: boolean | null }>('connected');
    assert.equal(hello.plainArmed, expectPlain, 'how the producer reads the armed word');
    assert.equal((cq as ShmCq).ring.armFenced, armFenceAvailable(), 'the CQ is marked when this process can fence');
    // Every receive posted up front (the queue's slots: rq-ring.ts), so no SEND meets RNR.
    for (let i = 0; i < COUNT; i++) qp.postRecv({ wrId: i, sgList: [{ addr: mr.addr + 64 * (i % 64), length: 64, lkey: mr.lkey }] });
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
    // libibverbs' event loop: arm, take everything there, then sleep until the event. A completion committed
    // after the arm always raises the event; one whose producer missed the arm leaves us waiting with it in the
    // CQ: the bound turns that into a failure.
    cq.requestNotify();
    for (;;) {
      while (take() !== 0) { /* everything there */ }
      if (got === COUNT) break;
      await withTimeout(channel.getCqEvent(), 5000, `the event for receive ${got} of ${COUNT} (a lost wake-up)`);
      cq.ackEvents(1);
      events++;
      cq.requestNotify();
    }
    await child.next('sent');
    child.send({ type: 'exit' });
    assert.equal(got, COUNT);
    return { events };
  } finally {
    await child.kill();
    await conn?.disconnect();
    listener.close();
    qp.destroy();
    cq.destroy();
    channel.destroy();
    mr.deregister();
    pd.dealloc();
    ctx.close();
  }
}

test('a producer fenced by the CQ owner (plain armed reads): 20 000 SENDs, bursts and pauses, no wake-up lost', { timeout: 60_000 }, async (t) => {
  const r = await receiveAll({}, armFenceAvailable());
  t.diagnostic(`${r.events} events (the receiver fell asleep that often); membarrier ${armFenceAvailable() ? 'available' : 'unavailable'}`);
  assert.ok(r.events > 0, 'the receiver slept at least once, so arming was exercised');
});

test('a producer that does not use the fence (KBYPASS_MEMBARRIER=off there) locks its reads: no wake-up lost', { timeout: 60_000 }, async (t) => {
  const r = await receiveAll({ KBYPASS_MEMBARRIER: 'off' }, false);
  t.diagnostic(`${r.events} events`);
  assert.ok(r.events > 0);
});
