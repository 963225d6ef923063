/**
 * docs/PACKET.md's example, run as it is written, inside a test namespace while frames arrive from the other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { nodeIn, runIn } from '../../bench/packet/testbed';
import { TX_FIXTURE, frameAtoB, testbedFor } from '../helpers/packet';

const root = path.resolve(__dirname, '..', '..', '..');

test('the docs/PACKET.md example receives what arrives and sends its batch', async (t) => {
  const tb = testbedFor(t);
  if (tb === null) return;
  const doc = readFileSync(path.join(root, 'docs', 'PACKET.md'), 'utf8');
  const m = /```js\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('## Example')));
  assert.ok(m?.[1], 'docs/PACKET.md has a js example under "## Example"');
  const code = `${m[1]}
main(process.argv[1]).then((r) => console.log(JSON.stringify({ frames: r.frames, sent: r.sent, rx: r.stats.rxPackets, tx: r.stats.txSubmitted })));`;
  const ex = runIn(tb.nsB, process.execPath, ['-e', code, tb.ifB], { cwd: root, timeoutMs: 30_000 });
  // It says which way it receives first; then frames arrive from nsA during its second of listening.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the example did not start')), 15_000);
    ex.child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('receiving on')) { clearTimeout(timer); resolve(); } });
  });
  const s = nodeIn(tb.nsA, TX_FIXTURE, [JSON.stringify({ port: { ifname: tb.ifA, mode: 'packet', rx: false }, frame: frameAtoB(tb), payload: 64, count: 1000, pps: 100_000 })]);
  await s.succeeded();
  const r = await ex.succeeded();
  assert.match(r.stdout, new RegExp(`^receiving on ${tb.ifB} via xdp\\n`));
  const result = JSON.parse(r.stdout.split('\n')[1] ?? '') as { frames: number; sent: number; rx: number; tx: number };
  assert.deepEqual(result, { frames: 1000, sent: 8, rx: 1000, tx: 8 });
});

test('kbypass/packet loads as an ES module with the same exports', () => {
  const code = "import { openPort, XdpPort, PacketPort, interfaceInfo } from 'kbypass/packet'; import cjs from 'kbypass/packet';" +
    "console.log([typeof openPort, typeof XdpPort, typeof PacketPort, interfaceInfo('lo').name, openPort === cjs.openPort].join(' '));";
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'function function function lo true\n');
});
