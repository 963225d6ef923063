/**
 * Orderly close: everything sent before close() (queued sends included) arrives, then 'close' with no error on
 * both sides; close() resolves; sends after close throw ERR_KBYPASS_CHANNEL_CLOSED. Also destroy() and
 * server.close().
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { connect } from '../../src/index';
import { closed, next, pair, seqMessage, sleep, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
const isClosedError = (e: unknown) => (e as { code?: string }).code === 'ERR_KBYPASS_CHANNEL_CLOSED';

describe('orderly close', () => {
  it("everything sent before close() arrives, then 'close' with no error on both sides", opts, async () => {
    const p = await pair({ ringSize: 4096 });
    try {
      const got: number[] = [];
      p.srv.on('message', (m) => { got.push(Buffer.from(m).readUInt32LE(0)); });
      const srvClosed = closed(p.srv);
      const cliClosed = closed(p.cli);
      let queued = 0;
      for (let i = 0; i < 2000; i++) if (!p.cli.send(seqMessage(i, 64))) queued++;
      assert.ok(queued > 0, 'a 4 KiB ring makes most of these wait in the queue');
      assert.ok(p.cli.pendingBytes > 0);
      const closing = p.cli.close();
      assert.equal(p.cli.state, 'closing');
      assert.equal(await closing, undefined, 'close() resolves');
      assert.equal(p.cli.state, 'closed');
      assert.equal(p.cli.closed, true);
      assert.equal(await cliClosed, undefined, "client 'close' has no error");
      assert.equal(await srvClosed, undefined, "server 'close' has no error");
      assert.equal(p.srv.state, 'closed');
      assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => i), 'all 2000 arrived, in order, before close');
    } finally {
      await p.close();
    }
  });

  it('the server side may close first; its last messages still arrive', opts, async () => {
    const p = await pair();
    try {
      const got: string[] = [];
      p.cli.on('message', (m) => { got.push(Buffer.from(m).toString()); });
      const cliClosed = closed(p.cli);
      p.srv.send('last words');
      await p.srv.close();
      assert.equal(await cliClosed, undefined);
      assert.deepEqual(got, ['last words']);
    } finally {
      await p.close();
    }
  });

  it('send, trySend and claim after close() throw ERR_KBYPASS_CHANNEL_CLOSED (closing and closed)', opts, async () => {
    const p = await pair();
    try {
      const closing = p.cli.close();
      assert.throws(() => p.cli.send('x'), isClosedError);
      assert.throws(() => p.cli.trySend(new Uint8Array(1)), isClosedError);
      assert.throws(() => p.cli.claim(1), isClosedError);
      await closing;
      assert.throws(() => p.cli.send('x'), isClosedError);
      assert.throws(() => p.cli.trySend(new Uint8Array(1)), isClosedError);
      assert.throws(() => p.cli.claim(1), isClosedError);
      assert.throws(() => p.srv.send('x'), isClosedError, 'the peer closed too');
      assert.equal(p.cli.writable, false);
      // close() again resolves at once; poll after close is harmless.
      await p.cli.close();
      assert.equal(p.cli.poll(() => assert.fail('nothing to receive')), 0);
    } finally {
      await p.close();
    }
  });

  it('messages the peer sent before it closed can still be polled after close', opts, async () => {
    const p = await pair();
    try {
      p.srv.send('one');
      p.srv.send('two');
      await p.srv.close(); // the client has no listener: it closes its side in answer, messages unread
      assert.equal(p.cli.state, 'closed');
      const got: string[] = [];
      assert.equal(p.cli.poll((b, o, l) => { got.push(Buffer.from(b.subarray(o, o + l)).toString()); }), 2);
      assert.deepEqual(got, ['one', 'two']);
    } finally {
      await p.close();
    }
  });

  it('close() gives up after closeTimeout when the peer takes nothing: ERR_KBYPASS_CLOSE_TIMEOUT', opts, async () => {
    const p = await pair({ ringSize: 4096 }, { closeTimeout: 100 });
    try {
      // The server side neither listens nor polls: the client's queue cannot drain.
      while (p.cli.send(new Uint8Array(500)));
      p.cli.send(new Uint8Array(500));
      const cliClosed = closed(p.cli);
      const srvClosed = closed(p.srv);
      const t0 = Date.now();
      await p.cli.close();
      const ms = Date.now() - t0;
      assert.ok(ms >= 90 && ms < 2000, `close() resolved after ${ms} ms`);
      assert.equal(((await cliClosed) as { code?: string } | undefined)?.code, 'ERR_KBYPASS_CLOSE_TIMEOUT');
      assert.equal(((await srvClosed) as { code?: string } | undefined)?.code, 'ERR_KBYPASS_PEER_GONE', 'the peer sees it go');
    } finally {
      await p.close();
    }
  });

  it("destroy(): 'close' here with the given error; the peer sees ERR_KBYPASS_PEER_GONE", opts, async () => {
    const p = await pair();
    try {
      const srvClosed = closed(p.srv);
      const cliClosed = closed(p.cli);
      const why = new Error('because');
      p.cli.destroy(why);
      assert.equal(p.cli.state, 'closed');
      assert.equal(await cliClosed, why);
      const e = await srvClosed;
      assert.equal((e as { code?: string }).code, 'ERR_KBYPASS_PEER_GONE');
    } finally {
      await p.close();
    }
  });

  it('server.close() stops accepting and removes the socket file; open channels keep working', opts, async () => {
    const p = await pair();
    try {
      const closedEvent = next(p.server, 'close');
      await p.server.close();
      await closedEvent;
      assert.equal(p.server.listening, false);
      assert.equal(fs.existsSync(p.path), false, 'socket file removed');
      await assert.rejects(connect(p.path), (e: Error & { code?: string }) => e.code === 'ENOENT');
      const got = new Promise<string>((r) => p.srv.once('message', (m) => r(Buffer.from(m).toString())));
      p.cli.send('still open');
      assert.equal(await got, 'still open');
      assert.equal(p.server.connections, 1);
      await p.cli.close();
      await sleep(5);
      assert.equal(p.server.connections, 0);
    } finally {
      await p.close();
    }
  });
});
