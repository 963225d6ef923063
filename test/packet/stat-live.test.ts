/**
 * `kbypass stat` against a live port: a receiver in a test namespace (event-loop delivery, so its statistics
 * timer runs) publishes its counters, and the stat command run from outside the namespace shows them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeIn } from '../../bench/packet/testbed';
import { RX_FIXTURE, TX_FIXTURE, frameAtoB, testbedFor } from '../helpers/packet';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');

interface StatPort { pid: number; ifname: string; mode: string; xdpMode: string | null; stats: { rxPackets: number } }

test('kbypass stat shows a running port\'s live counters', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-stat-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, KBYPASS_STATS_DIR: dir };
  const rx = nodeIn(tb.nsB, RX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifB, mode: 'xdp', tx: false }, dstPort: 9001, expect: 1_000_000, seconds: 30, event: true })], { keepStdin: true, env });
  try {
    await rx.nextJson(15_000);
    const tx = nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifA, mode: 'packet', rx: false, publishStats: false }, frame: frameAtoB(tb), payload: 64, count: 1000, pps: 20_000 })]);
    await tx.succeeded();
    let port: StatPort | undefined;
    for (let i = 0; i < 30 && port?.stats.rxPackets !== 1000; i++) { // published once a second
      await new Promise((r) => setTimeout(r, 200));
      const r = spawnSync(process.execPath, [BIN, 'stat', '--json', '--dir', dir], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      const sample = JSON.parse(r.stdout.trim().split('\n')[0] ?? '{}') as { ports: StatPort[] };
      port = sample.ports.find((p) => p.pid === rx.child.pid);
    }
    assert.ok(port, 'the receiver\'s port is listed');
    assert.equal(port.ifname, tb.ifB);
    assert.equal(port.mode, 'xdp');
    assert.equal(port.xdpMode, 'native');
    assert.equal(port.stats.rxPackets, 1000);
  } finally {
    rx.child.stdin?.end();
    await rx.result;
  }
  // Closed, the port's file is gone.
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith(`${rx.child.pid}-`)), []);
});
