import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CTRL_HEAD, FRAG_FIRST_PREFIX_BYTES, TYPE_DATA, TYPE_FRAG_FIRST, TYPE_FRAG_LAST, TYPE_FRAG_MIDDLE, recordBytes,
  regionBytes,
} from './layout';
import { writeMessage } from './writer';
import { Prng, drain, inBounds, makeRing, messageBytes, put, type RingFixture } from './ring-fixtures';

const CAP = 4096;
const MAX = CAP / 4 - 8; // maxPayload of a 4096-byte ring

/** Send one message through `f`, draining between partial writes; returns what the consumer delivered. */
function send(f: RingFixture, src: Uint8Array, offset: number, length: number): Uint8Array[] {
  const got: Uint8Array[] = [];
  let done = 0;
  for (let rounds = 0; ; rounds++) {
    assert.ok(rounds < 100_000, 'progress');
    const d = writeMessage(f.producer, src, offset, length, done);
    if (d !== -1) {
      assert.ok(d <= length && (d > done || length === 0), `progress: ${done} → ${d} of ${length}`);
      done = d;
    }
    got.push(...drain(f.consumer));
    if (d === length) return got;
  }
}

/** The records between 0 and the tail of a ring written once from empty: [type, length] pairs. */
function records(f: RingFixture): [number, number][] {
  const out: [number, number][] = [];
  for (let pos = 0; f.words[pos >> 2] !== 0; pos += recordBytes(f.words[(pos >> 2) + 1]!)) {
    out.push([f.words[pos >> 2]!, f.words[(pos >> 2) + 1]!]);
  }
  return out;
}

test('messages around the record-size boundaries are split and reassembled byte-exact', () => {
  const maxMessage = 20_000;
  const sizes = [0, 1, MAX - 8, MAX - 1, MAX, MAX + 1, MAX + 7, MAX + 8, 2 * MAX - 8, 2 * MAX - 7, 2 * MAX,
    3 * MAX + 5, 4 * MAX, 10_000, maxMessage - 1, maxMessage];
  const f = makeRing(CAP, maxMessage);
  for (const [i, len] of sizes.entries()) {
    const msg = messageBytes(i, len);
    const got = send(f, msg, 0, len);
    assert.equal(got.length, 1, `one message of ${len} bytes`);
    assert.deepEqual(got[0], msg, `${len} bytes`);
  }
  assert.equal(f.consumer.fault, null);
  assert.equal(f.producer.fault, null);
});

test('the record sequence: DATA up to maxPayload, else FIRST (with the total) / MIDDLE… / LAST', () => {
  const cap = 1 << 16;
  const f0 = makeRing(cap);
  const max = f0.producer.maxPayload;
  for (const len of [0, max, max + 1, 2 * max - 8, 2 * max - 7, 3 * max + 5]) {
    const f = makeRing(cap);
    const msg = messageBytes(len, len);
    assert.equal(writeMessage(f.producer, msg, 0, len, 0), len, 'written in one call');
    const recs = records(f);
    assert.equal(recs.length, f.producer.fragmentCount(len), `${len}: ${JSON.stringify(recs)}`);
    if (len <= max) {
      assert.deepEqual(recs, [[TYPE_DATA, len]]);
    } else {
      const first = max - FRAG_FIRST_PREFIX_BYTES;
      const rest = len - first;
      const middles = Math.ceil(rest / max) - 1;
      assert.deepEqual(recs, [[TYPE_FRAG_FIRST, max], ...Array<[number, number]>(middles).fill([TYPE_FRAG_MIDDLE, max]),
        [TYPE_FRAG_LAST, rest - middles * max]]);
      const dv = new DataView(f.buffer, f.bytes.byteOffset);
      assert.equal(dv.getUint32(8, true), len, 'FRAG_FIRST: u32 total');
      assert.equal(dv.getUint32(12, true), 0, 'then u32 0');
      assert.deepEqual(f.bytes.subarray(16, 16 + first), msg.subarray(0, first));
    }
    assert.deepEqual(drain(f.consumer), [msg]);
  }
});

test('a message of more than 2^24 bytes: every byte of the u32 total counts', () => {
  const len = 0x01020305; // no byte of it zero
  const f = makeRing(CAP, len);
  const msg = messageBytes(0, len);
  let done = writeMessage(f.producer, msg, 0, len, 0);
  assert.equal(new DataView(f.buffer, f.bytes.byteOffset).getUint32(8, true), len, 'FRAG_FIRST total, little-endian');
  const got: Uint8Array[] = [];
  while (done < len) {
    got.push(...drain(f.consumer));
    const d = writeMessage(f.producer, msg, 0, len, done);
    assert.ok(d > done);
    done = d;
  }
  got.push(...drain(f.consumer));
  assert.equal(got.length, 1);
  assert.equal(got[0]!.length, len);
  assert.ok(Buffer.compare(got[0]!, msg) === 0, 'byte-exact');
});

test('writeMessage writes the range [offset, offset + length) of its source', () => {
  const f = makeRing(CAP, 1 << 16);
  const src = messageBytes(99, 8000);
  for (const [off, len] of [[0, 10], [123, 10], [7999, 1], [8000, 0], [5, MAX], [17, MAX + 1], [1000, 4000]] as const) {
    assert.deepEqual(send(f, src, off, len), [src.subarray(off, off + len)], `[${off}, +${len})`);
  }
});

test('resumable: a message larger than the ring goes out in pieces as the consumer frees space', () => {
  const f = makeRing(CAP, 1 << 16);
  const len = 10_000;
  const msg = messageBytes(1, len);
  const got: Uint8Array[] = [];
  const h = inBounds((b, o, l) => { got.push(b.slice(o, o + l)); });
  // From an empty ring: FIRST, MIDDLE, MIDDLE fit (3 × 1024 + 8 ≤ 4096), a fourth record does not.
  let done = writeMessage(f.producer, msg, 0, len, 0);
  assert.equal(done, (MAX - 8) + 2 * MAX);
  assert.equal(writeMessage(f.producer, msg, 0, len, done), -1, 'no room: nothing written, -1');
  const progress = [done];
  while (done < len) {
    // The fragments so far are visible: the consumer takes them in (nothing handed over yet) and frees space.
    const headBefore = f.ctrl[CTRL_HEAD]!;
    assert.equal(f.consumer.poll(h, Infinity), 0);
    assert.ok(f.ctrl[CTRL_HEAD]! !== headBefore, 'the fragments were consumed');
    assert.equal(got.length, 0);
    const d = writeMessage(f.producer, msg, 0, len, done);
    assert.ok(d > done && d <= len, `${done} → ${d}`);
    assert.ok(d === len || (d - (MAX - 8)) % MAX === 0, 'whole fragments');
    done = d;
    progress.push(d);
  }
  assert.ok(progress.length >= 3, JSON.stringify(progress));
  assert.equal(f.consumer.poll(h, Infinity), 1);
  assert.deepEqual(got, [msg]);
});

test('writeMessage returns -1 and writes nothing when the ring is full', () => {
  const f = makeRing(CAP, 1 << 16);
  while (f.producer.reserve(0) >= 0) f.producer.commit(TYPE_DATA, 0);
  const before = f.bytes.slice();
  assert.equal(writeMessage(f.producer, messageBytes(0, 10), 0, 10, 0), -1);
  assert.equal(writeMessage(f.producer, messageBytes(0, 5000), 0, 5000, 0), -1);
  assert.deepEqual(f.bytes, before);
  // Free a little: a fragmented message starts once its first record fits, and resumes from there.
  assert.equal(drain(f.consumer, 200).length, 200);
  const msg = messageBytes(0, 5000);
  let done = writeMessage(f.producer, msg, 0, 5000, 0);
  assert.equal(done, MAX - 8, 'only the first fragment fitted');
  const got = drain(f.consumer);
  assert.equal(got.length, 511 - 200);
  while (done < 5000) {
    const d = writeMessage(f.producer, msg, 0, 5000, done);
    assert.ok(d > done);
    done = d;
    got.push(...drain(f.consumer));
  }
  assert.deepEqual(got.slice(311), [msg]);
});

test('a fragmented message wakes a parked consumer once, when it is all there', () => {
  const f = makeRing(1 << 16, 1 << 20);
  assert.equal(f.consumer.park(), false);
  const msg = messageBytes(3, 50_000);
  assert.equal(writeMessage(f.producer, msg, 0, msg.length, 0), msg.length);
  assert.equal(f.wakes.consumer, 1);
  assert.deepEqual(drain(f.consumer), [msg]);
  // A partial write is published too (the consumer must drain it for the rest to fit): still one wake per park.
  const g = makeRing(CAP, 1 << 16);
  assert.equal(g.consumer.park(), false);
  const big = messageBytes(4, 9000);
  let done = writeMessage(g.producer, big, 0, big.length, 0);
  assert.ok(done > 0 && done < big.length);
  assert.equal(g.wakes.consumer, 1);
  assert.equal(g.consumer.hasData(), true);
  while (done < big.length) {
    assert.equal(g.consumer.poll(() => assert.fail('not whole yet'), Infinity), 0);
    done = writeMessage(g.producer, big, 0, big.length, done);
  }
  assert.equal(g.wakes.consumer, 1, 'not parked again');
  assert.deepEqual(drain(g.consumer), [big]);
});

test('writeMessage inside a cork: nothing is visible until the outer uncork', () => {
  const f = makeRing(1 << 16, 1 << 20);
  f.consumer.park();
  f.producer.cork();
  const a = messageBytes(1, 100);
  const b = messageBytes(2, 40_000);
  assert.equal(writeMessage(f.producer, a, 0, a.length, 0), a.length);
  assert.equal(writeMessage(f.producer, b, 0, b.length, 0), b.length);
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.poll(() => assert.fail('corked'), Infinity), 0);
  assert.equal(f.wakes.consumer, 0);
  f.producer.uncork();
  assert.equal(f.wakes.consumer, 1);
  assert.deepEqual(drain(f.consumer), [a, b]);
});

test('a message larger than the consumer accepts faults it with ERR_KBYPASS_MESSAGE_TOO_LARGE', () => {
  // Fragmented: the first fragment's total is checked.
  const f = makeRing(CAP, 3000);
  assert.deepEqual(send(f, messageBytes(0, 3000), 0, 3000), [messageBytes(0, 3000)], 'exactly maxMessage is fine');
  assert.equal(writeMessage(f.producer, messageBytes(1, 3001), 0, 3001, 0), 3001);
  assert.deepEqual(drain(f.consumer), []);
  assert.deepEqual(f.consumer.fault, {
    code: 'ERR_KBYPASS_MESSAGE_TOO_LARGE', reason: 'peer sent a 3001-byte message; this side accepts at most 3000',
  });
  assert.equal(f.consumer.poll(() => assert.fail('stopped'), Infinity), 0);
  // One record: its length is checked.
  const g = makeRing(CAP, 100);
  put(g, TYPE_DATA, messageBytes(2, 100));
  assert.equal(writeMessage(g.producer, messageBytes(3, 101), 0, 101, 0), 101);
  assert.deepEqual(drain(g.consumer), [messageBytes(2, 100)]);
  assert.equal(g.consumer.fault?.code, 'ERR_KBYPASS_MESSAGE_TOO_LARGE');
  assert.match(g.consumer.fault?.reason ?? '', /101-byte message/);
});

// ---- RingProducer.copyIn ----------------------------------------------------------------------------------------------

/** copyIn into a ring filled with 0xee; checks the bytes landed at [at, at + expect.length) and nowhere else. */
function checkCopy(f: RingFixture, at: number, src: Uint8Array, srcOffset: number, length: number, expect: Uint8Array): void {
  f.bytes.fill(0xee);
  f.producer.copyIn(at, src, srcOffset, length);
  assert.deepEqual(f.bytes.subarray(at, at + length), expect);
  for (let i = 0; i < f.capacity; i++) {
    if ((i < at || i >= at + length) && f.bytes[i] !== 0xee) assert.fail(`byte ${i} written (copy to [${at}, +${length}))`);
  }
}

test('copyIn: a whole array, a subrange, views and pooled Buffers', () => {
  const f = makeRing(CAP);
  const src = messageBytes(5, 1000);
  checkCopy(f, 8, src, 0, 1000, src);
  checkCopy(f, 3000, src, 0, 1000, src);
  checkCopy(f, 16, src, 37, 200, src.subarray(37, 237));
  checkCopy(f, 16, src, 999, 1, src.subarray(999));
  checkCopy(f, 16, src, 0, 999, src.subarray(0, 999));
  checkCopy(f, 16, src, 500, 0, new Uint8Array(0));
  const view = src.subarray(100, 300); // byteOffset 100: a whole-array copy must still start at the view
  checkCopy(f, 40, view, 0, 200, src.subarray(100, 300));
  checkCopy(f, 40, view, 50, 100, src.subarray(150, 250));
  const pooled = Buffer.from('a Buffer from the pool, at some offset of a shared slab');
  assert.ok(pooled.byteOffset !== 0 || pooled.buffer.byteLength !== pooled.length, 'a pooled Buffer');
  checkCopy(f, 64, pooled, 0, pooled.length, new Uint8Array(pooled));
  checkCopy(f, 64, pooled, 2, 6, new TextEncoder().encode('Buffer'));
});

test('copyIn: forwarding from the sibling ring (setSibling) copies the right bytes', () => {
  const buffer = new ArrayBuffer(regionBytes(CAP));
  const out = makeRing(CAP, 1 << 16, 0, buffer); // ring 0: we forward into it
  const inn = makeRing(CAP, 1 << 16, 1, buffer); // ring 1: messages arrive here
  out.producer.setSibling(inn.consumer.bytes);
  assert.equal(out.producer.sibling, inn.consumer.bytes);
  assert.equal(out.producer.siblingOffset, inn.bytes.byteOffset);
  // Direct copies out of the sibling, including subranges at its very start and end.
  const fill = messageBytes(6, CAP);
  inn.bytes.set(fill);
  for (const [at, from, len] of [[8, 0, 100], [8, 1, 1000], [500, CAP - 300, 300], [0, 2000, CAP - 2000]] as const) {
    checkCopy(out, at, inn.bytes, from, len, fill.subarray(from, from + len));
    assert.deepEqual(inn.bytes, fill, 'the sibling is not written');
  }
  // Forwarding live messages: every message of the incoming ring, at whatever offset it lies, goes out as is.
  const rng = new Prng(3);
  const lengths: number[] = [];
  const received: Uint8Array[] = [];
  let viaSibling = 0;
  const forward = inBounds((b, o, l) => {
    if (b === out.producer.sibling) viaSibling++;
    assert.equal(writeMessage(out.producer, b, o, l, 0), l);
  });
  for (let i = 0; i < 2000; i++) {
    const len = rng.chance(0.1) ? rng.int(MAX + 1, 3000) : rng.int(0, MAX);
    lengths.push(len);
    assert.equal(writeMessage(inn.producer, messageBytes(i, len), 0, len, 0), len);
    assert.equal(inn.consumer.poll(forward, Infinity), 1);
    received.push(...drain(out.consumer));
  }
  assert.equal(received.length, 2000);
  assert.ok(viaSibling > 1500, `${viaSibling} forwarded straight from the sibling ring`);
  for (let i = 0; i < 2000; i++) assert.deepEqual(received[i], messageBytes(i, lengths[i]!), `message ${i}`);
});
