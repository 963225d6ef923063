/**
 * A hostile peer (test/fixtures/hostile.ts) writes garbage into the shared region: record headers with a
 * negative length, a length past the ring end, an unknown type, fragment protocol violations, and a consumer
 * head outside the ring. The server-side Channel must deliver what was valid, then emit 'close' with
 * ERR_KBYPASS_RING_CORRUPT (or MESSAGE_TOO_LARGE), drop the peer, and go on serving others: no crash, no hang.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { connect, type Channel, type Server } from '../../src/index';
import { killPeers, spawnPeer, type Peer } from '../helpers/peer';
import { closed, collect, next, startServer, until, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
after(killPeers);

async function hostile(kind: string, server: Server): Promise<{ ch: Channel; child: Peer }> {
  const accepted = next<Channel>(server, 'channel');
  const child = spawnPeer('hostile', [server.address(), kind]);
  const ch = await accepted;
  assert.equal(ch.peer.pid, child.pid);
  return { ch, child };
}

/** The server must have closed its end of the socket: the hostile child sees it go. */
async function assertDropped(child: Peer): Promise<void> {
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    child.send({ type: 'check' });
    alive = (await child.next<{ alive: boolean }>('alive')).alive;
    if (alive) await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(alive, false, 'the server closed the socket to the hostile peer');
}

/** The server still works for an honest client. */
async function assertServerHealthy(server: Server): Promise<void> {
  const accepted = next<Channel>(server, 'channel');
  const c = await connect(server.address());
  const s = await accepted;
  const got = collect(s, 1);
  c.send('still serving');
  assert.equal((await got)[0]!.toString(), 'still serving');
  c.destroy();
  s.destroy();
}

const cases: { kind: string; code: string; reason: RegExp }[] = [
  { kind: 'negative-length', code: 'ERR_KBYPASS_RING_CORRUPT', reason: /claims -8 bytes/ },
  { kind: 'past-end', code: 'ERR_KBYPASS_RING_CORRUPT', reason: /remain before the end of the ring/ },
  { kind: 'unknown-type', code: 'ERR_KBYPASS_RING_CORRUPT', reason: /unknown record type 77/ },
  { kind: 'orphan-fragment', code: 'ERR_KBYPASS_RING_CORRUPT', reason: /continuation fragment/ },
  { kind: 'huge-fragment', code: 'ERR_KBYPASS_MESSAGE_TOO_LARGE', reason: /1073741824-byte message/ },
];

describe('corrupt headers from a hostile peer', () => {
  for (const { kind, code, reason } of cases) {
    it(`${kind}: the valid record arrives, then 'close' with ${code}`, opts, async () => {
      const server = await startServer({ maxMessageSize: 1 << 20 });
      try {
        const { ch, child } = await hostile(kind, server);
        const got: string[] = [];
        ch.on('message', (m) => { got.push(Buffer.from(m).toString()); });
        const error = await closed(ch);
        assert.equal((error as { code?: string } | undefined)?.code, code, String(error));
        assert.match(error!.message, reason);
        assert.deepEqual(got, ['ok'], 'the good record before the garbage was delivered, nothing after');
        assert.equal(ch.state, 'closed');
        await child.next('done');
        await assertDropped(child);
        await assertServerHealthy(server);
      } finally {
        await server.close();
      }
    });
  }

  it("poll() mode: returns the good message, then 0, and 'close' follows with ERR_KBYPASS_RING_CORRUPT", opts, async () => {
    const server = await startServer();
    try {
      const { ch, child } = await hostile('negative-length', server);
      const gone = closed(ch);
      await child.next('done');
      const got: string[] = [];
      const h = (b: Uint8Array, o: number, l: number) => { got.push(Buffer.from(b.subarray(o, o + l)).toString()); };
      await until(() => { ch.poll(h); return got.length > 0; }, 5000, 'the good message');
      assert.equal(ch.poll(h), 0);
      assert.equal(((await gone) as { code?: string } | undefined)?.code, 'ERR_KBYPASS_RING_CORRUPT');
      assert.equal(ch.poll(h), 0, 'a faulted ring yields nothing more');
      assert.deepEqual(got, ['ok']);
      await assertDropped(child);
    } finally {
      await server.close();
    }
  });

  it("a consumer head outside the ring: sending fails with 'close' ERR_KBYPASS_RING_CORRUPT", opts, async () => {
    const server = await startServer();
    try {
      const { ch, child } = await hostile('bad-head', server);
      await child.next('done');
      const gone = closed(ch);
      // The producer reads the consumer's head only when its cached copy says the ring is full.
      for (let i = 0; i < 100 && !ch.closed; i++) ch.send(new Uint8Array(500));
      assert.equal(ch.state, 'closed', 'filling the ring met the bad head');
      const error = await gone;
      assert.equal((error as { code?: string } | undefined)?.code, 'ERR_KBYPASS_RING_CORRUPT');
      assert.match(error!.message, /consumer head/);
      assert.equal(ch.pendingBytes, 0);
      await assertDropped(child);
      await assertServerHealthy(server);
    } finally {
      await server.close();
    }
  });
});
