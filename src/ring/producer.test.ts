import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CTRL_CONSUMER_WAITING, CTRL_HEAD, CTRL_PRODUCER_CLOSED, CTRL_PRODUCER_WAITING, LINE_BYTES, RING_SLACK_BYTES, TYPE_DATA,
  TYPE_PAD, WRITE_AHEAD_BYTES, recordBytes,
} from './layout';
import { Prng, advanceTo, drain, makeRing, messageBytes, put, type RingFixture } from './ring-fixtures';

const CAP = 4096;

/** Fill the ring with zero-length records until reserve refuses; returns how many fit. */
function fillWithEmpty(f: RingFixture): number {
  let n = 0;
  while (f.producer.reserve(0) >= 0) { f.producer.commit(TYPE_DATA, 0); n++; }
  return n;
}

test('reserve/commit: the record goes at the tail, the type word after it is zeroed, the type is written last', () => {
  const f = makeRing(CAP);
  f.words[(24 >> 2)] = 0x7777; // garbage where the next record's type word will be
  const at = f.producer.reserve(13);
  assert.equal(at, 8);
  assert.equal(f.words[0], 0, 'nothing visible before commit');
  f.bytes.set(messageBytes(1, 13), at);
  f.producer.commit(TYPE_DATA, 13);
  assert.equal(f.words[0], TYPE_DATA);
  assert.equal(f.words[1], 13);
  assert.equal(f.words[24 >> 2], 0, 'next type word zeroed');
  assert.equal(f.producer.used, recordBytes(13));
  assert.equal(f.producer.reserve(0), 24 + 8);
});

test('an uncommitted reservation is forgotten: the next reserve returns the same place', () => {
  const f = makeRing(CAP);
  assert.equal(f.producer.reserve(100), 8);
  assert.equal(f.producer.reserve(50), 8);
  assert.equal(f.producer.used, 0);
  assert.equal(f.consumer.poll(() => assert.fail('nothing committed'), Infinity), 0);
});

test('8 bytes of slack: a 4096-byte ring holds 511 empty records, not 512', () => {
  const f = makeRing(CAP);
  assert.equal(f.producer.freeBytes(), CAP - RING_SLACK_BYTES);
  assert.equal(fillWithEmpty(f), (CAP - RING_SLACK_BYTES) / 8);
  assert.equal(f.producer.used, CAP - RING_SLACK_BYTES);
  assert.equal(f.producer.freeBytes(), 0);
  // The record at the head is intact and the slack word after the tail (just before the head) is zero.
  assert.equal(f.words[0], TYPE_DATA);
  assert.equal(f.words[(CAP - 8) >> 2], 0);
  assert.equal(drain(f.consumer).length, 511);
});

test('back-pressure: reserve returns -1 when full, space returns once the consumer polls', () => {
  const f = makeRing(CAP);
  const max = f.producer.maxPayload;
  let n = 0;
  while (f.producer.reserve(max) >= 0) { put(f, TYPE_DATA, messageBytes(n, max)); n++; }
  assert.equal(n, 3, 'three 1024-byte records and the slack fit in 4096 bytes, a fourth does not');
  assert.equal(f.producer.reserve(max), -1);
  assert.equal(f.producer.reserve(max - 7), -1, 'a 1009-byte payload still takes a 1024-byte record');
  assert.equal(f.producer.reserve(max - 8), 3072 + 8, 'a 1016-byte record fills the ring up to the slack');
  // Consume one message: room for exactly one more full record (no PAD: it ends at the end of the ring).
  assert.equal(drain(f.consumer, 1).length, 1);
  assert.equal(f.producer.reserve(max), 3072 + 8);
  put(f, TYPE_DATA, messageBytes(n++, max));
  assert.equal(f.producer.reserve(max), -1);
  assert.equal(f.producer.reserve(max - 8), 8);
  const got = drain(f.consumer);
  assert.deepEqual(got, [1, 2, 3].map((i) => messageBytes(i, max)), 'nothing overwritten');
});

test('a record that would cross the end is preceded by a PAD to the end and goes to offset 0', () => {
  const f = makeRing(CAP);
  advanceTo(f, CAP - 24);
  const at = f.producer.reserve(100);
  assert.equal(at, 8, 'payload after the wrap');
  // The PAD is committed right away (it carries nothing), the record only at commit.
  assert.equal(f.words[(CAP - 24) >> 2], TYPE_PAD);
  assert.equal(f.words[((CAP - 24) >> 2) + 1], 24 - 8, 'PAD length: to the end of the ring');
  assert.equal(f.words[0], 0, 'the record after the PAD is not visible yet');
  f.bytes.set(messageBytes(7, 100), at);
  f.producer.commit(TYPE_DATA, 100);
  assert.deepEqual(drain(f.consumer), [messageBytes(7, 100)]);
  assert.equal(f.ctrl[CTRL_HEAD], CAP + recordBytes(100));
});

test('a record that ends exactly at the end of the ring needs no PAD', () => {
  const f = makeRing(CAP);
  advanceTo(f, CAP - 1024);
  f.words[0] = 0x55; // stale word at offset 0: must be zeroed as "the next type word"
  assert.equal(f.producer.reserve(1016), CAP - 1024 + 8);
  f.producer.commit(TYPE_DATA, 1016);
  assert.equal(f.words[(CAP - 1024) >> 2], TYPE_DATA);
  assert.equal(f.words[0], 0);
  assert.equal(f.producer.reserve(0), 8);
});

test('a PAD needs room too: when PAD + record do not fit, reserve fails and writes nothing', () => {
  const f = makeRing(CAP);
  advanceTo(f, 1024);
  put(f, TYPE_DATA, new Uint8Array(1016));
  put(f, TYPE_DATA, new Uint8Array(1016));
  put(f, TYPE_DATA, new Uint8Array(1000)); // tail at CAP - 16, head at 1024: 3056 bytes used
  const before = f.bytes.slice();
  // A 1024-byte record needs a 16-byte PAD first: 3056 + 16 + 1024 + 8 > 4096 (without the PAD it would fit).
  assert.equal(f.producer.reserve(1009), -1);
  assert.deepEqual(f.bytes, before, 'no PAD written');
  assert.equal(f.producer.used, 3056);
  // A 1016-byte record with its PAD fits exactly: 3056 + 16 + 1016 + 8 slack = 4096.
  assert.equal(f.producer.reserve(1008), 8);
  assert.equal(f.words[(CAP - 16) >> 2], TYPE_PAD);
  assert.equal(f.words[((CAP - 16) >> 2) + 1], 8);
});

test('the tail and head run modulo 2^32: records keep flowing past 2^31 and 2^32 bytes', () => {
  const cap = 1 << 20;
  const f = makeRing(cap);
  const max = f.producer.maxPayload;
  let total = 0;
  let id = 0;
  let pads = 0;
  const stamp = new Uint8Array(4);
  while (total < 2 ** 32 + 4 * cap) {
    const len = max - ((id * 7919) % 4096); // varying sizes, so the PAD lands in different places
    const at = f.producer.reserve(len);
    assert.ok(at >= 0, `room at ${total}`);
    if (at === 8 && total % cap !== 0) { pads++; total += cap - (total % cap); }
    new DataView(stamp.buffer).setUint32(0, id, true);
    f.bytes.set(stamp, at);
    f.bytes[at + len - 1] = id & 0xff;
    f.producer.commit(TYPE_DATA, len);
    total += recordBytes(len);
    let seen = 0;
    const n = f.consumer.poll((b, o, l) => {
      seen++;
      assert.equal(l, len);
      assert.equal(new DataView(b.buffer, b.byteOffset).getUint32(o, true), id);
      assert.equal(b[o + l - 1], id & 0xff);
    }, Infinity);
    assert.equal(n, 1);
    assert.equal(seen, 1);
    assert.equal(f.ctrl[CTRL_HEAD], total | 0, 'head: bytes consumed, modulo 2^32');
    id++;
  }
  assert.ok(pads > 1000);
  assert.equal(f.producer.fault, null);
  assert.equal(f.consumer.fault, null);
  assert.equal(f.producer.freeBytes(), cap - RING_SLACK_BYTES);
});

test('parkForSpace: false when full (flag set), the consumer rings once per park and clears the flag', () => {
  const f = makeRing(CAP);
  fillWithEmpty(f);
  assert.equal(f.producer.parkForSpace(0), false);
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 1);
  assert.equal(f.wakes.producer, 0);
  assert.equal(drain(f.consumer, 1).length, 1);
  assert.equal(f.wakes.producer, 1, 'the poll that freed space rang the producer');
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 0);
  assert.equal(drain(f.consumer, 1).length, 1);
  assert.equal(f.wakes.producer, 1, 'not again: the producer is no longer parked');
  // Park again (full again), then one poll of many messages: still one ring.
  fillWithEmpty(f);
  assert.equal(f.producer.parkForSpace(0), false);
  assert.equal(drain(f.consumer).length, 511);
  assert.equal(f.wakes.producer, 2);
  assert.equal(drain(f.consumer).length, 0);
  assert.equal(f.wakes.producer, 2);
});

test('parkForSpace: true (and the flag cleared again) when the space is there; the size asked for counts', () => {
  const f = makeRing(CAP);
  assert.equal(f.producer.parkForSpace(f.producer.maxPayload), true);
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 0);
  for (let i = 0; i < 3; i++) put(f, TYPE_DATA, new Uint8Array(1016)); // 3072 used, 1024 free
  assert.equal(f.producer.parkForSpace(1000), true, 'a 1008-byte record fits (1008 + 8 slack ≤ 1024)');
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 0);
  assert.equal(f.producer.parkForSpace(1016), false, 'a 1024-byte record does not');
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 1);
  drain(f.consumer, 1);
  assert.equal(f.wakes.producer, 1);
  assert.equal(f.producer.parkForSpace(1016), true);
  assert.equal(f.wakes.producer, 1);
});

test('commit wakes a parked consumer exactly once, and never one that is not parked', () => {
  const f = makeRing(CAP);
  put(f, TYPE_DATA, messageBytes(0, 10));
  assert.equal(f.wakes.consumer, 0, 'not parked: no doorbell');
  assert.equal(f.consumer.park(), true, 'data waiting: park refuses');
  assert.equal(f.ctrl[CTRL_CONSUMER_WAITING], 0);
  drain(f.consumer);
  assert.equal(f.consumer.park(), false);
  assert.equal(f.ctrl[CTRL_CONSUMER_WAITING], 1);
  put(f, TYPE_DATA, messageBytes(1, 10));
  assert.equal(f.wakes.consumer, 1);
  assert.equal(f.ctrl[CTRL_CONSUMER_WAITING], 0, 'the producer cleared the flag');
  put(f, TYPE_DATA, messageBytes(2, 10));
  assert.equal(f.wakes.consumer, 1, 'once per park');
  assert.deepEqual(drain(f.consumer), [messageBytes(1, 10), messageBytes(2, 10)]);
  // unpark() withdraws the park: no doorbell.
  assert.equal(f.consumer.park(), false);
  f.consumer.unpark();
  assert.equal(f.ctrl[CTRL_CONSUMER_WAITING], 0);
  put(f, TYPE_DATA, messageBytes(3, 10));
  assert.equal(f.wakes.consumer, 1);
});

test('cork: the consumer sees nothing of a batch until uncork, then all of it in order, with one wake', () => {
  const f = makeRing(CAP);
  assert.equal(f.consumer.park(), false);
  f.producer.cork();
  for (let i = 0; i < 5; i++) put(f, TYPE_DATA, messageBytes(i, 100 + i));
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.poll(() => assert.fail('corked'), Infinity), 0);
  assert.equal(f.wakes.consumer, 0);
  f.producer.uncork();
  assert.equal(f.wakes.consumer, 1);
  assert.deepEqual(drain(f.consumer), [0, 1, 2, 3, 4].map((i) => messageBytes(i, 100 + i)));
  // A second batch, not parked: no wake at all.
  f.producer.cork();
  put(f, TYPE_DATA, messageBytes(9, 9));
  f.producer.uncork();
  assert.equal(f.wakes.consumer, 1);
  assert.deepEqual(drain(f.consumer), [messageBytes(9, 9)]);
});

test('nested corks: only the outermost uncork publishes; extra uncorks are ignored', () => {
  const f = makeRing(CAP);
  f.producer.cork();
  put(f, TYPE_DATA, messageBytes(0, 8));
  f.producer.cork();
  put(f, TYPE_DATA, messageBytes(1, 8));
  f.producer.uncork();
  put(f, TYPE_DATA, messageBytes(2, 8));
  assert.equal(f.consumer.poll(() => assert.fail('still corked'), Infinity), 0);
  f.producer.uncork();
  assert.deepEqual(drain(f.consumer), [0, 1, 2].map((i) => messageBytes(i, 8)));
  f.producer.uncork(); // unbalanced: no effect
  put(f, TYPE_DATA, messageBytes(3, 8));
  assert.deepEqual(drain(f.consumer), [messageBytes(3, 8)], 'not corked: visible at once');
});

test('cork across the wrap: a batch starting with a PAD stays invisible until uncork', () => {
  const f = makeRing(CAP);
  advanceTo(f, CAP - 16);
  f.consumer.park();
  f.producer.cork();
  put(f, TYPE_DATA, messageBytes(0, 500)); // PAD at CAP-16, record at 0
  put(f, TYPE_DATA, messageBytes(1, 500));
  assert.equal(f.words[(CAP - 16) >> 2], 0, 'the PAD is the held-back type word');
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.poll(() => assert.fail('corked'), Infinity), 0);
  f.producer.uncork();
  assert.equal(f.wakes.consumer, 1);
  assert.deepEqual(drain(f.consumer), [messageBytes(0, 500), messageBytes(1, 500)]);
});

test('a corked batch that back-pressure cuts short publishes what was written', () => {
  const f = makeRing(CAP);
  f.producer.cork();
  let n = 0;
  while (f.producer.reserve(500) >= 0) put(f, TYPE_DATA, messageBytes(n++, 500));
  assert.equal(n, 7);
  assert.equal(drain(f.consumer).length, 0);
  f.producer.uncork();
  assert.deepEqual(drain(f.consumer), Array.from({ length: 7 }, (_, i) => messageBytes(i, 500)));
});

test('markClosed publishes a corked batch, then sets the closed flag; a parked consumer is not left waiting', () => {
  const f = makeRing(CAP);
  assert.equal(f.consumer.producerClosed(), false);
  f.producer.cork();
  f.producer.cork();
  put(f, TYPE_DATA, messageBytes(0, 3));
  f.producer.markClosed();
  assert.equal(f.ctrl[CTRL_PRODUCER_CLOSED], 1);
  assert.equal(f.consumer.producerClosed(), true);
  assert.deepEqual(drain(f.consumer), [messageBytes(0, 3)]);
  assert.equal(f.consumer.park(), true, 'closed: nothing to wait for');
  put(f, TYPE_DATA, messageBytes(1, 3));
  assert.deepEqual(drain(f.consumer), [messageBytes(1, 3)], 'no longer corked after markClosed');
});

test('fragmentCount', () => {
  const f = makeRing(CAP);
  const max = f.producer.maxPayload;
  assert.equal(f.producer.fragmentCount(0), 1);
  assert.equal(f.producer.fragmentCount(max), 1);
  assert.equal(f.producer.fragmentCount(max + 1), 2);
  assert.equal(f.producer.fragmentCount(2 * max - 8), 2);
  assert.equal(f.producer.fragmentCount(2 * max - 7), 3);
  assert.equal(f.producer.fragmentCount(3 * max + 5), 4);
});

test('hostile consumer: a head beyond the tail faults the producer; every reserve then fails', () => {
  const f = makeRing(CAP);
  for (let i = 0; i < 3; i++) put(f, TYPE_DATA, new Uint8Array(1016)); // tail 3072
  f.ctrl[CTRL_HEAD] = 8192;
  assert.equal(f.producer.fault, null, 'not looked at yet');
  assert.equal(f.producer.reserve(1016), -1, 'the producer re-reads the head when its cache says full');
  assert.match(f.producer.fault ?? '', /^consumer head 8192 is outside \[tail − capacity, tail\] \(tail 3072\)$/);
  assert.equal(f.producer.reserve(0), -1, 'even a record the stale cached head has room for');
  assert.equal(f.producer.reserve(1016), -1);
  assert.equal(f.producer.freeBytes(), 0);
  assert.equal(f.producer.parkForSpace(0), false);
  f.ctrl[CTRL_HEAD] = 3072; // putting a sane head back does not undo the fault
  assert.equal(f.producer.reserve(0), -1);
  assert.equal(f.producer.freeBytes(), 0);
  assert.notEqual(f.producer.fault, null);
});

test('hostile consumer: a head behind the tail by more than the capacity, or misaligned, faults the producer', () => {
  for (const head of [2016 + 8, 0x7ffffff8, 2016 - CAP - 8, 4, 2012, 1]) {
    const f = makeRing(CAP);
    put(f, TYPE_DATA, new Uint8Array(1000));
    put(f, TYPE_DATA, new Uint8Array(1000)); // tail 2016
    f.ctrl[CTRL_HEAD] = head;
    assert.equal(f.producer.freeBytes(), 0, `head ${head}`);
    assert.equal(f.producer.fault, `consumer head ${head >>> 0} is outside [tail − capacity, tail] (tail 2016)`);
    assert.equal(f.producer.reserve(0), -1);
  }
});

test('a head anywhere in [tail − capacity, tail] at 8-byte steps is accepted', () => {
  const f = makeRing(CAP);
  put(f, TYPE_DATA, new Uint8Array(1000)); // tail 1008
  f.ctrl[CTRL_HEAD] = 1008;
  assert.equal(f.producer.freeBytes(), CAP - 8);
  f.ctrl[CTRL_HEAD] = 1008 - CAP; // as far back as it can be: full
  assert.equal(f.producer.freeBytes(), 0);
  assert.equal(f.producer.reserve(0), -1);
  assert.equal(f.producer.fault, null);
});

test('writing ahead: after a commit the whole free lines up to WRITE_AHEAD_BYTES past the tail are written', () => {
  const f = makeRing(CAP);
  f.bytes.fill(0xff);
  f.producer.offer(TYPE_DATA, messageBytes(1, 40), 0, 40); // record [0, 48); next type word at 48, in line 0
  // Line 0 holds the record and the next type word: left alone past them (the consumer may poll that word).
  assert.equal(f.words[52 >> 2], -1, 'the rest of the next type word\'s line is not touched');
  // Lines 64 … up to (48 + WRITE_AHEAD_BYTES) rounded down to a line: one zero word at the start of each.
  const end = (48 + WRITE_AHEAD_BYTES) & ~(LINE_BYTES - 1);
  for (let p = LINE_BYTES; p < end; p += LINE_BYTES) assert.equal(f.words[p >> 2], 0, `line at ${p}`);
  assert.equal(f.words[end >> 2], -1, 'nothing past the write-ahead distance');
  assert.deepEqual(drain(f.consumer), [messageBytes(1, 40)]);
});

test('writing ahead is on by default (WRITE_AHEAD_BYTES, a quarter of a smaller ring); 0 turns it off', () => {
  assert.equal(makeRing(CAP).producer.writeAheadBytes, Math.min(WRITE_AHEAD_BYTES, CAP / 4));
  assert.equal(makeRing(1024).producer.writeAheadBytes, 256);
  assert.equal(makeRing(1 << 20).producer.writeAheadBytes, WRITE_AHEAD_BYTES);
  {
    const f = makeRing(CAP);
    f.producer.writeAheadBytes = 0;
    f.bytes.fill(0xff);
    f.producer.offer(TYPE_DATA, messageBytes(1, 40), 0, 40);
    assert.equal(f.words[48 >> 2], 0, 'the next type word is still zeroed: that is the protocol');
    for (let p = LINE_BYTES; p < CAP; p += LINE_BYTES) assert.equal(f.words[p >> 2], -1, `line at ${p}`);
  }
});

test('writing ahead never touches what the consumer has not read (many laps, the head anywhere in a line)', () => {
  const f = makeRing(CAP);
  const prng = new Prng(7);
  let nextId = 0;
  const sent: Uint8Array[] = [];
  let read = 0;
  // A consumer that lags: the ring stays nearly full, the head sits anywhere in a line, and the producer's tail
  // comes round to just behind it, over and over (many laps, every record size from 0 to 200 bytes).
  for (let round = 0; round < 3000; round++) {
    for (;;) {
      const len = prng.int(0, 200);
      const m = messageBytes(nextId, len);
      if (!f.producer.offer(TYPE_DATA, m, 0, len)) break;
      sent.push(m);
      nextId++;
    }
    // The unread bytes between the head and the tail are all still intact: read a few records and compare.
    const got = drain(f.consumer, prng.int(1, 6));
    for (const g of got) assert.deepEqual(g, sent[read++], `message ${read - 1}`);
  }
  for (const g of drain(f.consumer)) assert.deepEqual(g, sent[read++]);
  assert.equal(read, nextId);
});

test('writing ahead never touches an open reservation: cork/uncork while a claim is open, then commit', () => {
  for (const order of ['claim-cork-uncork', 'cork-claim-uncork', 'cork-send-claim-uncork'] as const) {
    const f = makeRing(CAP);
    const payload = messageBytes(9, 300);
    if (order !== 'claim-cork-uncork') f.producer.cork();
    if (order === 'cork-send-claim-uncork') f.producer.offer(TYPE_DATA, messageBytes(8, 20), 0, 20);
    const at = f.producer.reserve(300);
    assert.ok(at >= 0);
    f.bytes.set(payload, at);
    if (order === 'claim-cork-uncork') f.producer.cork();
    f.producer.uncork(); // commits what the batch holds (nothing of the claim)
    f.producer.commit(TYPE_DATA, 300);
    const got = drain(f.consumer);
    assert.deepEqual(got[got.length - 1], payload, order);
  }
});

test('an aborted reservation lets writing ahead resume; so does an offer in its place', () => {
  const f = makeRing(CAP);
  f.bytes.fill(0xff);
  assert.ok(f.producer.reserve(100) >= 0);
  f.producer.abort();
  f.producer.offer(TYPE_DATA, messageBytes(1, 40), 0, 40);
  assert.equal(f.words[LINE_BYTES >> 2], 0, 'written ahead after the abort');
  const g = makeRing(CAP);
  g.bytes.fill(0xff);
  assert.ok(g.producer.reserve(100) >= 0);
  g.producer.offer(TYPE_DATA, messageBytes(1, 40), 0, 40); // the reservation is forgotten
  assert.equal(g.words[LINE_BYTES >> 2], 0, 'written ahead after an offer took the reservation\'s place');
  assert.deepEqual(drain(g.consumer), [messageBytes(1, 40)]);
});

test('writing ahead across the int32 sign change of positions (head + capacity just below 2^31)', () => {
  const f = makeRing(CAP);
  const big = new Uint8Array(f.producer.maxPayload);
  const target = 2 ** 31 - CAP - 128; // head + capacity sits just below 2^31, tail + WRITE_AHEAD_BYTES just above
  while (((target - f.ctrl[CTRL_HEAD]!) >>> 0) !== 0) {
    const left = (target - f.ctrl[CTRL_HEAD]!) >>> 0;
    assert.ok(f.producer.offer(TYPE_DATA, big, 0, Math.min(left, big.length + 8) - 8));
    f.consumer.poll(() => {}, Infinity);
  }
  const sent: Uint8Array[] = [];
  for (let id = 0; ; id++) {
    const m = messageBytes(id, 56);
    if (!f.producer.offer(TYPE_DATA, m, 0, 56)) break;
    sent.push(m);
  }
  assert.ok(sent.length > 50);
  assert.deepEqual(drain(f.consumer), sent);
});

test('writeAheadBytes takes an integer from 0 to a quarter of the ring', () => {
  const f = makeRing(CAP);
  f.producer.writeAheadBytes = 0;
  f.producer.writeAheadBytes = CAP / 4;
  for (const bad of [-1, CAP / 4 + 1, 1.5, NaN, Infinity]) {
    assert.throws(() => { f.producer.writeAheadBytes = bad; }, RangeError, String(bad));
  }
  assert.equal(f.producer.writeAheadBytes, CAP / 4);
});
