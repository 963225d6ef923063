// XskRing against a simulated kernel side on a plain ArrayBuffer laid out as XDP_MMAP_OFFSETS describes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XskRing } from './xsk-ring';
import { XDP_RING_NEED_WAKEUP } from './xdp-layout';

const OFFS = [0, 64, 192, 128] as const; // producer, consumer, desc, flags (distinct cache lines, as the kernel lays them)

function ring(size: number, entry: 8 | 16, producer: boolean) {
  const buf = new ArrayBuffer(OFFS[2] + size * entry);
  const u32 = new Uint32Array(buf);
  return { r: new XskRing(buf, OFFS, size, entry, producer), u32 };
}

test('producer side (FILL/TX): free space follows the kernel\'s consumer index, publishing stores the producer', () => {
  const { r, u32 } = ring(8, 8, true);
  assert.equal(r.free(1), 8);
  for (let i = 0; i < 8; i++) r.putAddr(i, 100 + i);
  r.submit(8);
  assert.deepEqual([...r.words.subarray(0, 4)], [100, 0, 101, 0]); // u64 entries, high words 0
  assert.equal(u32[0], 8);
  assert.equal(r.free(1), 0); // full until the kernel consumes
  u32[16] = 3; // the kernel took three
  assert.equal(r.free(1), 3);
  assert.equal(r.outstanding(), 5);
  // entries wrap: entry 8 goes where entry 0 was
  r.putAddr(0, 7777);
  assert.equal(r.words[0], 7777);
});

test('putDesc writes an xdp_desc where the index points, wrapping', () => {
  const { r } = ring(2, 16, true);
  r.putDesc(0, 4096, 106);
  r.putDesc(1, 8192, 60);
  assert.deepEqual([...r.words], [4096, 0, 106, 0, 8192, 0, 60, 0]);
  r.submit(1);
  r.putDesc(1, 12288, 70); // index 2 wraps to entry 0
  assert.deepEqual([...r.words.subarray(0, 4)], [12288, 0, 70, 0]);
});

test('consumer side (RX/COMPLETION): available follows the kernel\'s producer, release stores the consumer', () => {
  const { r, u32 } = ring(4, 16, false);
  assert.equal(r.available(64), 0);
  u32[0] = 3;
  assert.equal(r.available(64), 3);
  assert.equal(r.available(2), 2);
  r.release(2);
  assert.equal(u32[16], 2);
  assert.equal(r.available(64), 1);
});

test('free-running u32 indices wrap past 2^32', () => {
  const size = 4;
  const buf = new ArrayBuffer(OFFS[2] + size * 16);
  const u32 = new Uint32Array(buf);
  u32[0] = 0xfffffffe; // the kernel's producer
  u32[16] = 0xfffffffe; // our consumer
  const r = new XskRing(buf, OFFS, size, 16, false);
  u32[0] = 0x00000001; // three more, across the wrap
  assert.equal(r.available(64), 3);
  r.release(3);
  assert.equal(u32[16], 1);
  assert.equal(r.available(64), 0);
});

test('a kernel index that claims more entries than the ring has reads as nothing, never as garbage', () => {
  const { r, u32 } = ring(4, 16, false);
  u32[0] = 1000;
  assert.equal(r.available(64), 0);
});

test('need-wakeup flag', () => {
  const { r, u32 } = ring(4, 8, true);
  assert.equal(r.needsWakeup(), false);
  u32[32] = XDP_RING_NEED_WAKEUP;
  assert.equal(r.needsWakeup(), true);
});

test('offsets outside the mapping are refused', () => {
  assert.throws(() => new XskRing(new ArrayBuffer(64), OFFS, 8, 16, true), RangeError);
  assert.throws(() => new XskRing(new ArrayBuffer(4096), [0, 66, 192, 128], 8, 16, true), RangeError);
});
