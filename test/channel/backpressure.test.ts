/**
 * Back-pressure across processes: a child that reads nothing until told to. The sender's send() returns false
 * once the ring is full, the rest is queued (not dropped), 'drain' follows once the child reads, and every
 * message arrives in order. trySend() returns false without queueing. pause()/resume() hold back delivery.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Channel, Server } from '../../src/index';
import { killPeers, spawnPeer, type Peer } from '../helpers/peer';
import { next, pair, seqMessage, sleep, startServer, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
after(killPeers);

interface Done { type: string; count: number; errors: number; bytes: number; lastSeq: number }

/** A server with a 64 KiB ring and a slow-reader child connected to it. */
async function slowReader(): Promise<{ server: Server; ch: Channel; child: Peer }> {
  const server = await startServer({ ringSize: 65536 });
  const accepted = next<Channel>(server, 'channel');
  const child = spawnPeer('slow-reader', [server.address()]);
  await child.next('connected');
  const ch = await accepted;
  assert.equal(ch.peer.pid, child.pid);
  return { server, ch, child };
}

describe('back-pressure', () => {
  it("send() returns false when the ring is full, queues the rest, emits 'drain', loses nothing", opts, async () => {
    const { server, ch, child } = await slowReader();
    try {
      let drains = 0;
      ch.on('drain', () => { drains++; });
      const size = 1000;
      let seq = 0;
      while (ch.send(seqMessage(seq, size))) {
        seq++;
        assert.ok(seq < 1000, 'a 64 KiB ring cannot take 1000 messages of 1000 bytes');
      }
      seq++; // the message that returned false is queued, not dropped
      const inRing = seq - 1;
      assert.ok(inRing >= 50 && inRing <= 65, `about 64 KiB went into the ring (${inRing} messages)`);
      assert.equal(ch.writable, false);
      // Everything sent now is queued behind it.
      for (let i = 0; i < 300; i++) assert.equal(ch.send(seqMessage(seq++, size)), false, 'queued while full');
      assert.ok(ch.pendingBytes >= 300 * size, `pendingBytes ${ch.pendingBytes}`);
      await sleep(50);
      assert.equal(drains, 0, "no 'drain' while the child reads nothing");
      assert.ok(ch.pendingBytes >= 300 * size, 'still queued');

      const drained = next(ch, 'drain', 10_000);
      child.send({ type: 'go' });
      await drained;
      assert.equal(ch.pendingBytes, 0);
      assert.equal(ch.writable, true);
      assert.equal(drains, 1);
      ch.send('END');
      const done = await child.next<Done>('done');
      assert.equal(done.errors, 0, 'every message in order and intact');
      assert.equal(done.count, seq);
      assert.equal(done.lastSeq, seq - 1);
      assert.equal(done.bytes, seq * size);
    } finally {
      ch.destroy();
      await child.kill();
      await server.close();
    }
  });

  it('trySend() returns false without queueing; only accepted messages arrive', opts, async () => {
    const { server, ch, child } = await slowReader();
    try {
      const size = 1000;
      let seq = 0;
      while (ch.trySend(seqMessage(seq, size))) seq++;
      assert.ok(seq >= 50 && seq <= 65, `about 64 KiB went into the ring (${seq} messages)`);
      // Refused ones are not queued: the next accepted message reuses the sequence number.
      for (let i = 0; i < 10; i++) assert.equal(ch.trySend(seqMessage(seq, size)), false);
      assert.equal(ch.pendingBytes, 0, 'trySend never queues');
      // A fragmented message (larger than a record) is all or nothing too.
      assert.equal(ch.trySend(seqMessage(seq, 40_000)), false);
      assert.equal(ch.pendingBytes, 0);

      let drains = 0;
      ch.on('drain', () => { drains++; });
      await sleep(50);
      assert.equal(drains, 0, "no 'drain' while the child reads nothing");
      assert.equal(ch.trySend(seqMessage(seq, size)), false, 'still full');

      const drained = next(ch, 'drain', 10_000);
      child.send({ type: 'go' });
      await drained;
      assert.equal(ch.trySend(seqMessage(seq++, size)), true, 'room again after drain');
      ch.send('END');
      const done = await child.next<Done>('done');
      assert.equal(done.errors, 0);
      assert.equal(done.count, seq, 'exactly the accepted messages arrived');
    } finally {
      ch.destroy();
      await child.kill();
      await server.close();
    }
  });

  it('pause() holds back delivery (and then the sender); resume() delivers everything in order', opts, async () => {
    const p = await pair({ ringSize: 4096 });
    try {
      const got: number[] = [];
      p.srv.on('message', (m) => { got.push(Buffer.from(m).readUInt32LE(0)); });
      p.srv.pause();
      assert.equal(p.srv.isPaused, true);
      let seq = 0;
      for (let i = 0; i < 5; i++) p.cli.send(seqMessage(seq++, 100));
      await sleep(30);
      assert.deepEqual(got, [], 'paused: nothing delivered');
      // Paused long enough, the 4 KiB ring fills and the sender is held back.
      while (p.cli.send(seqMessage(seq++, 100)));
      for (let i = 0; i < 20; i++) p.cli.send(seqMessage(seq++, 100));
      assert.ok(p.cli.pendingBytes > 0);
      await sleep(30);
      assert.deepEqual(got, []);
      const drained = next(p.cli, 'drain');
      p.srv.resume();
      assert.equal(p.srv.isPaused, false);
      await drained;
      while (got.length < seq) await sleep(2);
      assert.deepEqual(got, Array.from({ length: seq }, (_, i) => i));
    } finally {
      await p.close();
    }
  });
});
