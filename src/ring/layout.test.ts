import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CTRL_CONSUMER_WAITING, CTRL_HEAD, CTRL_PRODUCER_CLOSED, CTRL_PRODUCER_WAITING, HDR_CAPACITY, HDR_HEADER_BYTES,
  HDR_MAGIC, HDR_REGION_BYTES, HDR_RING0_OFFSET, HDR_RING1_OFFSET, HDR_SERVER_PID, HDR_VERSION, MAX_CAPACITY,
  MIN_CAPACITY, REGION_HEADER_BYTES, REGION_MAGIC, REGION_VERSION, RING_CONTROL_BYTES, checkRegionHeader,
  maxRecordPayload, recordBytes, regionBytes, ringOffset, writeRegionHeader,
} from './layout';

function region(capacity: number, pid = 4242): { buffer: ArrayBuffer; dv: DataView } {
  const buffer = new ArrayBuffer(regionBytes(capacity));
  writeRegionHeader(buffer, capacity, pid);
  return { buffer, dv: new DataView(buffer) };
}

function rejected(buffer: ArrayBuffer, pattern: RegExp): void {
  const r = checkRegionHeader(buffer);
  assert.ok('reason' in r, `rejected, got ${JSON.stringify(r)}`);
  assert.match(r.reason, pattern);
}

test('record sizes: header plus payload, rounded up to 8', () => {
  assert.deepEqual([0, 1, 7, 8, 9, 1016].map(recordBytes), [8, 16, 16, 16, 24, 1024]);
  assert.equal(maxRecordPayload(4096), 1016);
  assert.equal(recordBytes(maxRecordPayload(1 << 20)), (1 << 20) / 4);
});

test('region geometry: header page, then two rings of control block + capacity, back to back', () => {
  for (const cap of [MIN_CAPACITY, 1 << 16, 1 << 20]) {
    assert.equal(ringOffset(cap, 0), REGION_HEADER_BYTES);
    assert.equal(ringOffset(cap, 1), REGION_HEADER_BYTES + RING_CONTROL_BYTES + cap);
    assert.equal(regionBytes(cap), ringOffset(cap, 1) + RING_CONTROL_BYTES + cap);
  }
});

test('control block: consumer head, waiting flags on lines of their own, closed beside producer-waiting', () => {
  assert.equal(CTRL_HEAD * 4, 64);
  assert.equal(CTRL_CONSUMER_WAITING * 4, 128);
  assert.equal(CTRL_PRODUCER_WAITING * 4, 192);
  assert.equal(CTRL_PRODUCER_CLOSED * 4, 196);
  assert.ok(CTRL_PRODUCER_CLOSED * 4 + 4 <= RING_CONTROL_BYTES);
});

test('writeRegionHeader writes every field where the layout says, little-endian', () => {
  const { dv } = region(1 << 16, 0xfffffffe);
  assert.equal(dv.getUint32(HDR_MAGIC, true), REGION_MAGIC);
  assert.equal(String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3)), 'KBYP');
  assert.equal(dv.getUint16(HDR_VERSION, true), REGION_VERSION);
  assert.equal(dv.getUint16(HDR_HEADER_BYTES, true), REGION_HEADER_BYTES);
  assert.equal(dv.getUint32(HDR_CAPACITY, true), 1 << 16);
  assert.equal(dv.getUint32(HDR_REGION_BYTES, true), regionBytes(1 << 16));
  assert.equal(dv.getUint32(HDR_RING0_OFFSET, true), ringOffset(1 << 16, 0));
  assert.equal(dv.getUint32(HDR_RING1_OFFSET, true), ringOffset(1 << 16, 1));
  assert.equal(dv.getUint32(HDR_SERVER_PID, true), 0xfffffffe);
  assert.equal(dv.getUint32(28, true), 0, 'reserved word');
});

test('checkRegionHeader accepts what writeRegionHeader wrote', () => {
  for (const cap of [MIN_CAPACITY, 8192, 1 << 16, 1 << 20]) {
    assert.deepEqual(checkRegionHeader(region(cap).buffer), { capacity: cap });
  }
  // A mapping may be larger than the region (page rounding).
  const big = new ArrayBuffer(regionBytes(MIN_CAPACITY) + 4096);
  writeRegionHeader(big, MIN_CAPACITY, 1);
  assert.deepEqual(checkRegionHeader(big), { capacity: MIN_CAPACITY });
});

test('checkRegionHeader rejects a bad magic', () => {
  const { buffer, dv } = region(MIN_CAPACITY);
  dv.setUint32(HDR_MAGIC, 0x4b425950, true); // the right bytes, wrong order
  rejected(buffer, /bad magic 0x4b425950 \(expected 0x5059424b\)/);
  dv.setUint32(HDR_MAGIC, 0, true);
  rejected(buffer, /bad magic/);
});

test('checkRegionHeader rejects another layout version', () => {
  for (const v of [0, 2, 0xffff]) {
    const { buffer, dv } = region(MIN_CAPACITY);
    dv.setUint16(HDR_VERSION, v, true);
    rejected(buffer, new RegExp(`layout version ${v};.*version ${REGION_VERSION}`));
  }
});

test('checkRegionHeader rejects an unexpected header size', () => {
  const { buffer, dv } = region(MIN_CAPACITY);
  dv.setUint16(HDR_HEADER_BYTES, 8192, true);
  rejected(buffer, /header size/);
});

test('checkRegionHeader rejects a capacity that is not a power of two in range', () => {
  for (const cap of [0, 3, 2048, 4095, 4097, 6144, 12288, MAX_CAPACITY * 2, 0xffffffff]) {
    const { buffer, dv } = region(MIN_CAPACITY);
    dv.setUint32(HDR_CAPACITY, cap >>> 0, true);
    rejected(buffer, new RegExp(`ring capacity ${cap >>> 0} is not a power of two in \\[${MIN_CAPACITY}, ${MAX_CAPACITY}\\]`));
  }
});

test('checkRegionHeader rejects a region whose size does not match its capacity', () => {
  // The header says 8192 while the region was made for 4096: the advertised size is wrong and the buffer short.
  let r = region(MIN_CAPACITY);
  r.dv.setUint32(HDR_CAPACITY, 8192, true);
  rejected(r.buffer, /region size \d+ does not match capacity 8192/);
  // The size field alone is wrong.
  r = region(MIN_CAPACITY);
  r.dv.setUint32(HDR_REGION_BYTES, regionBytes(MIN_CAPACITY) + 8, true);
  rejected(r.buffer, /does not match capacity 4096/);
  // Fields consistent, but the mapping is shorter than the region they describe.
  const short = new ArrayBuffer(regionBytes(8192) - 1);
  writeRegionHeader(short, 8192, 1);
  rejected(short, new RegExp(`region size ${regionBytes(8192) - 1} does not match capacity 8192`));
});

test('checkRegionHeader rejects a buffer smaller than the header', () => {
  rejected(new ArrayBuffer(100), /region is 100 bytes, smaller than its header/);
});

test('checkRegionHeader rejects ring offsets that do not follow the layout', () => {
  for (const field of [HDR_RING0_OFFSET, HDR_RING1_OFFSET]) {
    const { buffer, dv } = region(MIN_CAPACITY);
    dv.setUint32(field, dv.getUint32(field, true) + 64, true);
    rejected(buffer, /ring offsets do not match the layout/);
  }
});
