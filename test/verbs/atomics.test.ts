/**
 * The bar for atomics: "4 processes × 100 000 FETCH_AND_ADD on one 8-byte word end at exactly 400 000;
 * a CMP_AND_SWP lock never admits two holders." This process is the target: it listens, accepts four
 * connections (four QPs) and registers one MR with remote atomic, read and write access; it never touches the
 * words itself until the end. Four child processes (test/fixtures/verbs-atomic.ts) do the work against it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as cm from '../../src/cm';
import { Access, QpState, QpType, openDevice, type QueuePair } from '../../src/verbs';
import { cmAddress } from '../helpers/verbs';
import { killPeers, spawnPeer, type Peer } from '../helpers/peer';

after(killPeers);

const PROCESSES = 4;
/** The fixture's word offsets (test/fixtures/verbs-atomic.ts). */
const WORDS = { FAA: 0, LOCK: 64, HOLDERS: 128, COUNTER: 192 } as const;

/**
 * Be the target of `PROCESSES` children running `mode` `count` times; returns their 'done' reports and the
 * target's words afterwards. Everything is torn down (children killed on failure).
 */
async function runTarget(mode: 'faa' | 'lock', count: number, ms: number): Promise<{ reports: Array<Record<string, unknown>>; words: BigUint64Array; elapsed: number }> {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const mr = pd.registerMemory(4096, Access.REMOTE_ATOMIC | Access.REMOTE_READ | Access.REMOTE_WRITE | Access.LOCAL_WRITE);
  const words = new BigUint64Array(mr.buffer.buffer, mr.buffer.byteOffset, mr.length >> 3);
  const cq = ctx.createCq(64);
  const pdata = new Uint8Array(12);
  const pv = new DataView(pdata.buffer);
  pv.setBigUint64(0, BigInt(mr.addr), true);
  pv.setUint32(8, mr.rkey, true);
  const address = cmAddress();
  const listener = cm.listen(address);
  const qps: QueuePair[] = [];
  const conns: cm.CmConnection[] = [];
  const ids = new Set<number>();
  const acceptErrors: unknown[] = [];
  listener.on('CONNECT_REQUEST', (req: cm.ConnectRequest) => {
    ids.add(req.privateData[0]!);
    const qp = pd.createQp({ qpType: QpType.RC, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1 } });
    qps.push(qp);
    req.accept(qp, { privateData: pdata }).then((c) => conns.push(c), (e) => acceptErrors.push(e));
  });
  const children: Peer[] = [];
  try {
    for (let i = 0; i < PROCESSES; i++) children.push(spawnPeer('verbs-atomic', [address, String(i), mode, String(count)]));
    await Promise.all(children.map((c) => c.next('connected', 10_000)));
    const deadline = Date.now() + 5000;
    while (conns.length + acceptErrors.length < PROCESSES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(acceptErrors, []);
    assert.equal(conns.length, PROCESSES, 'four connections established');
    assert.deepEqual([...ids].sort(), [0, 1, 2, 3]);
    assert.equal(new Set(qps.map((q) => q.qpNum)).size, PROCESSES, 'four QPs');
    for (const qp of qps) assert.equal(qp.state, QpState.RTS);
    assert.ok(words.every((w) => w === 0n), 'the target starts zeroed');
    const t0 = performance.now();
    for (const c of children) c.send({ type: 'go' });
    const reports = await Promise.all(children.map((c) => c.next<Record<string, unknown>>('done', ms)));
    const elapsed = performance.now() - t0;
    // The children disconnect, free their resources and exit 0.
    const exits = await Promise.all(children.map((c) => Promise.race([
      c.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a child did not exit')), 5000).unref()),
    ])));
    for (const [i, e] of exits.entries()) assert.deepEqual(e, { code: 0, signal: null }, `child ${i}: ${children[i]!.output}`);
    return { reports, words: words.slice(), elapsed };
  } finally {
    listener.close();
    await Promise.all(children.map((c) => c.kill()));
    await Promise.all(conns.map((c) => c.disconnect()));
    for (const qp of qps) qp.destroy();
    cq.destroy();
    mr.deregister();
    pd.dealloc();
    ctx.close();
  }
}

test(`${PROCESSES} processes × 100 000 FETCH_AND_ADD on one 8-byte word end at exactly ${PROCESSES * 100_000}`, { timeout: 120_000 }, async (t) => {
  const per = 100_000;
  const { reports, words, elapsed } = await runTarget('faa', per, 90_000);
  t.diagnostic(`${PROCESSES * per} FETCH_AND_ADDs in ${elapsed.toFixed(0)} ms`);
  const total = PROCESSES * per;
  assert.equal(words[WORDS.FAA >> 3], BigInt(total));
  // Every old value 0 … total − 1 came back exactly once: each child saw a strictly increasing sequence, and
  // together their sums are 0 + 1 + … + (total − 1).
  for (const [i, r] of reports.entries()) {
    assert.equal(r.errors, 0, `child ${i} saw old values that did not increase`);
    assert.ok(BigInt(r.first as string) >= 0n && BigInt(r.last as string) < BigInt(total), `child ${i}: first ${r.first}, last ${r.last}`);
  }
  const sum = reports.reduce((s, r) => s + BigInt(r.sum as string), 0n);
  assert.equal(sum, BigInt(total) * BigInt(total - 1) / 2n);
  assert.ok(reports.some((r) => BigInt(r.first as string) === 0n), 'someone got the first value');
  assert.ok(reports.some((r) => BigInt(r.last as string) === BigInt(total - 1)), 'someone got the last value');
  // Nothing else in the MR was touched.
  assert.ok(words.every((w, i) => i === WORDS.FAA >> 3 || w === 0n));
});

test(`a CMP_AND_SWP lock never admits two holders (${PROCESSES} processes; a non-atomic counter under it loses nothing)`, { timeout: 120_000 }, async (t) => {
  const K = 5000;
  const { reports, words, elapsed } = await runTarget('lock', K, 90_000);
  const retries = reports.reduce((s, r) => s + (r.retries as number), 0);
  t.diagnostic(`${PROCESSES * K} lock acquisitions in ${elapsed.toFixed(0)} ms (${retries} failed CAS attempts: contended)`);
  for (const [i, r] of reports.entries()) {
    assert.equal(r.violations, 0, `child ${i} saw another holder (or lost its lock)`);
    assert.equal(r.acquired, K);
  }
  assert.equal(words[WORDS.COUNTER >> 3], BigInt(PROCESSES * K), 'every read-modify-write under the lock counted');
  assert.equal(words[WORDS.HOLDERS >> 3], 0n);
  assert.equal(words[WORDS.LOCK >> 3], 0n, 'released');
  assert.ok(retries > 0, 'the lock was contended (otherwise this proves little)');
});
