/**
 * Shared helpers for the ring unit tests (*.test.ts beside this file): a seeded PRNG, deterministic message
 * contents, and a producer + consumer over one plain ArrayBuffer laid out as a real region (no native addon).
 */
import * as assert from 'node:assert/strict';
import { RingConsumer, type MessageHandler } from './consumer';
import { CTRL_HEAD, MIN_CAPACITY, RING_CONTROL_BYTES, TYPE_DATA, regionBytes, ringOffset } from './layout';
import { RingProducer } from './producer';

/** mulberry32: small, fast, seeded; good enough to pick sizes and bytes reproducibly. */
export class Prng {
  #s: number;
  constructor(seed: number) { this.#s = seed >>> 0; }
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number { return lo + (this.u32() % (hi - lo + 1)); }
  /** True with probability p. */
  chance(p: number): boolean { return this.u32() < p * 0x1_0000_0000; }
  fill(out: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= out.length; i += 4) {
      const v = this.u32();
      out[i] = v; out[i + 1] = v >>> 8; out[i + 2] = v >>> 16; out[i + 3] = v >>> 24;
    }
    if (i < out.length) { const v = this.u32(); for (let k = 0; i < out.length; i++, k += 8) out[i] = v >>> k; }
    return out;
  }
}

/** The contents of message number `id` of `length` bytes: pseudo-random, different for every id. */
export function messageBytes(id: number, length: number): Uint8Array {
  return new Prng(Math.imul(id + 1, 0x9e3779b1) ^ length).fill(new Uint8Array(length));
}

/** A producer and a consumer on one ring of a region held in a plain ArrayBuffer. */
export interface RingFixture {
  readonly buffer: ArrayBuffer;
  readonly capacity: number;
  readonly producer: RingProducer;
  readonly consumer: RingConsumer;
  /** The ring's control block (index with CTRL_*). */
  readonly ctrl: Int32Array;
  /** The ring's record bytes, as the peer sees them (for writing records by hand). */
  readonly bytes: Uint8Array;
  /** The same, as 32-bit words. */
  readonly words: Int32Array;
  /** consumer: times the producer rang the consumer's doorbell; producer: times the consumer rang the producer's. */
  readonly wakes: { consumer: number; producer: number };
}

export function makeRing(capacity = MIN_CAPACITY, maxMessage = 1 << 20, index: 0 | 1 = 0,
  buffer: ArrayBuffer = new ArrayBuffer(regionBytes(capacity))): RingFixture {
  const wakes = { consumer: 0, producer: 0 };
  const off = ringOffset(capacity, index);
  return {
    buffer,
    capacity,
    producer: new RingProducer(buffer, off, capacity, () => { wakes.consumer++; }),
    consumer: new RingConsumer(buffer, off, capacity, maxMessage, () => { wakes.producer++; }),
    ctrl: new Int32Array(buffer, off, RING_CONTROL_BYTES >> 2),
    bytes: new Uint8Array(buffer, off + RING_CONTROL_BYTES, capacity),
    words: new Int32Array(buffer, off + RING_CONTROL_BYTES, capacity >> 2),
    wakes,
  };
}

/** Wrap a handler so that any call with a range outside its buffer fails the test. */
export function inBounds(handler: MessageHandler): MessageHandler {
  return (buffer, offset, length) => {
    assert.ok(buffer instanceof Uint8Array, 'handler buffer is a Uint8Array');
    assert.ok(Number.isInteger(offset) && Number.isInteger(length), `integer offset/length (${offset}, ${length})`);
    assert.ok(offset >= 0 && length >= 0 && offset + length <= buffer.length,
      `handler range [${offset}, ${offset + length}) is outside its ${buffer.length}-byte buffer`);
    handler(buffer, offset, length);
  };
}

/** Poll once with `limit`, returning copies of the messages handed over. */
export function drain(consumer: RingConsumer, limit = Infinity): Uint8Array[] {
  const got: Uint8Array[] = [];
  const n = consumer.poll(inBounds((b, o, l) => { got.push(b.slice(o, o + l)); }), limit);
  assert.equal(n, got.length, 'poll returns the number of messages it handed over');
  return got;
}

/** Write a record header by hand, as a (possibly hostile) producer would: length first, type last. */
export function putRecord(f: RingFixture, pos: number, type: number, length: number): void {
  f.words[(pos >> 2) + 1] = length;
  f.words[pos >> 2] = type;
}

/** Write a little-endian u32 into the ring bytes. */
export function putU32(f: RingFixture, at: number, v: number): void {
  new DataView(f.buffer, f.bytes.byteOffset, f.capacity).setUint32(at, v >>> 0, true);
}

/** Reserve, fill with `data`, commit as `type`; fails the test if there is no room. Returns the payload offset. */
export function put(f: RingFixture, type: number, data: Uint8Array): number {
  const at = f.producer.reserve(data.length);
  assert.ok(at >= 0, `room for a ${data.length}-byte record`);
  f.bytes.set(data, at);
  f.producer.commit(type, data.length);
  return at;
}

/** Move an empty ring's position (producer and consumer) to `pos` (a multiple of 8) with consumed messages. */
export function advanceTo(f: RingFixture, pos: number): void {
  assert.equal(f.producer.freeBytes(), f.capacity - 8, 'the ring is empty');
  while ((f.ctrl[CTRL_HEAD]! & (f.capacity - 1)) !== pos) {
    const left = (pos - f.ctrl[CTRL_HEAD]!) & (f.capacity - 1);
    put(f, TYPE_DATA, new Uint8Array(Math.min(left, f.producer.maxPayload + 8) - 8));
    drain(f.consumer);
  }
}
