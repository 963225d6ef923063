/**
 * Fragmentation: messages larger than one record (ringSize / 4) up to several MiB are split and reassembled
 * intact, in order with small ones, both ways; sends over the peer's maxMessageSize are refused.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Channel } from '../../src/index';
import { collect, pair, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function roundTrip(from: Channel, to: Channel, sizes: number[]): Promise<void> {
  const sent = sizes.map((n) => randomBytes(n));
  const got = collect(to, sent.length * 2, 15_000);
  for (const [i, m] of sent.entries()) {
    from.send(m);
    from.send(`small ${i}`); // small messages between big ones keep their place
  }
  const received = await got;
  for (const [i, m] of sent.entries()) {
    const r = received[2 * i]!;
    assert.equal(r.length, m.length, `message ${i} length`);
    assert.equal(sha(r), sha(m), `message ${i} (${m.length} bytes) content`);
    assert.equal(received[2 * i + 1]!.toString(), `small ${i}`);
  }
}

describe('fragmentation', () => {
  const ring = 65536;
  const record = ring / 4 - 8; // largest payload of one record

  it('messages from one record to several MiB arrive intact, client → server and back', opts, async () => {
    const p = await pair({ ringSize: ring });
    try {
      assert.equal(p.cli.ringSize, ring);
      const sizes = [record, record + 1, record * 2, ring, ring * 3 + 5, (1 << 20) + 3, 5 * (1 << 20) + 7];
      await roundTrip(p.cli, p.srv, sizes);
      await roundTrip(p.srv, p.cli, sizes);
    } finally {
      await p.close();
    }
  });

  it('fragmented messages survive async iteration and polling', opts, async () => {
    const p = await pair({ ringSize: ring });
    try {
      const big = randomBytes(3 * (1 << 20));
      p.cli.send(big);
      p.cli.send(big.subarray(1, 100_001));
      // Polling: the handler gets the reassembled message whole.
      const polled: Buffer[] = [];
      while (polled.length < 2) {
        p.srv.poll((b, o, l) => { polled.push(Buffer.from(b.subarray(o, o + l))); });
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(sha(polled[0]!), sha(big));
      assert.equal(sha(polled[1]!), sha(big.subarray(1, 100_001)));
      // Async iteration over the other direction.
      p.srv.send(big);
      const it = p.cli[Symbol.asyncIterator]();
      const r = await it.next();
      assert.equal(sha(r.value as Uint8Array), sha(big));
      await it.return?.();
    } finally {
      await p.close();
    }
  });

  it("a message over the peer's maxMessageSize throws ERR_KBYPASS_MESSAGE_TOO_LARGE", opts, async () => {
    const p = await pair({ ringSize: ring, maxMessageSize: 100_000 }, { maxMessageSize: 20_000 });
    try {
      assert.equal(p.cli.maxMessageSize, 100_000, "the client sees the server's limit");
      assert.equal(p.srv.maxMessageSize, 20_000, "the server sees the client's limit");
      const tooLarge = (e: unknown) => (e as { code?: string }).code === 'ERR_KBYPASS_MESSAGE_TOO_LARGE';
      assert.throws(() => p.cli.send(new Uint8Array(100_001)), tooLarge);
      assert.throws(() => p.cli.trySend(new Uint8Array(100_001)), tooLarge);
      assert.throws(() => p.cli.send('x'.repeat(100_001)), tooLarge);
      assert.throws(() => p.srv.send(new Uint8Array(20_001)), tooLarge);
      assert.equal(p.cli.pendingBytes, 0, 'nothing of a refused message is queued');
      // Exactly the limit goes through, and the channel is still fine.
      const big = randomBytes(100_000);
      const got = collect(p.srv, 1);
      p.cli.send(big);
      assert.equal(sha((await got)[0]!), sha(big));
      const back = collect(p.cli, 1);
      p.srv.send(big.subarray(0, 20_000));
      assert.equal(sha((await back)[0]!), sha(big.subarray(0, 20_000)));
    } finally {
      await p.close();
    }
  });
});
