/**
 * Shared helpers of the packet tests: a testbed per test (or a skip with the reason), and a receiver in nsB
 * paired with a sender in nsA (test/fixtures/packet-rx.ts, packet-tx.ts).
 */
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { createTestbed, nodeIn, testbedSupport, type Testbed, type TestbedOptions } from '../../bench/packet/testbed';
import type { RxArgs } from '../fixtures/packet-rx';
import type { TxArgs } from '../fixtures/packet-tx';
import type { PortStats } from '../../src/packet/index';

export const RX_FIXTURE = path.join(__dirname, '..', 'fixtures', 'packet-rx.js');
export const TX_FIXTURE = path.join(__dirname, '..', 'fixtures', 'packet-tx.js');

/** A testbed for this test, destroyed after it; null (and the test skipped with the reason) where none can be made. */
export function testbedFor(t: TestContext, options: TestbedOptions = {}): Testbed | null {
  const support = testbedSupport();
  if (!support.ok) {
    t.skip(`no test hosts here: ${support.reason}`);
    return null;
  }
  const tb = createTestbed(options);
  t.after(() => tb.destroy());
  return tb;
}

export interface RxResult {
  done: true; frames: number; ours: number; others: number; duplicates: number; outOfRange: number;
  badChecksum: number; outOfOrder: number; missing: number; metaBad: number; held: number; heldIntact: number;
  stats: PortStats; iface: Record<string, number>;
}
export interface TxResult { done: true; sent: number; seconds: number; stats: PortStats; txError: number; iface: Record<string, number> }
interface Ready { ready: true; mode: string; xdpMode?: string | null; fallbackReason: string; error?: boolean; code?: string; message?: string }

/** The UDP frame spec from A to B on a testbed. */
export function frameAtoB(tb: Testbed, dstPort = 9001): TxArgs['frame'] {
  return { srcMac: tb.macA, dstMac: tb.macB, srcIp: tb.ipA, dstIp: tb.ipB, srcPort: 9000, dstPort };
}

/** Start the receiver in nsB, then the sender in nsA; both results. */
export async function sendAndReceive(tb: Testbed, rx: Omit<RxArgs, 'dstPort'> & { dstPort?: number },
  tx: Omit<TxArgs, 'frame'> & { frame?: TxArgs['frame'] }): Promise<{ rx: RxResult; tx: TxResult; rxReady: Ready }> {
  const dstPort = rx.dstPort ?? 9001;
  const r = nodeIn(tb.nsB, RX_FIXTURE, [JSON.stringify({ ...rx, dstPort })], { keepStdin: true, timeoutMs: 60_000 });
  try {
    const rxReady = await r.nextJson<Ready>(15_000);
    if (rxReady.error) throw Object.assign(new Error(`receiver: ${rxReady.message}`), { code: rxReady.code });
    const s = nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ ...tx, frame: tx.frame ?? frameAtoB(tb, dstPort) })], { timeoutMs: 60_000 });
    const txReady = await s.nextJson<Ready>(15_000);
    if (txReady.error) throw Object.assign(new Error(`sender: ${txReady.message}`), { code: txReady.code });
    const txDone = await s.nextJson<TxResult>(45_000);
    // Give the last frames time to arrive, then tell the receiver to stop (it also stops on its own at `expect`).
    await new Promise((res) => setTimeout(res, 300));
    r.child.stdin?.end();
    const rxDone = await r.nextJson<RxResult>(15_000);
    await s.succeeded();
    await r.succeeded();
    return { rx: rxDone, tx: txDone, rxReady };
  } finally {
    r.kill();
  }
}

/** Sum of the kernel's drop counters of a port. */
export function dropTotal(s: PortStats): number {
  return Object.values(s.drops).reduce((a, b) => a + b, 0);
}
