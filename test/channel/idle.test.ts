/**
 * Idle strategy: after a burst, an open channel with a 'message' listener spins briefly, yields, then parks on
 * its doorbell — so an idle channel costs (almost) no CPU. Measured with process.cpuUsage over 2 s; both ends
 * are in this process, so the figure covers both. A parked channel still wakes at once for a new message.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { collect, pair, sleep, TEST_TIMEOUT } from '../helpers/util';

const WINDOW_MS = 2000;

describe('idle', () => {
  it(`an idle channel with a 'message' listener uses < 1% CPU over ${WINDOW_MS / 1000} s after a burst`, { timeout: TEST_TIMEOUT }, async (t) => {
    const p = await pair();
    try {
      const burst = collect(p.srv, 10_000);
      p.cli.on('message', () => {}); // both ends listen
      for (let i = 0; i < 10_000; i++) p.cli.send(`burst ${i}`);
      await burst;
      for (let i = 0; i < 100; i++) p.srv.send('reply');
      await sleep(20); // the spin and yield phases last a few hundred µs
      // Collect the burst's garbage now, so background GC threads do not bill their work to the window.
      (globalThis as { gc?: () => void }).gc?.();
      await sleep(100);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await sleep(WINDOW_MS);
      const { user, system } = process.cpuUsage(cpu0);
      const wall = performance.now() - t0;
      const percent = ((user + system) / 1000 / wall) * 100;
      t.diagnostic(`idle CPU ${percent.toFixed(3)}% (user ${user} µs, system ${system} µs over ${wall.toFixed(0)} ms)`);
      assert.ok(percent < 1, `idle channel used ${percent.toFixed(2)}% CPU`);

      // Parked, yet a new message is delivered promptly.
      const got = collect(p.srv, 1, 1000);
      const s0 = performance.now();
      p.cli.send('wake up');
      assert.equal((await got)[0]!.toString(), 'wake up');
      const ms = performance.now() - s0;
      t.diagnostic(`first message after idling delivered in ${ms.toFixed(2)} ms`);
      assert.ok(ms < 50, `${ms.toFixed(1)} ms`);
    } finally {
      await p.close();
    }
  });

  it('control: with idle.yieldMicros = Infinity (never park) the same measure sees a busy CPU', { timeout: TEST_TIMEOUT }, async (t) => {
    const p = await pair({ idle: { yieldMicros: Infinity } });
    try {
      p.srv.on('message', () => {});
      p.cli.send('burst');
      await sleep(20);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await sleep(500);
      const { user, system } = process.cpuUsage(cpu0);
      const percent = ((user + system) / 1000 / (performance.now() - t0)) * 100;
      t.diagnostic(`never-park CPU ${percent.toFixed(1)}%`);
      assert.ok(percent > 20, `a receiver that polls every turn should be busy, measured ${percent.toFixed(1)}%`);
    } finally {
      await p.close();
    }
  });
});
