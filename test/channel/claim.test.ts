/**
 * Zero-copy sends: claim(len) → write into claim.view or claim.buffer at claim.offset → commit() / commit(n) /
 * abort(); the claim's rules (one at a time, within maxClaimSize, committed once).
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Claim } from '../../src/index';
import { collect, next, pair, sleep, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };

function code(c: string) {
  return (e: unknown) => (e as { code?: string }).code === c;
}

describe('claim / commit / abort', () => {
  it('commit() delivers what was written into claim.view', opts, async () => {
    const p = await pair();
    try {
      const got = collect(p.srv, 1);
      const c = p.cli.claim(11);
      assert.ok(c instanceof Claim);
      assert.equal(c.length, 11);
      assert.equal(c.open, true);
      assert.equal(c.view.length, 11);
      c.view.set(Buffer.from('hello claim'));
      c.commit();
      assert.equal(c.open, false);
      assert.deepEqual((await got)[0], Buffer.from('hello claim'));
    } finally {
      await p.close();
    }
  });

  it('cork() / uncork() while a claim is open leave its bytes alone (the ring writes ahead only past committed records)', opts, async () => {
    const p = await pair();
    try {
      const got = collect(p.srv, 2);
      const data = Buffer.alloc(300);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
      p.cli.cork();
      p.cli.send(Buffer.from('first'));
      const c = p.cli.claim(300)!;
      c.view.set(data);
      p.cli.uncork();
      c.commit();
      const [a, b] = await got;
      assert.deepEqual(a, Buffer.from('first'));
      assert.deepEqual(b, data);
    } finally {
      await p.close();
    }
  });

  it('claim.buffer at claim.offset is the same memory; commit(shorter) delivers the shorter message', opts, async () => {
    const p = await pair();
    try {
      const got = collect(p.srv, 1);
      const c = p.cli.claim(100)!;
      assert.ok(c.offset >= 0 && c.offset + c.length <= c.buffer.length);
      for (let i = 0; i < 100; i++) c.buffer[c.offset + i] = i;
      assert.equal(c.view[42], 42, 'view and buffer share memory');
      c.commit(10);
      assert.deepEqual([...(await got)[0]!], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await p.close();
    }
  });

  it('abort() delivers nothing; the next message is the first to arrive', opts, async () => {
    const p = await pair();
    try {
      const got = collect(p.srv, 1);
      const c = p.cli.claim(5)!;
      c.view.set(Buffer.from('wrong'));
      c.abort();
      assert.equal(c.open, false);
      await sleep(20);
      p.cli.send('right');
      assert.deepEqual((await got)[0], Buffer.from('right'));
      await sleep(20);
      assert.equal(p.srv.poll(() => assert.fail('nothing else may arrive')), 0);
    } finally {
      await p.close();
    }
  });

  it('a zero-length claim and one of exactly maxClaimSize both arrive', opts, async () => {
    const p = await pair({ ringSize: 65536 });
    try {
      assert.equal(p.cli.maxClaimSize, 65536 / 4 - 8);
      const got = collect(p.srv, 2);
      p.cli.claim(0)!.commit();
      const c = p.cli.claim(p.cli.maxClaimSize)!;
      c.view.fill(0x5a);
      c.commit();
      const [a, b] = await got;
      assert.equal(a!.length, 0);
      assert.equal(b!.length, p.cli.maxClaimSize);
      assert.ok(b!.every((x) => x === 0x5a));
    } finally {
      await p.close();
    }
  });

  it('send, trySend and claim throw ERR_KBYPASS_CLAIM_PENDING while a claim is open', opts, async () => {
    const p = await pair();
    try {
      const c = p.cli.claim(4)!;
      assert.throws(() => p.cli.send('x'), code('ERR_KBYPASS_CLAIM_PENDING'));
      assert.throws(() => p.cli.trySend(new Uint8Array(1)), code('ERR_KBYPASS_CLAIM_PENDING'));
      assert.throws(() => p.cli.claim(1), code('ERR_KBYPASS_CLAIM_PENDING'));
      c.view.set([1, 2, 3, 4]);
      c.commit();
      assert.equal(p.cli.send('after'), true, 'sending works again after commit');
      const got = await collect(p.srv, 2);
      assert.deepEqual([...got[0]!], [1, 2, 3, 4]);
      assert.deepEqual(got[1], Buffer.from('after'));
    } finally {
      await p.close();
    }
  });

  it('claim over maxClaimSize throws RangeError ERR_OUT_OF_RANGE (also bad lengths)', opts, async () => {
    const p = await pair({ ringSize: 65536 }, { maxMessageSize: 1000 });
    try {
      const over = (e: unknown) => e instanceof RangeError && code('ERR_OUT_OF_RANGE')(e);
      assert.throws(() => p.cli.claim(p.cli.maxClaimSize + 1), over);
      assert.throws(() => p.cli.claim(-1), over);
      assert.throws(() => p.cli.claim(1.5), over);
      assert.throws(() => p.cli.claim(NaN), over);
      // The server's claims are bounded by what the client accepts, not only by the record size.
      assert.equal(p.srv.maxClaimSize, 1000);
      assert.throws(() => p.srv.claim(1001), over);
      assert.ok(p.srv.claim(1000) instanceof Claim);
    } finally {
      await p.close();
    }
  });

  it('commit or abort twice throws ERR_KBYPASS_CLAIM_DONE; view after commit throws too', opts, async () => {
    const p = await pair();
    try {
      const c = p.cli.claim(3)!;
      c.commit();
      assert.throws(() => c.commit(), code('ERR_KBYPASS_CLAIM_DONE'));
      assert.throws(() => c.abort(), code('ERR_KBYPASS_CLAIM_DONE'));
      assert.throws(() => c.view, code('ERR_KBYPASS_CLAIM_DONE'));
      const d = p.cli.claim(3)!;
      d.abort();
      assert.throws(() => d.abort(), code('ERR_KBYPASS_CLAIM_DONE'));
      assert.throws(() => d.commit(), code('ERR_KBYPASS_CLAIM_DONE'));
      const e = p.cli.claim(3)!;
      assert.throws(() => e.commit(4), (x: unknown) => x instanceof RangeError && code('ERR_OUT_OF_RANGE')(x));
      assert.equal(e.open, true, 'a refused commit leaves the claim open');
      e.abort();
    } finally {
      await p.close();
    }
  });

  it("claim() returns null when the ring is full, and 'drain' says when to try again", opts, async () => {
    const p = await pair({ ringSize: 4096 });
    try {
      const m = new Uint8Array(500);
      while (p.cli.trySend(m));
      let drains = 0;
      p.cli.on('drain', () => { drains++; });
      assert.equal(p.cli.claim(500), null);
      await sleep(20);
      assert.equal(drains, 0, "no 'drain' before the receiver takes anything");
      const drained = next(p.cli, 'drain');
      p.srv.poll(() => {}, Infinity);
      await drained;
      const c = p.cli.claim(500);
      assert.ok(c instanceof Claim);
      c.abort();
    } finally {
      await p.close();
    }
  });
});
