/**
 * Transmit: frames written by TypeScript into the AF_XDP TX ring and the TPACKET_V3 TX ring reach a node:dgram
 * socket in the other namespace through the kernel's own IP/UDP stack (which checks both checksums), every one
 * of them; and the port's counters agree with the interface's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { nodeIn } from '../../bench/packet/testbed';
import { TX_FIXTURE, frameAtoB, testbedFor, type TxResult } from '../helpers/packet';

const DGRAM_FIXTURE = path.join(__dirname, '..', 'fixtures', 'dgram-rx.js');

for (const [mode, useClaim] of [['xdp', false], ['packet', false], ['xdp', true], ['packet', true]] as const) {
  test(`${mode} TX${useClaim ? ' by claim()/commit()' : ''}: 20000 frames reach node:dgram in the other namespace`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const count = 20_000;
    const r = nodeIn(tb.nsB, DGRAM_FIXTURE, [tb.ipB, '9001', String(count)], { keepStdin: true });
    try {
      await r.nextJson(15_000);
      const s = nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifA, mode, rx: false }, frame: frameAtoB(tb), payload: 64, count, pps: 50_000, useClaim })]);
      const ready = await s.nextJson<{ mode: string }>(15_000);
      assert.equal(ready.mode, mode);
      const tx = await s.nextJson<TxResult & { claimErrors: Record<string, string>; aborted: number }>(45_000);
      await new Promise((res) => setTimeout(res, 300));
      r.child.stdin?.end();
      const rx = await r.nextJson<{ received: number; duplicates: number; bad: number; missing: number }>(15_000);
      assert.equal(tx.sent, count);
      assert.equal(tx.stats.txSubmitted, count);
      assert.equal(tx.stats.txCompleted, count);
      assert.equal(tx.stats.txBytes, count * (42 + 64));
      assert.equal(tx.iface['tx_packets'], count);
      assert.equal(tx.txError, 0);
      assert.deepEqual(rx, { done: true, received: count, duplicates: 0, bad: 0, missing: 0 });
      if (useClaim) {
        assert.deepEqual(tx.claimErrors, {
          commitWithoutClaim: 'ERR_KBYPASS_CLAIM_DONE', abortWithoutClaim: 'ERR_KBYPASS_CLAIM_DONE',
          claimTwice: 'ERR_KBYPASS_CLAIM_PENDING', transmitWhileClaimed: 'ERR_KBYPASS_CLAIM_PENDING',
          commitTooLong: 'ERR_OUT_OF_RANGE', claimedOffset: 'ok',
        });
        assert.ok(tx.aborted >= count / 100, 'aborted claims are not sent, and lose no sequence number');
      }
    } finally {
      r.kill();
    }
  });
}
