import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { parseVariant } from './layout-ab';

const SCRIPT = path.join(__dirname, 'layout-ab.js');

test('variant names: floor/fresh/mixed[N], walkS[aK], rN[n|wB]; anything else is refused', () => {
  assert.deepEqual(parseVariant('floor'), { kind: 'floor', bytes: 64, at: 64, fresh: false });
  assert.deepEqual(parseVariant('mixed64'), { kind: 'floor', bytes: 64, at: 8, fresh: false });
  assert.deepEqual(parseVariant('fresh120'), { kind: 'floor', bytes: 120, at: 64, fresh: true });
  assert.deepEqual(parseVariant('walk80a2'), { kind: 'walk', stride: 80, ahead: 2 });
  assert.deepEqual(parseVariant('r64'), { kind: 'ring', bytes: 64, writeAhead: null });
  assert.deepEqual(parseVariant('r64n'), { kind: 'ring', bytes: 64, writeAhead: 0 });
  assert.deepEqual(parseVariant('r64w640'), { kind: 'ring', bytes: 64, writeAhead: 640 });
  for (const bad of ['', 'r', 'r0', 'r2000', 'floor0', 'walk81', 'walk80a99', 'r64x', 'ring64']) assert.equal(parseVariant(bad), null, bad);
});

test('a short run prints one line with every variant\'s p50; a bad variant exits 2', { timeout: 60_000 }, () => {
  const r = spawnSync(process.execPath, [SCRIPT, '--laps', '2', '--slice', '300', '--variants', 'floor,walk80a2,r64n,r64'], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^floor \d+\.\d{3} {2}walk80a2 \d+\.\d{3} {2}r64n \d+\.\d{3} {2}r64 \d+\.\d{3} {2}\(µs, p50 of each variant's round trips\)\n$/);
  const bad = spawnSync(process.execPath, [SCRIPT, '--variants', 'floor,r9999'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown variant "r9999"/);
});
