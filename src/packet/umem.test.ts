// Umem: the free list of frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Umem } from './umem';

test('every frame is handed out once, by address, and comes back by any address inside it', () => {
  const u = new Umem(new ArrayBuffer(8 * 2048), 2048, 8);
  const seen = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const a = u.alloc();
    assert.equal(a % 2048, 0);
    assert.ok(!seen.has(a));
    seen.add(a);
  }
  assert.equal(u.alloc(), -1);
  u.free(3 * 2048 + 256 + 17); // an RX descriptor's address points past the headroom
  assert.equal(u.alloc(), 3 * 2048);
  assert.equal(u.freeFrames, 0);
});

test('more frees than frames is an error, not a corrupt list', () => {
  const u = new Umem(new ArrayBuffer(2 * 4096), 4096, 2);
  assert.throws(() => u.free(0), { code: 'ERR_OUT_OF_RANGE' });
  assert.equal(u.contains(8191), true);
  assert.equal(u.contains(8192), false);
  assert.equal(u.contains(-1), false);
});
