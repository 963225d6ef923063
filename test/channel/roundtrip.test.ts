/**
 * Round trips in one process: both directions, strings and bytes, zero-length messages, byte-exact content;
 * async iteration over a server's channels and over a channel's messages, ending on orderly close.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Channel } from '../../src/index';
import { collect, pair, startServer, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };

/** Send a mix of strings and bytes from `from` and check `to` gets exactly those bytes, in order. */
async function exchange(from: Channel, to: Channel): Promise<void> {
  const random = randomBytes(1000);
  const big = randomBytes(4000);
  const sent: { data: Uint8Array | string; offset?: number; length?: number }[] = [
    { data: 'hello' },
    { data: 'héllo wörld ✓ 🚀' },          // multi-byte UTF-8
    { data: '' },                             // zero-length string
    { data: new Uint8Array(0) },              // zero-length bytes
    { data: random },                         // a Buffer
    { data: new Uint8Array([0, 255, 0, 1]) }, // a plain Uint8Array with zeros
    { data: big, offset: 100, length: 33 },   // a slice by offset/length
    { data: big.subarray(7, 70) },            // a view with a non-zero byteOffset
    { data: big, offset: big.length },        // zero bytes at the end
  ];
  const expected = sent.map(({ data, offset, length }) => {
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const off = offset ?? 0;
    return b.subarray(off, off + (length ?? b.length - off));
  });
  const got = collect(to, sent.length);
  for (const { data, offset, length } of sent) {
    assert.equal(from.send(data, offset, length), true, 'a small message goes straight into the ring');
  }
  const received = await got;
  assert.equal(received.length, expected.length);
  received.forEach((m, i) => assert.deepEqual(m, expected[i], `message ${i} differs`));
  assert.equal(Buffer.from(received[1]!).toString('utf8'), 'héllo wörld ✓ 🚀');
}

describe('round trip in one process', () => {
  it('client → server and server → client, byte-exact, including zero-length messages', opts, async () => {
    const p = await pair();
    try {
      assert.equal(p.cli.role, 'client');
      assert.equal(p.srv.role, 'server');
      assert.equal(p.cli.peer.pid, process.pid);
      assert.equal(p.srv.peer.uid, process.getuid!());
      await exchange(p.cli, p.srv);
      await exchange(p.srv, p.cli);
    } finally {
      await p.close();
    }
  });

  it('echo: what the server sends back is what the client sent, for 500 interleaved messages', opts, async () => {
    const p = await pair();
    try {
      p.srv.on('message', (m) => { p.srv.send(m); }); // send() copies: echoing the ring view itself is fine
      const sent = Array.from({ length: 500 }, (_, i) => randomBytes(i % 97));
      const got = collect(p.cli, sent.length);
      for (const m of sent) p.cli.send(m);
      const received = await got;
      received.forEach((m, i) => assert.deepEqual(m, sent[i], `echo ${i}`));
    } finally {
      await p.close();
    }
  });

  it('async iteration: server yields channels; channel yields messages and ends on orderly close', opts, async () => {
    const server = await startServer();
    const path = server.address();
    const accepted: string[][] = [];
    const serving = (async () => {
      for await (const ch of server) {
        const msgs: string[] = [];
        for await (const m of ch) {
          assert.ok(m instanceof Uint8Array);
          msgs.push(Buffer.from(m).toString());
        }
        assert.equal(ch.state, 'closed');
        accepted.push(msgs);
      }
      return 'server iteration ended';
    })();

    for (const who of ['first', 'second']) {
      const c = await connect(path);
      for (let i = 0; i < 50; i++) c.send(`${who} ${i}`);
      const errorOnClose = new Promise((resolve) => c.once('close', resolve));
      await c.close();
      assert.equal(await errorOnClose, undefined);
    }
    // Both clients' messages were iterated to the end, in order.
    while (accepted.length < 2) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(accepted[0], Array.from({ length: 50 }, (_, i) => `first ${i}`));
    assert.deepEqual(accepted[1], Array.from({ length: 50 }, (_, i) => `second ${i}`));

    await server.close();
    assert.equal(await serving, 'server iteration ended');
  });

  it('channel async iteration throws when the channel does not end in order', opts, async () => {
    const p = await pair();
    try {
      const iterating = (async () => {
        const got: string[] = [];
        for await (const m of p.srv) got.push(Buffer.from(m).toString());
        return got;
      })();
      p.cli.send('before');
      await new Promise((r) => setTimeout(r, 20));
      p.cli.destroy();
      await assert.rejects(iterating, (e: Error & { code?: string }) => e.code === 'ERR_KBYPASS_PEER_GONE');
    } finally {
      await p.close();
    }
  });
});
