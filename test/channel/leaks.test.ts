/**
 * Leaks: 1000 connect / send / close cycles leave the fd count where it started and, once the garbage
 * collector has run, no kbypass memfd mapping behind. A view kept from a closed channel stays readable (its
 * mapping lives while referenced) and the mapping goes once the view is dropped.
 */
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { connect, type Channel, type Server } from '../../src/index';
import { native } from '../../src/native/binding';
import { closed, fdCount, mappedBytes, next, pair, settleGc, startServer, tmpSocketPath, until, TEST_TIMEOUT } from '../helpers/util';

const CYCLES = 1000;

/** One connect / send / close cycle against `server`, checking the message arrived. */
async function cycle(server: Server, i: number): Promise<void> {
  const accepted = next<Channel>(server, 'channel');
  const c = await connect(server.address());
  const s = await accepted;
  const got = new Promise<string>((r) => s.once('message', (m) => r(Buffer.from(m).toString())));
  const sClosed = closed(s);
  c.send(`cycle ${i}`);
  assert.equal(await got, `cycle ${i}`);
  await c.close();
  assert.equal(await sClosed, undefined);
}

async function baseline(t: TestContext): Promise<{ fds: number; mapped: number }> {
  // Settle first: earlier work may still hold mappings awaiting collection.
  let prev = -1;
  await settleGc(() => { const m = mappedBytes(); const same = m === prev; prev = m; return same; });
  const b = { fds: fdCount(), mapped: mappedBytes() };
  t.diagnostic(`baseline: ${b.fds} fds, ${b.mapped} bytes of kbypass mappings`);
  return b;
}

/** Make a channel pair, keep a claim's buffer and a received message view, close everything; return the views.
 *  (A function of its own, so nothing but the views outlives it.) */
async function viewsOfClosedChannel(): Promise<{ claimBuffer: Uint8Array; claimOffset: number; message: Uint8Array }> {
  const p = await pair({ ringSize: 65536 });
  const c = p.cli.claim(16)!;
  c.view.set(Buffer.from('kept after close'));
  const claimBuffer = c.buffer;
  const claimOffset = c.offset;
  c.commit();
  const message = await new Promise<Uint8Array>((r) => p.srv.once('message', r)); // a view into ring memory
  const srvClosed = closed(p.srv);
  await p.cli.close();
  await srvClosed;
  await p.server.close();
  assert.equal(p.cli.state, 'closed');
  return { claimBuffer, claimOffset, message };
}

describe('leaks', () => {
  it(`${CYCLES} connect/send/close cycles: fds and memfd mappings back to the start`, { timeout: 60_000 }, async (t) => {
    const server = await startServer({ ringSize: 4096 });
    try {
      await cycle(server, -1); // warm up (lazy one-time allocations)
      const start = await baseline(t);
      let peakMapped = 0;
      for (let i = 0; i < CYCLES; i++) {
        await cycle(server, i);
        if (i % 100 === 0) peakMapped = Math.max(peakMapped, mappedBytes());
      }
      await until(() => server.connections === 0, 2000, 'server channels to close');
      assert.equal(fdCount(), start.fds, 'fd count after the cycles');
      const settled = await settleGc(() => mappedBytes() === start.mapped, 2000);
      t.diagnostic(`mapped: peak sampled ${peakMapped} bytes, after GC ${mappedBytes()} bytes`);
      assert.ok(settled, `kbypass mappings after GC: ${mappedBytes()} bytes, at the start ${start.mapped}`);
    } finally {
      await server.close();
    }
  });

  it('with the default 1 MiB ring too (200 cycles)', { timeout: 60_000 }, async (t) => {
    const server = await startServer();
    try {
      await cycle(server, -1);
      const start = await baseline(t);
      for (let i = 0; i < 200; i++) await cycle(server, i);
      await until(() => server.connections === 0, 2000, 'server channels to close');
      assert.equal(fdCount(), start.fds);
      assert.ok(await settleGc(() => mappedBytes() === start.mapped, 2000), `mapped ${mappedBytes()} vs ${start.mapped}`);
    } finally {
      await server.close();
    }
  });

  it('failed connects leak no fds (ENOENT, REJECT, timeout, abort)', { timeout: TEST_TIMEOUT }, async () => {
    const server = await startServer({ authorize: () => false });
    const n = native();
    const silent = tmpSocketPath();
    const silentFd = n.unixListen(silent, false, 0o600, 64); // accepts into its backlog, never answers
    try {
      await assert.rejects(connect(server.address()));
      const fds = fdCount();
      const code = (c: string) => (e: Error & { code?: string }) => e.code === c;
      for (let i = 0; i < 50; i++) {
        await assert.rejects(connect(server.address()), code('EACCES'));
        await assert.rejects(connect(`${server.address()}.missing`), code('ENOENT'));
      }
      for (let i = 0; i < 10; i++) {
        await assert.rejects(connect(silent, { timeout: 20 }), code('ETIMEDOUT'));
        const ac = new AbortController();
        const p = connect(silent, { signal: ac.signal });
        setImmediate(() => ac.abort());
        await assert.rejects(p, code('ABORT_ERR'));
      }
      await new Promise((r) => setImmediate(r));
      assert.equal(fdCount(), fds);
    } finally {
      n.close(silentFd);
      await server.close();
    }
  });

  it('a view kept from a closed channel stays readable after close and GC; its mapping goes when dropped', { timeout: TEST_TIMEOUT }, async (t) => {
    const start = await baseline(t);
    let keep: { claimBuffer: Uint8Array; claimOffset: number; message: Uint8Array } | null = await viewsOfClosedChannel();
    await settleGc(() => false, 200); // several GCs while the views are referenced
    assert.ok(mappedBytes() > start.mapped, 'the region is still mapped while a view references it');
    const text = Buffer.from(keep.claimBuffer.subarray(keep.claimOffset, keep.claimOffset + 16)).toString();
    assert.equal(text, 'kept after close', 'the claim buffer still reads the bytes written into it');
    assert.equal(Buffer.from(keep.message).toString(), 'kept after close', 'so does the message view');
    keep.claimBuffer[100] = 7; // writing is harmless too
    assert.equal(keep.claimBuffer[100], 7);
    keep = null;
    assert.ok(await settleGc(() => mappedBytes() === start.mapped, 2000), `mapped ${mappedBytes()} vs ${start.mapped} after dropping the views`);
  });
});
