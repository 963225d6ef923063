/**
 * The connection manager (rdma_cm's model): REJECTED with private data, UNREACHABLE, private-data limits, accept
 * with a QP of the wrong type, disconnect from either side (DISCONNECTED on the other, both QPs in ERROR), a
 * peer killed with SIGKILL (DISCONNECTED within 1 s, both directions), an MR registered after the connection is
 * reachable at once (the region-fetch path; in this process and across processes), and path listeners (a 0600
 * socket file, removed on close).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as cm from '../../src/cm';
import {
  type MemoryRegion,
  ACCESS_ALL, Access, QpState, QpType, SendFlags, WcStatus, WrOpcode, type QueuePair,
} from '../../src/verbs';
import { cmAddress, connectedPair, destroySide, makeSide, pollN, type Side } from '../helpers/verbs';
import { killPeers, spawnPeer } from '../helpers/peer';
import { tmpSocketPath } from '../helpers/util';

after(killPeers);
const OPTS = { timeout: 20_000 };

/** Resolve with the next `event` of `emitter`, or reject after `ms`. */
async function nextEvent<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 2000): Promise<T> {
  const [v] = await once(emitter, event, { signal: AbortSignal.timeout(ms) });
  return v as T;
}

/** Disconnect (if connected) and destroy a side in libibverbs' order; throws EBUSY if something was left. */
async function teardown(s: Side, extra: Array<{ deregister(): void }> = []): Promise<void> {
  await s.conn?.disconnect();
  destroySide(s, extra as MemoryRegion[]);
}

/** SIGKILL the peer process and time the survivor's DISCONNECTED (which must come within 1 s). */
async function killAndTime(conn: cm.CmConnection, kill: () => void, t: { diagnostic(m: string): void }): Promise<void> {
  const gone = nextEvent<Error | null>(conn, 'DISCONNECTED', 1000);
  const t0 = performance.now();
  kill();
  await gone;
  const ms = performance.now() - t0;
  t.diagnostic(`DISCONNECTED ${ms.toFixed(1)} ms after SIGKILL`);
  assert.ok(ms < 1000);
}

/** A listener whose requests go to `onRequest`. */
function listener(address: string, onRequest: (req: cm.ConnectRequest) => void): cm.CmListener {
  const l = cm.listen(address);
  l.on('CONNECT_REQUEST', onRequest);
  return l;
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** A client side here connected to a server in a child process ('established' read); `body` runs, then both go. */
async function withChildServer(body: (c: { client: Side; conn: cm.CmConnection; child: ReturnType<typeof spawnPeer>; est: { qpn: number } }) => Promise<void>): Promise<void> {
  const client = makeSide();
  const address = cmAddress();
  const child = spawnPeer('verbs-peer', ['server', address]);
  try {
    await child.next('listening');
    const conn = await cm.connect(address, client.qp);
    client.conn = conn;
    const est = await child.next<{ qpn: number }>('established');
    await body({ client, conn, child, est });
  } finally {
    await child.kill();
    await teardown(client);
  }
}

test('reject with private data: connect fails with CmError REJECTED, ECONNREFUSED and those bytes', OPTS, async () => {
  const client = makeSide();
  const address = cmAddress();
  const pdata = bytes(148, 7); // rdma_reject's limit
  let seen: { privateData: Uint8Array; pid: number; qpType: number } | null = null;
  const l = listener(address, (req) => {
    seen = { privateData: req.privateData, pid: req.peer.pid, qpType: req.qpType };
    assert.throws(() => req.reject(new Uint8Array(149)), (e: Error & { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
    req.reject(pdata);
    assert.throws(() => req.reject(), (e: Error & { code?: string }) => e.code === 'EINVAL', 'answered once');
  });
  try {
    const hello = bytes(56, 1); // rdma_connect's limit
    const err = await cm.connect(address, client.qp, { privateData: hello }).then(
      () => assert.fail('connect succeeded'), (e: unknown) => e);
    assert.ok(err instanceof cm.CmError, String(err));
    assert.equal(err.event, 'REJECTED');
    assert.equal(err.code, 'ECONNREFUSED');
    assert.deepEqual(err.privateData, pdata);
    assert.ok(seen, 'the listener saw the request');
    const s = seen as { privateData: Uint8Array; pid: number; qpType: number };
    assert.deepEqual(s.privateData, hello);
    assert.equal(s.pid, process.pid);
    assert.equal(s.qpType, QpType.RC);
    // A rejected QP is not connected to anything and can try again.
    assert.ok(client.qp.state === QpState.RESET || client.qp.state === QpState.INIT, `state ${client.qp.state}`);
    // A listener nobody handles rejects by itself, with no private data.
    l.removeAllListeners('CONNECT_REQUEST');
    const err2 = await cm.connect(address, client.qp).then(() => assert.fail('connect succeeded'), (e: unknown) => e);
    assert.ok(err2 instanceof cm.CmError);
    assert.equal(err2.event, 'REJECTED');
    assert.equal(err2.privateData.length, 0);
  } finally {
    l.close();
    await teardown(client);
  }
});

test('connect to nobody → UNREACHABLE (abstract name, missing path, a listener that never answers)', OPTS, async () => {
  const client = makeSide();
  try {
    const e1 = await cm.connect(cmAddress(), client.qp).then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(e1 instanceof cm.CmError);
    assert.equal(e1.event, 'UNREACHABLE');
    assert.equal(e1.code, 'ECONNREFUSED');
    const e2 = await cm.connect(`${tmpSocketPath()}`, client.qp).then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(e2 instanceof cm.CmError);
    assert.equal(e2.event, 'UNREACHABLE');
    assert.equal(e2.code, 'ENOENT');
    // A listener that takes the request and never answers: the client gives up at its timeout.
    const address = cmAddress();
    const held: cm.ConnectRequest[] = [];
    const l = listener(address, (req) => held.push(req));
    try {
      const t0 = Date.now();
      const e3 = await cm.connect(address, client.qp, { timeout: 200 }).then(() => assert.fail('connected'), (e: unknown) => e);
      assert.ok(e3 instanceof cm.CmError);
      assert.equal(e3.event, 'UNREACHABLE');
      assert.equal(e3.code, 'ETIMEDOUT');
      assert.ok(Date.now() - t0 >= 190 && Date.now() - t0 < 2000, `${Date.now() - t0} ms`);
      assert.equal(held.length, 1);
      // Accepting it now fails: the client is gone.
      const srv = makeSide();
      try {
        await assert.rejects(
          Promise.race([held[0]!.accept(srv.qp, { timeout: 1000 }), new Promise((_, rej) => setTimeout(() => rej(new Error('accept hung')), 3000))]),
          (e: Error & { code?: string }) => typeof e.code === 'string');
      } finally {
        await teardown(srv);
      }
    } finally {
      l.close();
    }
  } finally {
    await teardown(client);
  }
});

test('private data limits: connect 56, accept 196 bytes arrive intact; one byte more is an error', OPTS, async () => {
  const client = makeSide();
  const server = makeSide();
  const address = cmAddress();
  const reqs: cm.ConnectRequest[] = [];
  const l = listener(address, (req) => reqs.push(req));
  try {
    await assert.rejects(async () => cm.connect(address, client.qp, { privateData: new Uint8Array(57) }),
      (e: Error & { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
    await assert.rejects(async () => cm.connect(address, client.qp, { privateData: 'hello' as unknown as Uint8Array }),
      (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARG_TYPE');
    assert.equal(client.qp.state, QpState.RESET, 'a refused connect touched nothing');
    const toServer = bytes(56, 3);
    const toClient = bytes(196, 9);
    const connecting = cm.connect(address, client.qp, { privateData: toServer });
    const deadline = Date.now() + 2000;
    while (reqs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    const req = reqs[0]!;
    assert.deepEqual(req.privateData, toServer);
    await assert.rejects(async () => req.accept(server.qp, { privateData: new Uint8Array(197) }),
      (e: Error & { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
    // Still unanswered: accept properly.
    const [c, s] = await Promise.all([connecting, req.accept(server.qp, { privateData: toClient })]);
    client.conn = c;
    server.conn = s;
    assert.deepEqual(c.privateData, toClient);
    assert.deepEqual(s.privateData, toServer);
    assert.equal(c.remote.qpn, server.qp.qpNum);
    assert.equal(s.remote.qpn, client.qp.qpNum);
    assert.equal(client.qp.state, QpState.RTS);
    assert.equal(server.qp.state, QpState.RTS);
  } finally {
    l.close();
    await teardown(client);
    await teardown(server);
  }
});

test('accept with a QP of another type → EINVAL; the request can still be accepted with the right one', OPTS, async () => {
  const client = makeSide({ qpType: QpType.RC });
  const wrongUc = makeSide({ qpType: QpType.UC });
  const wrongUd = makeSide({ qpType: QpType.UD });
  const server = makeSide({ qpType: QpType.RC });
  const address = cmAddress();
  const l = listener(address, (req) => {
    void (async () => {
      assert.equal(req.qpType, QpType.RC);
      for (const w of [wrongUc, wrongUd]) {
        await assert.rejects(req.accept(w.qp), (e: Error & { code?: string }) => e.code === 'EINVAL' && /type/.test(e.message));
        assert.equal(w.qp.state, QpState.RESET, 'the wrong QP was not touched');
      }
      server.conn = await req.accept(server.qp);
    })().catch((e) => l.emit('test-error', e));
  });
  const failed = once(l, 'test-error').then(([e]) => { throw e; });
  try {
    client.conn = await Promise.race([cm.connect(address, client.qp), failed]);
    const deadline = Date.now() + 2000;
    while (server.conn === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.ok(server.conn, 'the server side established');
    assert.equal(server.qp.state, QpState.RTS);
    // And it works: an RDMA WRITE from the client lands.
    client.mr.buffer.set(bytes(32, 5));
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: client.mr.addr, length: 32, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr + 64, rkey: server.mr.rkey } });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.SUCCESS);
    assert.deepEqual(server.mr.buffer.slice(64, 96), bytes(32, 5));
  } finally {
    l.close();
    void failed.catch(() => {});
    for (const s of [client, server, wrongUc, wrongUd]) await teardown(s);
  }
});

for (const who of ['client', 'server'] as const) {
  test(`disconnect from the ${who}: DISCONNECTED on the other side, both QPs in ERROR, outstanding receives flushed`, OPTS, async () => {
    const pair = await connectedPair({ preRecv: 2 });
    const [me, other] = who === 'client' ? [pair.client, pair.server] : [pair.server, pair.client];
    try {
      const otherGone = nextEvent<Error | null>(other.conn!, 'DISCONNECTED');
      const meGone = nextEvent<Error | null>(me.conn!, 'DISCONNECTED');
      await me.conn!.disconnect();
      assert.equal(await otherGone, null, 'an orderly disconnect carries no error');
      await meGone;
      assert.equal(me.conn!.state, 'disconnected');
      assert.equal(other.conn!.state, 'disconnected');
      for (const s of [me, other]) {
        assert.equal(s.qp.state, QpState.ERR, 'rdma_disconnect moves the QP to ERROR');
        // The receives posted before are flushed.
        const wcs = await pollN(s.cq, 2);
        assert.deepEqual(wcs.map((w) => [w.wrId, w.status]), [[1000, WcStatus.WR_FLUSH_ERR], [1001, WcStatus.WR_FLUSH_ERR]]);
        // New work is flushed too, never executed.
        s.qp.postSend({ wrId: 7, opcode: WrOpcode.SEND, sgList: [] });
        const [wc] = await pollN(s.cq, 1);
        assert.equal(wc!.status, WcStatus.WR_FLUSH_ERR);
      }
      // Disconnecting again, from either side, is a no-op.
      await me.conn!.disconnect();
      await other.conn!.disconnect();
    } finally {
      await teardown(pair.client);
      await teardown(pair.server);
    }
  });
}

test('a client process killed with SIGKILL: DISCONNECTED on the server within 1 s, its QP in ERROR', OPTS, async (t) => {
  const server = makeSide();
  const address = cmAddress();
  const l = cm.listen(address);
  try {
    const accepted = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST', 10_000).then((req) => req.accept(server.qp));
    const child = spawnPeer('verbs-peer', ['client', address]);
    server.conn = await accepted;
    const hello = await child.next<{ pid: number; qpn: number }>('connected');
    assert.equal(hello.pid, child.pid);
    assert.equal(server.conn.remote.qpn, hello.qpn);
    assert.equal(new TextDecoder().decode(server.conn.privateData), `pid ${child.pid}`);
    await killAndTime(server.conn, () => child.child.kill('SIGKILL'), t);
    assert.equal(server.qp.state, QpState.ERR);
    assert.equal((await child.exited).signal, 'SIGKILL');
  } finally {
    l.close();
    await teardown(server);
  }
});

test('a server process killed with SIGKILL: DISCONNECTED on the client within 1 s; its RDMA now fails', OPTS, async (t) => {
  await withChildServer(async ({ client, conn, child, est }) => {
    assert.equal(conn.remote.qpn, est.qpn);
    await killAndTime(conn, () => child.child.kill('SIGKILL'), t);
    assert.equal(client.qp.state, QpState.ERR);
    client.qp.postSend({ wrId: 3, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: 0, rkey: 1 } });
    const [wc] = await pollN(client.cq, 1);
    assert.equal(wc!.status, WcStatus.WR_FLUSH_ERR);
  });
});

test('disconnect from a peer process: DISCONNECTED here, and its own QP in ERROR there', OPTS, async () => {
  await withChildServer(async ({ client, conn, child }) => {
    const gone = nextEvent<Error | null>(conn, 'DISCONNECTED', 2000);
    child.send({ type: 'disconnect' });
    assert.equal(await gone, null);
    assert.equal(client.qp.state, QpState.ERR);
    const self = await child.next<{ qpState: number }>('disconnected-self', 2000);
    assert.equal(self.qpState, QpState.ERR);
  });
});

/** Post one signaled WR and return its completion status. */
async function run(qp: QueuePair, side: Side, wr: Parameters<QueuePair['postSend']>[0]): Promise<number> {
  qp.postSend(wr);
  const [wc] = await pollN(side.cq, 1);
  return wc!.status;
}

test('an MR registered after the connection is established is reachable by the peer at once (the region-fetch path)', OPTS, async () => {
  const pair = await connectedPair();
  const { client, server } = pair;
  const extra: Array<{ deregister(): void }> = [];
  try {
    const payload = bytes(64, 11);
    client.mr.buffer.set(payload, 128);
    for (let round = 0; round < 3; round++) {
      // Registered, then written by the peer in the same tick: no turn of the event loop in between.
      const late = server.pd.registerMemory(4096 * (round + 1), Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
      extra.push(late);
      const status = await run(client.qp, client, {
        wrId: 10 + round, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
        sgList: [{ addr: client.mr.addr + 128, length: 64, lkey: client.mr.lkey }], rdma: { remoteAddr: late.addr + 1000, rkey: late.rkey },
      });
      assert.equal(status, WcStatus.SUCCESS, `round ${round}`);
      assert.deepEqual(late.buffer.slice(1000, 1064), payload);
      assert.ok(late.buffer.subarray(0, 1000).every((b) => b === 0) && late.buffer.subarray(1064).every((b) => b === 0));
    }
    // The same for a READ of a fresh MR (and for a region registered as a Region, written by its owner first).
    const late = server.pd.registerMemory(256, ACCESS_ALL);
    extra.push(late);
    late.buffer.set(bytes(16, 99), 200);
    const status = await run(client.qp, client, {
      wrId: 20, opcode: WrOpcode.RDMA_READ, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: client.mr.addr + 512, length: 16, lkey: client.mr.lkey }], rdma: { remoteAddr: late.addr + 200, rkey: late.rkey },
    });
    assert.equal(status, WcStatus.SUCCESS);
    assert.deepEqual(client.mr.buffer.slice(512, 528), bytes(16, 99));
    // And in the other direction: the client registers, the server writes.
    const clientLate = client.pd.registerMemory(4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    server.mr.buffer.set(payload, 0);
    const st2 = await run(server.qp, server, {
      wrId: 30, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }], rdma: { remoteAddr: clientLate.addr, rkey: clientLate.rkey },
    });
    assert.equal(st2, WcStatus.SUCCESS);
    assert.deepEqual(clientLate.buffer.slice(0, 64), payload);
    clientLate.deregister();
  } finally {
    await pair.close();
    await teardown(client);
    await teardown(server, extra);
  }
});

test('an MR a peer process registers after connecting: our RDMA WRITE reaches it as soon as we know its rkey', OPTS, async () => {
  await withChildServer(async ({ client, child }) => {
    const payload = bytes(100, 42);
    client.mr.buffer.set(payload, 0);
    for (let round = 0; round < 3; round++) {
      child.send({ type: 'register', bytes: 8192 });
      const reg = await child.next<{ addr: number; rkey: number; index: number }>('registered');
      const status = await run(client.qp, client, {
        wrId: round, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
        sgList: [{ addr: client.mr.addr, length: 100, lkey: client.mr.lkey }], rdma: { remoteAddr: reg.addr + 5000, rkey: reg.rkey },
    });
    assert.equal(status, WcStatus.SUCCESS, `round ${round}`);
    child.send({ type: 'read', index: reg.index, offset: 4999, length: 102 });
    const got = await child.next<{ hex: string }>('bytes');
    assert.equal(got.hex, `00${Buffer.from(payload).toString('hex')}00`);
  }
  });
});

test('a path listener creates a 0600 socket file, refuses a second listener, and removes the file on close', OPTS, async () => {
  const path = tmpSocketPath();
  const l = cm.listen(path);
  const pair = { client: makeSide(), server: makeSide() };
  try {
    const st = fs.lstatSync(path);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.throws(() => cm.listen(path), (e: Error & { code?: string }) => e.code === 'EADDRINUSE');
    assert.ok(fs.existsSync(path), 'the refused listener left the file alone');
    const accepted = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST').then((req) => req.accept(pair.server.qp));
    pair.client.conn = await cm.connect(path, pair.client.qp);
    pair.server.conn = await accepted;
    l.close();
    assert.equal(fs.existsSync(path), false, 'the socket file is gone');
    l.close(); // idempotent
    // The connection outlives its listener.
    assert.equal(pair.client.conn.state, 'established');
    pair.client.mr.buffer.set(bytes(8, 1));
    const status = await run(pair.client.qp, pair.client, {
      wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: pair.client.mr.addr, length: 8, lkey: pair.client.mr.lkey }], rdma: { remoteAddr: pair.server.mr.addr, rkey: pair.server.mr.rkey },
    });
    assert.equal(status, WcStatus.SUCCESS);
    // A listener with another mode, on a fresh path.
    const path2 = tmpSocketPath();
    const l2 = cm.listen(path2, { mode: 0o660 });
    assert.equal(fs.lstatSync(path2).mode & 0o777, 0o660);
    l2.close();
    assert.equal(fs.existsSync(path2), false);
  } finally {
    l.close();
    await teardown(pair.client);
    await teardown(pair.server);
  }
});
