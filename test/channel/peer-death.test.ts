/**
 * Peer death: a child streaming messages is killed with SIGKILL mid-stream. The survivor gets 'close' with
 * ERR_KBYPASS_PEER_GONE within 100 ms of the signal (measured from kill(), logged as a diagnostic), after every
 * message the child managed to commit, in order. Both ways: child as client, child as server. Nothing is left
 * in /dev/shm.
 */
import { after, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { connect, type Channel } from '../../src/index';
import { killPeers, spawnPeer, type Peer } from '../helpers/peer';
import { checkSeqMessage, closed, next, shmEntries, startServer, tmpSocketPath, until, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
const LIMIT_MS = 100;
after(killPeers);

/** Count the child's messages, checking their order, until the channel closes. */
function receive(ch: Channel): { count: number; errors: number } {
  const s = { count: 0, errors: 0 };
  ch.on('message', (m) => {
    if (checkSeqMessage(m) !== s.count) s.errors++;
    s.count++;
  });
  return s;
}

async function killAndMeasure(t: TestContext, ch: Channel, child: Peer, stats: { count: number; errors: number }): Promise<void> {
  await child.next('streaming');
  await until(() => stats.count >= 2000, 10_000, 'messages from the child');
  const gone = closed(ch);
  const t0 = performance.now();
  child.child.kill('SIGKILL');
  const reaped = child.exited.then(() => performance.now() - t0);
  const error = await gone;
  const ms = performance.now() - t0;
  t.diagnostic(`'close' ${ms.toFixed(2)} ms after SIGKILL (${stats.count} messages received; ` +
    `the child was reaped after ${(await reaped).toFixed(2)} ms)`);
  assert.equal((error as { code?: string } | undefined)?.code, 'ERR_KBYPASS_PEER_GONE', `close error: ${String(error)}`);
  assert.match(error!.message, new RegExp(`pid ${child.pid}`));
  assert.ok(ms < LIMIT_MS, `'close' came ${ms.toFixed(1)} ms after the kill (limit ${LIMIT_MS} ms)`);
  assert.equal(stats.errors, 0, 'every message before the death arrived intact and in order');
  assert.equal(ch.state, 'closed');
  assert.throws(() => ch.send('x'), (e: Error & { code?: string }) => e.code === 'ERR_KBYPASS_CHANNEL_CLOSED');
  const { signal } = await child.exited;
  assert.equal(signal, 'SIGKILL');
}

describe('peer death', () => {
  it('child client killed mid-stream: the server side closes with ERR_KBYPASS_PEER_GONE', opts, async (t) => {
    const shmBefore = shmEntries();
    const server = await startServer();
    try {
      const accepted = next<Channel>(server, 'channel');
      const child = spawnPeer('streamer', ['client', server.address()]);
      const ch = await accepted;
      assert.equal(ch.peer.pid, child.pid);
      const stats = receive(ch);
      await killAndMeasure(t, ch, child, stats);
      await until(() => server.connections === 0, 1000, 'the server to forget the channel');
    } finally {
      await server.close();
    }
    assert.deepEqual(shmEntries(), shmBefore, 'no new files in /dev/shm');
  });

  it('child server killed mid-stream: the client side closes with ERR_KBYPASS_PEER_GONE', opts, async (t) => {
    const shmBefore = shmEntries();
    const path = tmpSocketPath();
    const child = spawnPeer('streamer', ['server', path]);
    await child.next('listening');
    const ch = await connect(path);
    assert.equal(ch.peer.pid, child.pid);
    const stats = receive(ch);
    await killAndMeasure(t, ch, child, stats);
    assert.deepEqual(shmEntries(), shmBefore, 'no new files in /dev/shm');
  });

  it('a peer killed while this side is blocked sending: PEER_GONE, queued bytes dropped', opts, async (t) => {
    const server = await startServer({ ringSize: 4096 });
    try {
      const accepted = next<Channel>(server, 'channel');
      const child = spawnPeer('slow-reader', [server.address()]); // reads nothing until told
      await child.next('connected');
      const ch = await accepted;
      while (ch.send(new Uint8Array(500)));
      for (let i = 0; i < 10; i++) ch.send(new Uint8Array(500));
      assert.ok(ch.pendingBytes > 0);
      const gone = closed(ch);
      const t0 = performance.now();
      child.child.kill('SIGKILL');
      const error = await gone;
      const ms = performance.now() - t0;
      t.diagnostic(`'close' ${ms.toFixed(2)} ms after SIGKILL of a peer that was not reading`);
      assert.equal((error as { code?: string } | undefined)?.code, 'ERR_KBYPASS_PEER_GONE');
      assert.ok(ms < LIMIT_MS, `${ms.toFixed(1)} ms`);
      assert.equal(ch.pendingBytes, 0);
    } finally {
      await server.close();
    }
  });
});
