import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  CTRL_HEAD, CTRL_PRODUCER_WAITING, RING_SLACK_BYTES, TYPE_DATA, TYPE_FRAG_FIRST, TYPE_FRAG_LAST, TYPE_FRAG_MIDDLE,
  TYPE_PAD, recordBytes,
} from './layout';
import type { ConsumerFault } from './consumer';
import { Prng, advanceTo, drain, inBounds, makeRing, messageBytes, put, putRecord, putU32, type RingFixture } from './ring-fixtures';

const CAP = 4096;

test('wrap and padding: 10 000 messages of random sizes over many laps arrive byte-exact and in order', () => {
  for (const seed of [1, 0xc0ffee, 20240601]) {
    const rng = new Prng(seed);
    const f = makeRing(CAP);
    const p = f.producer;
    const max = p.maxPayload;
    const N = 10_000;
    // The model: records written and not consumed yet, and the absolute tail and head.
    const queue: { bytes: number; id: number }[] = []; // id -1: PAD
    let tail = 0;
    let head = 0;
    let nextId = 0;
    let expectId = 0;
    let pads = 0;
    let refusals = 0;
    const lengths: number[] = [];
    const onMessage = inBounds((b, o, l) => {
      assert.equal(l, lengths[expectId], `length of message ${expectId}`);
      const want = messageBytes(expectId, l);
      for (let i = 0; i < l; i++) if (b[o + i] !== want[i]) assert.fail(`message ${expectId} differs at byte ${i}`);
      expectId++;
    });
    while (expectId < N) {
      // Phases where the producer runs ahead (fills the ring) and where the consumer keeps it nearly empty.
      const burst = rng.chance(0.5) ? rng.int(0, 2) : rng.int(1, 12);
      for (let k = 0; k < burst && nextId < N; k++) {
        const r = rng.u32() % 8;
        const len = r === 0 ? 0 : r === 1 ? max - rng.int(0, 16) : rng.int(0, max);
        const rec = recordBytes(len);
        const pos = tail % CAP;
        const toEnd = CAP - pos;
        const need = (toEnd < rec ? toEnd + rec : rec) + RING_SLACK_BYTES;
        const fits = tail - head + need <= CAP;
        const before = fits ? null : f.bytes.slice();
        const at = p.reserve(len);
        if (!fits) {
          assert.equal(at, -1, `full: ${tail - head} used, a ${rec}-byte record needs ${need}`);
          assert.deepEqual(f.bytes, before, 'a refused reserve writes nothing');
          refusals++;
          break;
        }
        assert.equal(at, (toEnd < rec ? 0 : pos) + 8, 'payload offset');
        if (toEnd < rec) { queue.push({ bytes: toEnd, id: -1 }); tail += toEnd; pads++; }
        f.bytes.set(messageBytes(nextId, len), at);
        p.commit(TYPE_DATA, len);
        lengths.push(len);
        queue.push({ bytes: rec, id: nextId++ });
        tail += rec;
        assert.ok(tail - head <= CAP - RING_SLACK_BYTES);
      }
      const limit = rng.chance(0.2) ? Infinity : rng.int(1, 8);
      const n = f.consumer.poll(onMessage, limit);
      // The model's poll: records in order, PADs included, up to and including the limit-th message.
      let want = 0;
      while (queue.length !== 0 && want < limit) {
        const r = queue.shift()!;
        head += r.bytes;
        if (r.id >= 0) want++;
      }
      assert.equal(n, want);
      assert.equal(f.ctrl[CTRL_HEAD], head | 0, 'published head');
      assert.equal(f.consumer.fault, null);
    }
    assert.equal(expectId, N);
    assert.equal(f.consumer.poll(onMessage, Infinity), 0);
    assert.ok(tail / CAP > 500, `laps: ${tail / CAP}`);
    assert.ok(pads > 300, `PADs: ${pads}`);
    assert.ok(refusals > 300, `full rings: ${refusals}`);
  }
});

test('poll respects its limit; limit below 1 hands nothing over', () => {
  const f = makeRing(CAP);
  for (let i = 0; i < 10; i++) put(f, TYPE_DATA, messageBytes(i, 300));
  const got: Uint8Array[] = [];
  const h = inBounds((b, o, l) => { got.push(b.slice(o, o + l)); });
  assert.equal(f.consumer.poll(h, 0), 0);
  assert.equal(f.consumer.poll(h, -1), 0);
  assert.equal(got.length, 0);
  assert.equal(f.ctrl[CTRL_HEAD], 0, 'nothing consumed');
  assert.equal(f.consumer.poll(h, 3), 3);
  assert.equal(f.ctrl[CTRL_HEAD], 3 * recordBytes(300), 'the head stops right after the last message handed over');
  assert.equal(f.consumer.poll(h, 3), 3);
  assert.equal(f.consumer.poll(h, 3), 3);
  assert.equal(f.consumer.poll(h, 3), 1);
  assert.equal(f.consumer.poll(h, 3), 0);
  assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => messageBytes(i, 300)));
});

test('a PAD does not count toward the limit, and is left for the next poll after the limit-th message', () => {
  const f = makeRing(CAP);
  advanceTo(f, 3584);
  put(f, TYPE_DATA, messageBytes(0, 400)); // 3584 .. 3992
  put(f, TYPE_DATA, messageBytes(1, 200)); // PAD 3992 .. 4096, then 0 .. 208
  assert.deepEqual(drain(f.consumer, 1), [messageBytes(0, 400)]);
  assert.equal(f.ctrl[CTRL_HEAD], 3992);
  assert.deepEqual(drain(f.consumer, 1), [messageBytes(1, 200)]);
  assert.equal(f.ctrl[CTRL_HEAD], 4096 + 208);
  // A poll that finds only a PAD consumes it and hands nothing over.
  advanceTo(f, 3992);
  put(f, TYPE_DATA, messageBytes(2, 200));
  f.words[0] = 0; // the record after the PAD is "not written yet"
  assert.equal(f.consumer.poll(() => assert.fail('no message'), Infinity), 0);
  assert.equal(f.ctrl[CTRL_HEAD] & (CAP - 1), 0);
});

test('poll from inside a handler returns 0 and consumes nothing; the outer poll carries on', () => {
  const f = makeRing(CAP);
  for (let i = 0; i < 4; i++) put(f, TYPE_DATA, messageBytes(i, 20));
  const seen: number[] = [];
  const inner = (): void => assert.fail('the inner poll must not hand anything over');
  const n = f.consumer.poll((b, o, l) => {
    seen.push(b[o]!);
    assert.equal(l, 20);
    assert.equal(f.consumer.poll(inner, Infinity), 0);
    assert.equal(f.consumer.poll(inner, 1), 0);
  }, Infinity);
  assert.equal(n, 4);
  assert.deepEqual(seen, [0, 1, 2, 3].map((i) => messageBytes(i, 20)[0]));
  assert.equal(f.ctrl[CTRL_HEAD], 4 * recordBytes(20));
});

test('a handler that throws: its record is consumed, the exception propagates, the next poll goes on', () => {
  const f = makeRing(CAP);
  for (let i = 0; i < 3; i++) put(f, TYPE_DATA, messageBytes(i, 40 + i));
  assert.equal(f.producer.parkForSpace(CAP), false); // so we can see that the head is published and rung
  const boom = new Error('boom');
  let calls = 0;
  assert.throws(() => f.consumer.poll(() => { calls++; throw boom; }, Infinity), (e) => e === boom);
  assert.equal(calls, 1, 'the batch ends at the throw');
  assert.equal(f.ctrl[CTRL_HEAD], recordBytes(40), 'the record that threw counts as consumed');
  assert.equal(f.wakes.producer, 1, 'and the producer is told');
  assert.equal(f.ctrl[CTRL_PRODUCER_WAITING], 0);
  assert.equal(f.consumer.fault, null);
  assert.deepEqual(drain(f.consumer), [messageBytes(1, 41), messageBytes(2, 42)]);
  // A throwing handler does not leave the consumer thinking it is still inside a poll.
  put(f, TYPE_DATA, messageBytes(3, 3));
  assert.deepEqual(drain(f.consumer), [messageBytes(3, 3)]);
});

test('hasData / park / unpark follow the ring', () => {
  const f = makeRing(CAP);
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.park(), false);
  f.consumer.unpark();
  put(f, TYPE_DATA, new Uint8Array(0));
  assert.equal(f.consumer.hasData(), true);
  assert.equal(f.wakes.consumer, 0, 'unparked: not rung');
  assert.equal(f.consumer.park(), true);
  drain(f.consumer);
  assert.equal(f.consumer.hasData(), false);
});

// ---- corrupt / hostile producers ----------------------------------------------------------------------------

/**
 * Poll a ring a hostile peer has written until it stops: checks the fault, that poll then returns 0 forever,
 * never throws, and that no handler call ever got a range outside its buffer. Returns the messages handed over.
 */
function expectFault(f: RingFixture, code: ConsumerFault['code'], reason: RegExp, limit = Infinity): Uint8Array[] {
  const got: Uint8Array[] = [];
  const h = inBounds((b, o, l) => { got.push(b.slice(o, o + l)); });
  for (let i = 0; i < 4 && f.consumer.fault === null; i++) f.consumer.poll(h, limit);
  const fault = f.consumer.fault;
  assert.ok(fault !== null, 'the consumer stopped');
  assert.equal(fault.code, code);
  assert.match(fault.reason, reason);
  const n = got.length;
  assert.equal(f.consumer.poll(h, Infinity), 0);
  assert.equal(f.consumer.poll(h, 1), 0);
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.park(), true, 'a stopped consumer does not wait');
  assert.equal(got.length, n);
  return got;
}

const CORRUPT = 'ERR_KBYPASS_RING_CORRUPT';
const TOO_LARGE = 'ERR_KBYPASS_MESSAGE_TOO_LARGE';

test('hostile: a negative record length', () => {
  for (const len of [-1, -8, -0x80000000]) {
    const f = makeRing(CAP);
    putRecord(f, 0, TYPE_DATA, len);
    expectFault(f, CORRUPT, new RegExp(`record at 0 claims ${len} bytes`));
    assert.equal(f.ctrl[CTRL_HEAD], 0, 'not consumed');
  }
});

test('hostile: a record running past the end of the ring', () => {
  // From offset 0, one byte too many; from the last slot; and lengths whose rounding overflows 32 bits.
  const cases: [number, number][] = [[0, CAP - 7], [CAP - 8, 1], [CAP - 16, 9], [0, 0x7fffffff],
    [CAP - 8, 0x7ffffff9], [CAP - 8, 0x7ffffff1], [2048, 0x7ffffff8]];
  for (const type of [TYPE_DATA, TYPE_PAD, TYPE_FRAG_FIRST]) {
    for (const [pos, len] of cases) {
      // A consumer that accepts messages as large as the channel allows (2^31 − 1).
      const f = makeRing(CAP, 0x7fffffff);
      advanceTo(f, pos);
      putRecord(f, pos, type, len);
      putU32(f, (pos + 8) & (CAP - 1), len); // a FRAG_FIRST's total, were it read
      const got = expectFault(f, CORRUPT, new RegExp(`record at ${pos} claims ${len} bytes; ${CAP - pos} remain`));
      assert.equal(got.length, 0, `type ${type} at ${pos} length ${len}`);
    }
  }
});

test('hostile: a PAD that does not end at the end of the ring', () => {
  const f = makeRing(CAP);
  putRecord(f, 0, TYPE_PAD, 16);
  expectFault(f, CORRUPT, /padding record at 0 does not end at the end of the ring/);
  const g = makeRing(CAP);
  put(g, TYPE_DATA, messageBytes(0, 100)); // a good message first: it is delivered
  putRecord(g, 112, TYPE_PAD, CAP - 112 - 16);
  assert.deepEqual(expectFault(g, CORRUPT, /padding record at 112/), [messageBytes(0, 100)]);
});

test('hostile: a PAD covering the whole ring (the consumer would go round forever) stops the consumer', () => {
  const f = makeRing(CAP);
  putRecord(f, 0, TYPE_PAD, CAP - 8);
  expectFault(f, CORRUPT, /record at 0 runs past the 4088 bytes a producer can be ahead of the head/);
});

test('hostile: records that go round the ring without a zero type word are each handed over once, then nothing', () => {
  // Whole messages all the way round, and no zero type word anywhere: a consumer that did not clear what it
  // consumed would come back to the first record and deliver them again, lap after lap. (A fixed number of
  // polls, each at most one lap: a regression fails here instead of hanging.)
  const f = makeRing(CAP);
  for (let pos = 0; pos < CAP; pos += 16) { putRecord(f, pos, TYPE_DATA, 8); putU32(f, pos + 8, pos); }
  const got: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) counts.push(f.consumer.poll(inBounds((b, o) => { got.push(new DataView(b.buffer, b.byteOffset + o, 4).getUint32(0, true)); }), Infinity));
  assert.deepEqual(got, Array.from({ length: CAP / 16 }, (_, i) => i * 16), 'each once, in order');
  assert.deepEqual(counts, [CAP / 16 - 1, 1, 0, 0], 'one lap (less the slack) per poll, then the last, then nothing');
  assert.equal(f.consumer.hasData(), false);
  assert.equal(f.consumer.fault, null);
  assert.equal(f.ctrl[CTRL_HEAD], CAP, 'the head went once round');
  // A fragmented message that never ends: after its first fragment, empty middle fragments all the way round
  // (the first fragment's slot too, rewritten once consumed). The consumer takes each once and then waits for
  // the rest, which never comes: no message, no fault, no second lap.
  const g = makeRing(CAP);
  putRecord(g, 0, TYPE_FRAG_FIRST, 16);
  putU32(g, 8, 100);
  assert.equal(g.consumer.poll(() => assert.fail('incomplete'), Infinity), 0);
  assert.equal(g.ctrl[CTRL_HEAD], 24);
  for (let pos = 0; pos < CAP; pos += 8) putRecord(g, pos, TYPE_FRAG_MIDDLE, 0);
  for (let i = 0; i < 4; i++) assert.equal(g.consumer.poll(() => assert.fail('incomplete'), Infinity), 0);
  assert.equal(g.ctrl[CTRL_HEAD], CAP + 24, 'each middle fragment consumed once');
  assert.equal(g.consumer.hasData(), false);
  assert.equal(g.consumer.fault, null);
  // Written past the head the consumer published, a record is still refused.
  const h = makeRing(CAP);
  putRecord(h, 0, TYPE_DATA, CAP - 8);
  assert.deepEqual(expectFault(h, CORRUPT, /record at 0 runs past the 4088 bytes/), []);
});

test('a long batch publishes the head every eighth of the ring, rings a waiting producer, and takes what it refills', () => {
  const f = makeRing(CAP);
  const p = f.producer;
  const len = 248; // 256-byte records: two to an eighth of the ring
  let id = 0;
  while (p.hasRoomFor(len)) put(f, TYPE_DATA, messageBytes(id++, len));
  const filled = id;
  assert.equal(p.parkForSpace(len), false, 'the ring is full: the producer parks');
  const heads: number[] = [];
  let refilled = 0;
  let expect = 0;
  const n = f.consumer.poll(inBounds((b, o, l) => {
    assert.deepEqual(b.subarray(o, o + l), messageBytes(expect++, len));
    heads.push(f.ctrl[CTRL_HEAD]!);
    // The producer, woken, writes into whatever the consumer has handed back so far (a few times only).
    if (f.wakes.producer > 0 && refilled < 6 && p.hasRoomFor(len)) { put(f, TYPE_DATA, messageBytes(id++, len)); refilled++; }
  }), Infinity);
  assert.equal(f.consumer.fault, null);
  assert.equal(n, filled, 'one lap: the whole ring as it was');
  assert.ok(refilled > 0, 'the producer found room before the poll ended');
  assert.equal(f.wakes.producer, 1, 'the waiting producer was rung once, during the batch');
  // Seen from a handler, the head is where the last publish left it: every 512 bytes (two records), never ahead
  // of a record not yet handed over.
  heads.forEach((h, i) => assert.equal(h, Math.floor(i / 2) * 512, `head seen by handler ${i}`));
  assert.equal(f.ctrl[CTRL_HEAD], n * 256);
  const next = drain(f.consumer);
  assert.equal(next.length, refilled, 'what it wrote during the poll comes with the next one, in order');
  next.forEach((m, i) => assert.deepEqual(m, messageBytes(filled + i, len)));
});

test('a producer that refills as fast as the consumer publishes cannot keep one poll going past one lap', () => {
  const f = makeRing(CAP);
  const p = f.producer;
  const len = 248;
  let id = 0;
  while (p.hasRoomFor(len)) put(f, TYPE_DATA, messageBytes(id++, len));
  let inside = 0;
  let insideTrue = 0;
  const n = f.consumer.poll(() => {
    inside++;
    if (f.consumer.hasData()) insideTrue++;
    // Keep the ring full (for 200 records: a consumer without the bound then fails here instead of hanging).
    if (id < 200) while (p.hasRoomFor(len)) put(f, TYPE_DATA, messageBytes(id++, len));
  }, Infinity);
  assert.equal(n, Math.floor((CAP - RING_SLACK_BYTES) / 256), 'one lap of 256-byte records, less the slack');
  assert.equal(insideTrue, inside, 'hasData() is true inside a handler: the batch is not over');
  assert.equal(f.consumer.fault, null);
  assert.ok(f.consumer.hasData(), 'the rest waits for the next poll');
  assert.equal(f.consumer.poll(() => undefined, Infinity), id - n, 'and the next poll takes it');
});

test('hostile: unknown record types', () => {
  for (const type of [6, 7, -1, 0x7fffffff, -0x80000000]) {
    const f = makeRing(CAP);
    put(f, TYPE_DATA, messageBytes(0, 5));
    putRecord(f, 16, type, 0);
    assert.deepEqual(expectFault(f, CORRUPT, new RegExp(`unknown record type ${type} at 16`)), [messageBytes(0, 5)]);
  }
});

test('hostile: a continuation fragment with no message begun', () => {
  for (const type of [TYPE_FRAG_MIDDLE, TYPE_FRAG_LAST]) {
    const f = makeRing(CAP);
    putRecord(f, 0, type, 8);
    expectFault(f, CORRUPT, /a continuation fragment arrived with no message begun/);
  }
});

/** Write a FRAG_FIRST at `pos` announcing `total` bytes and carrying `part` of them; returns the next position. */
function fragFirst(f: RingFixture, pos: number, total: number, part: number): number {
  putRecord(f, pos, TYPE_FRAG_FIRST, part + 8);
  putU32(f, pos + 8, total);
  putU32(f, pos + 12, 0);
  return pos + recordBytes(part + 8);
}

test('hostile: a whole message in the middle of a fragmented one', () => {
  const f = makeRing(CAP);
  const pos = fragFirst(f, 0, 100, 40);
  putRecord(f, pos, TYPE_DATA, 10);
  assert.deepEqual(expectFault(f, CORRUPT, /a whole message arrived in the middle of a fragmented one/), []);
});

test('hostile: a new first fragment before the last message ended', () => {
  const f = makeRing(CAP);
  const pos = fragFirst(f, 0, 100, 40);
  fragFirst(f, pos, 50, 10);
  expectFault(f, CORRUPT, /a new fragmented message began before the last one ended/);
});

test('hostile: a first fragment shorter than its prefix, or longer than its message', () => {
  const f = makeRing(CAP);
  putRecord(f, 0, TYPE_FRAG_FIRST, 7);
  expectFault(f, CORRUPT, /first fragment shorter than its prefix/);
  const g = makeRing(CAP);
  fragFirst(g, 0, 30, 40);
  expectFault(g, CORRUPT, /first fragment \(40 bytes\) longer than its message \(30\)/);
});

test('hostile: a first fragment announcing more than maxMessage', () => {
  for (const total of [1001, 0x80000000, 0xffffffff]) {
    const f = makeRing(CAP, 1000);
    fragFirst(f, 0, total, 100);
    expectFault(f, TOO_LARGE, new RegExp(`peer sent a ${total}-byte message; this side accepts at most 1000`));
  }
});

test('hostile: a whole message larger than maxMessage', () => {
  const f = makeRing(CAP, 100);
  put(f, TYPE_DATA, messageBytes(0, 100));
  put(f, TYPE_DATA, messageBytes(1, 101));
  assert.deepEqual(expectFault(f, TOO_LARGE, /101-byte message; this side accepts at most 100/), [messageBytes(0, 100)]);
});

test('hostile: fragments exceeding the announced total', () => {
  for (const type of [TYPE_FRAG_MIDDLE, TYPE_FRAG_LAST]) {
    const f = makeRing(CAP);
    let pos = fragFirst(f, 0, 100, 40);
    putRecord(f, pos, TYPE_FRAG_MIDDLE, 50); pos += recordBytes(50);
    putRecord(f, pos, type, 11);
    assert.deepEqual(expectFault(f, CORRUPT, /fragments exceed their message length/), []);
  }
});

test('hostile: a last fragment that leaves the message short', () => {
  const f = makeRing(CAP);
  let pos = fragFirst(f, 0, 100, 40);
  putRecord(f, pos, TYPE_FRAG_LAST, 59); pos += recordBytes(59);
  putRecord(f, pos, TYPE_DATA, 0); // never reached
  assert.deepEqual(expectFault(f, CORRUPT, /last fragment leaves the message at 99 of 100 bytes/), []);
});

test('a hand-made fragmented message that follows the rules is delivered (the hostile cases are the only faults)', () => {
  const f = makeRing(CAP);
  const msg = messageBytes(5, 100);
  let pos = fragFirst(f, 0, 100, 40);
  f.bytes.set(msg.subarray(0, 40), 16);
  putRecord(f, pos, TYPE_FRAG_MIDDLE, 0); pos += 8;
  f.bytes.set(msg.subarray(40, 90), pos + 8);
  putRecord(f, pos, TYPE_FRAG_MIDDLE, 50); pos += recordBytes(50);
  f.bytes.set(msg.subarray(90), pos + 8);
  putRecord(f, pos, TYPE_FRAG_LAST, 10);
  assert.deepEqual(drain(f.consumer), [msg]);
  assert.equal(f.consumer.fault, null);
});

test('hostile: random garbage never makes poll throw, hang, or hand over a range outside its buffer', () => {
  const rng = new Prng(77);
  let faults = 0;
  for (let round = 0; round < 3000; round++) {
    const f = makeRing(CAP, rng.chance(0.5) ? 0x7fffffff : rng.int(0, 5000));
    // A mix of plausible and absurd headers, packed like real records, then random bytes in between.
    let pos = 0;
    while (pos < CAP) {
      const type = rng.chance(0.9) ? rng.int(1, 5) : rng.u32() | 0;
      const len = rng.chance(0.8) ? rng.int(0, 300) : rng.chance(0.5) ? rng.u32() | 0 : CAP - pos - 8 + rng.int(-16, 16);
      putRecord(f, pos, type, len);
      if (rng.chance(0.5)) putU32(f, (pos + 8) & (CAP - 1), rng.chance(0.5) ? rng.int(0, 2000) : rng.u32());
      pos += rng.chance(0.9) ? recordBytes(Math.max(0, Math.min(len, 300))) : 8 * rng.int(1, 64);
    }
    if (rng.chance(0.3)) f.words[(8 * rng.int(0, CAP / 8 - 1)) >> 2] = 0;
    const h = inBounds(() => {});
    for (let i = 0; i < 5; i++) f.consumer.poll(h, rng.chance(0.5) ? Infinity : rng.int(1, 20));
    if (f.consumer.fault !== null) {
      faults++;
      assert.ok(f.consumer.fault.reason.length > 0);
      assert.equal(f.consumer.poll(h, Infinity), 0);
    }
  }
  assert.ok(faults > 1000, `${faults} faults`);
});
