/**
 * The connection manager against clients and peers that misbehave, and its failure paths: a bad REQ is a
 * listener's 'clientError' (never 'error', never a crash) and the listener goes on; a peer's bad MR_ADD ends the
 * connection with ERR_KBYPASS_PROTOCOL (also when read inside postSend, where nothing but MR_ADD runs); an
 * unanswered CONNECT_REQUEST is rejected after requestTimeout; a QP in use is EBUSY; `authorize`; every failed
 * accept/connect undoes its attachment (no remotes entry, our QP in ERROR); regions registered during the
 * handshake reach the peer; a peer that stops reading ends the connection instead of failing registerMemory.
 *
 * Malformed messages are sent with the native binding (unixConnect, sendFds) and wire.ts's encodeCm; a "fake"
 * peer is a real Side of this process whose QP, CQ and MR-table fds it sends by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as cm from '../../src/cm';
import { native } from '../../src/native/binding';
import { closeAll } from '../../src/channel/rendezvous';
import { CM_MESSAGE_BYTES, CmType, decodeCm, encodeCm, type CmMessage } from '../../src/cm/wire';
import { LOCAL_LID, type ShmContext } from '../../src/verbs/shm/context';
import type { ShmQp } from '../../src/verbs/shm/qp';
import type { ShmPd } from '../../src/verbs/shm/pd';
import {
  Access, Mtu, QpAttrMask as M, QpState, QpType, SendFlags, WcStatus, WrOpcode, type MemoryRegion,
} from '../../src/verbs';
import { cmAddress, connectedPair, destroySide, makeSide, pollN, sleep, type Side } from '../helpers/verbs';
import { fdCount } from '../helpers/util';

const OPTS = { timeout: 20_000 };
const code = (c: string | RegExp) => (e: unknown): boolean => {
  const got = (e as { code?: string }).code ?? '';
  return typeof c === 'string' ? got === c : c.test(got);
};

async function nextEvent<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 2000): Promise<T[]> {
  return (await once(emitter, event, { signal: AbortSignal.timeout(ms) })) as T[];
}

async function teardown(s: Side, extra: MemoryRegion[] = []): Promise<void> {
  await s.conn?.disconnect();
  destroySide(s, extra);
}

const remotesOf = (s: Side): Map<string, unknown> => (s.ctx as unknown as ShmContext).remotes;

// --- a raw CM peer -----------------------------------------------------------------------------------------

function rawConnect(address: string): number {
  assert.ok(address.startsWith('@'));
  return native().unixConnect(address.slice(1), true);
}

function rawSend(fd: number, m: Partial<CmMessage> & { type: number }, fds: number[] = [], bytes?: Uint8Array): void {
  const b = bytes ?? encodeCm(m);
  assert.equal(native().sendFds(fd, b, fds), CM_MESSAGE_BYTES);
}

/** The next message on `fd` (its fds are the caller's), or null at EOF / reset. */
async function rawRecv(fd: number, ms = 2000): Promise<{ m: CmMessage; fds: number[] } | null> {
  const n = native();
  const buf = new Uint8Array(CM_MESSAGE_BYTES);
  const slots = new Int32Array(16);
  const fds: number[] = [];
  let got = 0;
  const deadline = Date.now() + ms;
  for (;;) {
    slots.fill(-1);
    let r: number;
    try { r = n.recvFds(fd, buf.subarray(got), slots); } catch { closeAll(fds); return null; }
    for (const f of slots) if (f >= 0) fds.push(f);
    if (r === 0) { closeAll(fds); return null; }
    if (r > 0) {
      got += r;
      if (got < CM_MESSAGE_BYTES) continue;
      const m = decodeCm(buf);
      if (typeof m === 'string') throw new Error(m);
      return { m, fds };
    }
    if (Date.now() > deadline) throw new Error(`no message within ${ms} ms`);
    await sleep(1);
  }
}

/** Read (closing their fds) until a message of `type`; returns it. */
async function rawExpect(fd: number, type: number, ms = 2000): Promise<CmMessage> {
  for (;;) {
    const r = await rawRecv(fd, ms);
    assert.ok(r !== null, `the link ended before a message of type ${type}`);
    closeAll(r.fds);
    if (r.m.type === type) return r.m;
  }
}

/** Read (closing their fds) until EOF; returns the types seen. */
async function rawDrain(fd: number, ms = 2000): Promise<number[]> {
  const types: number[] = [];
  for (;;) {
    const r = await rawRecv(fd, ms);
    if (r === null) return types;
    closeAll(r.fds);
    types.push(r.m.type);
  }
}

/** A side's QP as a REQ/REP describes it (no SRQ, no completion channel). */
function describe(s: Side, type: number): { m: Partial<CmMessage> & { type: number }; fds: number[] } {
  const qp = s.qp as ShmQp;
  return {
    m: { type, qpn: qp.qpNum, qpType: qp.qpType, psn: 1, lid: LOCAL_LID, flags: 0 },
    fds: [qp.region.fd, qp.recvCq.region.fd, qp.pd.tableRegion.fd],
  };
}

/** Move a fake's QP to RTR (remote access on), so that the other side's requester treats it as a live peer. */
function fakeRtr(s: Side, destQpNum: number): void {
  cm.initQp(s.qp);
  s.qp.modify({ qpState: QpState.RTR, ahAttr: { dlid: LOCAL_LID, portNum: 1 }, pathMtu: Mtu.MTU_4096, destQpNum, rqPsn: 0,
    maxDestRdAtomic: 16, minRnrTimer: 12 }, M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN | M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER);
}

/**
 * A server side accepting on `address`, and a fake client that sends a REQ with `fake`'s QP and reads the REP;
 * `rtu` decides whether it confirms. Returns the fake's socket and the accept's promise.
 */
async function fakeClientOf(address: string, server: Side, fake: Side, options: cm.CmConnectionOptions = {}):
  Promise<{ l: cm.CmListener; fd: number; rep: CmMessage; accepted: Promise<cm.CmConnection> }> {
  const l = cm.listen(address);
  const accepted = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST').then(([req]) => req!.accept(server.qp, options));
  const fd = rawConnect(address);
  const { m, fds } = describe(fake, CmType.REQ);
  rawSend(fd, m, fds);
  const rep = await rawExpect(fd, CmType.REP);
  return { l, fd, rep, accepted };
}

// --- tests -------------------------------------------------------------------------------------------------

/**
 * A server side here, accepted for a fake client (raw socket `fd`) that confirmed with RTU and whose QP went to RTR;
 * `body` runs with the server's connection, then everything is closed.
 */
async function withEstablishedFake(body: (c: { server: Side; fake: Side; fd: number; conn: cm.CmConnection }) => Promise<void>): Promise<void> {
  const server = makeSide();
  const fake = makeSide();
  const { l, fd, rep, accepted } = await fakeClientOf(cmAddress(), server, fake);
  try {
    rawSend(fd, { type: CmType.RTU });
    const conn = await accepted;
    server.conn = conn;
    fakeRtr(fake, rep.qpn);
    await body({ server, fake, fd, conn });
  } finally {
    native().close(fd);
    l.close();
    await teardown(server);
    destroySide(fake);
  }
}

test('a bad REQ (wrong number of fds, bad magic, not a REQ) → clientError, never error; the listener keeps serving', OPTS, async () => {
  const address = cmAddress();
  const client = makeSide();
  const server = makeSide();
  const l = cm.listen(address);
  l.on('CONNECT_REQUEST', (req: cm.ConnectRequest) => { void req.accept(server.qp).then((c) => { server.conn = c; }); });
  const n = native();
  const ev = n.eventfd();
  const fdsBefore = fdCount();
  /** Three bad clients; each must be refused or dropped. */
  const badClients = async (): Promise<void> => {
    // A REQ that says "no SRQ, no channel" (3 fds) with one fd: REJ (reason 3, invalid), then the end.
    let fd = rawConnect(address);
    rawSend(fd, { type: CmType.REQ, qpType: QpType.RC, lid: LOCAL_LID, flags: 0 }, [ev]);
    const rej = await rawExpect(fd, CmType.REJ);
    assert.equal(rej.value, 3);
    assert.deepEqual(await rawDrain(fd), []);
    n.close(fd);
    // Bad magic: dropped.
    fd = rawConnect(address);
    const bytes = encodeCm({ type: CmType.REQ });
    bytes.set([0xde, 0xad, 0xbe, 0xef], 0);
    rawSend(fd, { type: 0 }, [ev], bytes);
    assert.deepEqual(await rawDrain(fd), []);
    n.close(fd);
    // A well-formed message that is not a REQ: dropped.
    fd = rawConnect(address);
    rawSend(fd, { type: CmType.RTU });
    assert.deepEqual(await rawDrain(fd), []);
    n.close(fd);
  };
  try {
    // Nobody listens for 'clientError' (nor 'error'): nothing is thrown; the process goes on.
    await badClients();
    // Now someone listens: one 'clientError' per bad client, with its credentials.
    const seen: Array<{ err: Error & { code?: string }; peer: cm.CmPeer | null }> = [];
    const errors: Error[] = [];
    l.on('clientError', (err: Error, peer: cm.CmPeer | null) => seen.push({ err, peer }));
    l.on('error', (e: Error) => errors.push(e));
    await badClients();
    const deadline = Date.now() + 2000;
    while (seen.length < 3 && Date.now() < deadline) await sleep(2);
    assert.equal(seen.length, 3, seen.map((s) => s.err.message).join('; '));
    for (const s of seen) {
      assert.equal(s.err.code, 'ERR_KBYPASS_PROTOCOL', s.err.message);
      assert.equal(s.peer?.pid, process.pid);
    }
    assert.match(seen[0]!.err.message, /fds/);
    assert.match(seen[1]!.err.message, /magic/);
    assert.deepEqual(errors, [], "a client's failure is never the listener's 'error'");
    await sleep(20);
    assert.equal(fdCount(), fdsBefore, 'every bad client\'s socket and fds were closed');
    // And the listener still serves a good client.
    client.conn = await cm.connect(address, client.qp);
    const until = Date.now() + 2000;
    while (server.conn === null && Date.now() < until) await sleep(2);
    assert.equal(client.qp.state, QpState.RTS);
    assert.equal(server.qp.state, QpState.RTS);
  } finally {
    l.close();
    n.close(ev);
    await teardown(client);
    await teardown(server);
  }
});

test('a peer\'s MR_ADD with a bad region id or an unsealed fd → DISCONNECTED with ERR_KBYPASS_PROTOCOL, no crash', OPTS, async () => {
  const n = native();
  const fakeRegionFd = (fake: Side): number => (fake.pd as unknown as ShmPd).regions[1]!.fd;
  for (const bad of ['region id 0', 'region id 2^20', 'an eventfd as the region'] as const) {
    const server = makeSide();
    const fake = makeSide();
    const { l, fd, accepted } = await fakeClientOf(cmAddress(), server, fake);
    try {
      rawSend(fd, { type: CmType.RTU });
      server.conn = await accepted;
      const gone = nextEvent<Error | null>(server.conn, 'DISCONNECTED');
      if (bad === 'region id 0') rawSend(fd, { type: CmType.MR_ADD, value: 0 }, [fakeRegionFd(fake)]);
      else if (bad === 'region id 2^20') rawSend(fd, { type: CmType.MR_ADD, value: 1 << 20 }, [fakeRegionFd(fake)]);
      else { const ev = n.eventfd(); rawSend(fd, { type: CmType.MR_ADD, value: 5 }, [ev]); n.close(ev); }
      const [err] = await gone;
      assert.ok(err instanceof Error, bad);
      assert.equal((err as Error & { code?: string }).code, 'ERR_KBYPASS_PROTOCOL', `${bad}: ${(err as Error).message}`);
      assert.equal(server.conn.state, 'disconnected');
      assert.equal(server.qp.state, QpState.ERR);
      assert.equal(remotesOf(server).size, 0);
      await rawDrain(fd); // and the fake sees its socket closed
    } finally {
      n.close(fd);
      l.close();
      await teardown(server);
      destroySide(fake);
    }
  }
});

test('a bad MR_ADD read by the region fetch inside postSend: the WR fails, DISCONNECTED comes after postSend returned', OPTS, async () => {
  await withEstablishedFake(async ({ server, fake, fd, conn }) => {
    const gone = nextEvent<Error | null>(conn, 'DISCONNECTED');
    // No turn of the event loop between these: the server's requester pulls the MR_ADD itself.
    rawSend(fd, { type: CmType.MR_ADD, value: 0 }, [(fake.pd as unknown as ShmPd).regions[1]!.fd]);
    server.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: server.mr.addr, length: 8, lkey: server.mr.lkey }], rdma: { remoteAddr: fake.mr.addr, rkey: fake.mr.rkey } });
    assert.equal(conn.state, 'established', 'the link\'s end is not handled inside postSend');
    const [wc] = await pollN(server.cq, 1);
    assert.notEqual(wc!.status, WcStatus.SUCCESS, 'the region never arrived');
    const [err] = await gone;
    assert.equal((err as Error & { code?: string }).code, 'ERR_KBYPASS_PROTOCOL');
    assert.equal(server.qp.state, QpState.ERR);
  });
});

test('a DREQ read by the region fetch inside postSend is handled on the next tick (not re-entrantly)', OPTS, async () => {
  await withEstablishedFake(async ({ server, fake, fd, conn }) => {
    const gone = nextEvent<Error | null>(conn, 'DISCONNECTED');
    fake.mr.buffer.fill(0);
    // The region, then a DREQ, both waiting in the socket when the server's WRITE needs the region.
    rawSend(fd, { type: CmType.MR_ADD, value: 1 }, [(fake.pd as unknown as ShmPd).regions[1]!.fd]);
    rawSend(fd, { type: CmType.DREQ });
    server.mr.buffer.set([1, 2, 3, 4, 5, 6, 7, 8]);
    server.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: server.mr.addr, length: 8, lkey: server.mr.lkey }], rdma: { remoteAddr: fake.mr.addr + 16, rkey: fake.mr.rkey } });
    // Inside postSend only the MR_ADD ran: the connection and its QP are untouched until the next tick.
    assert.equal(conn.state, 'established');
    assert.equal(server.qp.state, QpState.RTS);
    const [wc] = await pollN(server.cq, 1);
    assert.equal(wc!.status, WcStatus.SUCCESS);
    assert.deepEqual([...fake.mr.buffer.subarray(16, 24)], [1, 2, 3, 4, 5, 6, 7, 8]);
    const [err] = await gone;
    assert.equal(err, null, 'an orderly disconnect');
    assert.equal(server.qp.state, QpState.ERR);
    const types = await rawDrain(fd);
    assert.ok(types.includes(CmType.DREP), `the server answered the DREQ (${types})`);
  });
});

test('an unanswered CONNECT_REQUEST is rejected after requestTimeout (REJECTED, reason timeout); its resources go', OPTS, async () => {
  const client = makeSide();
  const server = makeSide();
  const address = cmAddress();
  const held: cm.ConnectRequest[] = [];
  assert.throws(() => cm.listen(cmAddress(), { requestTimeout: 0 }), code('ERR_OUT_OF_RANGE'));
  assert.throws(() => cm.listen(cmAddress(), { requestTimeout: 'x' as unknown as number }), code('ERR_INVALID_ARG_TYPE'));
  const l = cm.listen(address, { requestTimeout: 150 });
  l.on('CONNECT_REQUEST', (req: cm.ConnectRequest) => held.push(req));
  try {
    const fdsBefore = fdCount();
    const t0 = Date.now();
    const err = await cm.connect(address, client.qp, { timeout: 3000 }).then(() => assert.fail('connected'), (e: unknown) => e);
    const ms = Date.now() - t0;
    assert.ok(err instanceof cm.CmError, String(err));
    assert.equal(err.event, 'REJECTED');
    assert.equal(err.reason, 'timeout');
    assert.equal(err.code, 'ETIMEDOUT');
    assert.ok(ms >= 140 && ms < 2500, `${ms} ms`);
    assert.equal(held.length, 1);
    // Answering it now: accept fails (and touches nothing), reject does nothing.
    await assert.rejects(async () => held[0]!.accept(server.qp), code('ETIMEDOUT'));
    assert.equal(server.qp.state, QpState.RESET);
    held[0]!.reject();
    await sleep(20);
    assert.equal(fdCount(), fdsBefore, 'both ends of the request\'s socket are closed');
    // The client's QP is free to try again: this time the request is answered.
    l.removeAllListeners('CONNECT_REQUEST');
    l.on('CONNECT_REQUEST', (req: cm.ConnectRequest) => { void req.accept(server.qp).then((c) => { server.conn = c; }); });
    client.conn = await cm.connect(address, client.qp);
    assert.equal(client.qp.state, QpState.RTS);
  } finally {
    l.close();
    await teardown(client);
    await teardown(server);
  }
});

test('connect/accept with a QP still in use → EBUSY; free again once DISCONNECTED', OPTS, async () => {
  const pair = await connectedPair();
  const other = makeSide();
  const fresh = makeSide();
  const address = cmAddress();
  const l = cm.listen(address);
  try {
    // connect with the client's QP of an established connection.
    await assert.rejects(async () => cm.connect(address, pair.client.qp),
      (e: Error & { code?: string }) => e.code === 'EBUSY' && /established connection/.test(e.message));
    // accept with the server's.
    const reqP = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST');
    const connecting = cm.connect(address, other.qp);
    const [req] = await reqP;
    await assert.rejects(async () => req!.accept(pair.server.qp), code('EBUSY'));
    // Even after the user moved the QP back to RESET behind the connection's back.
    pair.client.qp.modify({ qpState: QpState.RESET }, M.STATE);
    await assert.rejects(async () => cm.connect(address, pair.client.qp), code('EBUSY'));
    // A QP in a connect that has not finished is busy too.
    await assert.rejects(async () => cm.connect(address, other.qp), (e: Error & { code?: string }) => e.code === 'EBUSY' && /not finished/.test(e.message));
    await assert.rejects(async () => req!.accept(other.qp), code('EBUSY'));
    // The request is still pending: accept it with a free QP.
    fresh.conn = await req!.accept(fresh.qp);
    other.conn = await connecting;
    // Once DISCONNECTED, the QP is free (it is in RESET already, where the user put it: the CM leaves it there).
    await pair.client.conn!.disconnect();
    assert.equal(pair.client.qp.state, QpState.RESET);
    const reqP2 = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST');
    const again = cm.connect(address, pair.client.qp);
    const [req2] = await reqP2;
    const third = makeSide();
    try {
      third.conn = await req2!.accept(third.qp);
      const old = pair.client.conn!;
      pair.client.conn = await again;
      assert.equal(pair.client.qp.state, QpState.RTS);
      // The old connection is done with the QP: disconnecting it again leaves the new connection's QP alone.
      await old.disconnect();
      assert.equal(pair.client.qp.state, QpState.RTS);
      assert.equal(pair.client.conn.state, 'established');
    } finally {
      await teardown(third);
    }
  } finally {
    l.close();
    await pair.close();
    for (const s of [pair.client, pair.server, other, fresh]) await teardown(s);
  }
});

test('authorize: a client it refuses is REJECTED (unauthorized); it sees the credentials; a throw refuses too', OPTS, async () => {
  const client = makeSide();
  const server = makeSide();
  const address = cmAddress();
  const seen: cm.CmPeer[] = [];
  let verdict: 'no' | 'throw' | 'yes' = 'no';
  assert.throws(() => cm.listen(cmAddress(), { authorize: 'yes' as unknown as () => boolean }), code('ERR_INVALID_ARG_TYPE'));
  const l = cm.listen(address, {
    authorize: (peer) => {
      seen.push(peer);
      if (verdict === 'throw') throw new Error('authorize failed');
      return verdict === 'yes';
    },
  });
  let requests = 0;
  l.on('CONNECT_REQUEST', (req: cm.ConnectRequest) => { requests++; void req.accept(server.qp).then((c) => { server.conn = c; }); });
  const clientErrors: Error[] = [];
  l.on('clientError', (e: Error) => clientErrors.push(e));
  try {
    const err = await cm.connect(address, client.qp).then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(err instanceof cm.CmError, String(err));
    assert.equal(err.event, 'REJECTED');
    assert.equal(err.reason, 'unauthorized');
    assert.equal(err.code, 'EACCES');
    assert.equal(requests, 0, 'the application never saw the refused client');
    assert.deepEqual(seen[0], { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    verdict = 'throw';
    const err2 = await cm.connect(address, client.qp).then(() => assert.fail('connected'), (e: unknown) => e);
    assert.equal((err2 as cm.CmError).reason, 'unauthorized');
    await sleep(5);
    assert.deepEqual(clientErrors.map((e) => e.message), ['authorize failed']);
    verdict = 'yes';
    client.conn = await cm.connect(address, client.qp);
    assert.equal(requests, 1);
    assert.equal(seen.length, 3);
  } finally {
    l.close();
    await teardown(client);
    await teardown(server);
  }
});

test('a failed accept undoes everything: no remotes entry is left, our QP is in ERROR (client gone after REP; no RTU)', OPTS, async () => {
  for (const how of ['client gone after REP', 'no RTU'] as const) {
    const server = makeSide();
    const fake = makeSide();
    const { l, fd, accepted } = await fakeClientOf(cmAddress(), server, fake, { timeout: 200 });
    try {
      assert.equal(remotesOf(server).size, 1, 'attached while accepting');
      assert.equal(server.qp.state, QpState.RTS);
      if (how === 'client gone after REP') native().close(fd);
      const err = await accepted.then(() => assert.fail('accepted'), (e: unknown) => e);
      assert.ok(err instanceof cm.CmError, String(err));
      assert.equal(err.event, 'CONNECT_ERROR');
      if (how === 'no RTU') assert.equal(err.code, 'ETIMEDOUT');
      assert.equal(remotesOf(server).size, 0, `${how}: the peer is forgotten`);
      assert.equal(server.qp.state, QpState.ERR, `${how}: our QP left RTS`);
    } finally {
      if (how === 'no RTU') native().close(fd);
      l.close();
      destroySide(server);
      destroySide(fake);
    }
  }
});

test('a failed connect after the REP undoes everything too: no remotes entry, our QP in ERROR', OPTS, async () => {
  const client = makeSide();
  const fake = makeSide();
  const address = cmAddress();
  const n = native();
  const lfd = n.unixListen(address.slice(1), true, 0o600, 8);
  try {
    const connecting = cm.connect(address, client.qp, { timeout: 2000 }).then(() => assert.fail('connected'), (e: unknown) => e);
    let fd = -1;
    const deadline = Date.now() + 2000;
    while ((fd = n.unixAccept(lfd)) < 0 && Date.now() < deadline) await sleep(1);
    assert.ok(fd >= 0);
    await rawExpect(fd, CmType.REQ);
    // Take the client's MR_ADDs too (closing with unread data would be a reset rather than an end).
    for (;;) { const r = await rawRecv(fd, 50).catch(() => null); if (r === null) break; closeAll(r.fds); }
    // A REP, then gone before the RTU.
    const { m, fds } = describe(fake, CmType.REP);
    rawSend(fd, m, fds);
    n.close(fd);
    const err = await connecting;
    assert.ok(err instanceof cm.CmError, String(err));
    assert.equal(err.event, 'CONNECT_ERROR');
    assert.equal(remotesOf(client).size, 0);
    assert.equal(client.qp.state, QpState.ERR);
  } finally {
    n.close(lfd);
    destroySide(client);
    destroySide(fake);
  }
});

test('regions registered during the handshake (either side) reach the peer', OPTS, async () => {
  const client = makeSide();
  const server = makeSide();
  const address = cmAddress();
  const l = cm.listen(address);
  const rw = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;
  let clientLate: MemoryRegion | null = null;
  let serverLate: MemoryRegion | null = null;
  const accepted = nextEvent<cm.ConnectRequest>(l, 'CONNECT_REQUEST').then(([req]) => {
    clientLate = client.pd.registerMemory(4096, rw); // after the client's REQ and its MR_ADDs
    const p = req!.accept(server.qp);
    serverLate = server.pd.registerMemory(4096, rw); // after the REP and its MR_ADDs, before the RTU
    return p;
  });
  try {
    client.conn = await cm.connect(address, client.qp);
    server.conn = await accepted;
    const cl = clientLate as MemoryRegion | null;
    const sl = serverLate as MemoryRegion | null;
    assert.ok(cl && sl);
    // The peers' sockets have been read since: the regions are there without a fetch.
    await sleep(10);
    server.mr.buffer.set([9, 8, 7, 6]);
    server.qp.postSend({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: server.mr.addr, length: 4, lkey: server.mr.lkey }], rdma: { remoteAddr: cl.addr + 100, rkey: cl.rkey } });
    assert.equal((await pollN(server.cq, 1))[0]!.status, WcStatus.SUCCESS);
    assert.deepEqual([...cl.buffer.subarray(100, 104)], [9, 8, 7, 6]);
    client.mr.buffer.set([1, 2, 3, 4]);
    client.qp.postSend({ wrId: 2, opcode: WrOpcode.RDMA_WRITE, sendFlags: SendFlags.SIGNALED,
      sgList: [{ addr: client.mr.addr, length: 4, lkey: client.mr.lkey }], rdma: { remoteAddr: sl.addr + 200, rkey: sl.rkey } });
    assert.equal((await pollN(client.cq, 1))[0]!.status, WcStatus.SUCCESS);
    assert.deepEqual([...sl.buffer.subarray(200, 204)], [1, 2, 3, 4]);
  } finally {
    l.close();
    await teardown(client, clientLate === null ? [] : [clientLate]);
    await teardown(server, serverLate === null ? [] : [serverLate]);
  }
});

test('a peer that stops reading its socket: registerMemory never throws; the connection ends with the error', OPTS, async () => {
  const server = makeSide();
  const fake = makeSide();
  const { l, fd, accepted } = await fakeClientOf(cmAddress(), server, fake);
  const mrs: MemoryRegion[] = [];
  try {
    rawSend(fd, { type: CmType.RTU });
    server.conn = await accepted;
    let ended: Error | null | undefined;
    server.conn.once('DISCONNECTED', (e: Error | null) => { ended = e; });
    // The fake never reads: its socket fills with MR_ADDs until a send fails.
    for (let round = 0; round < 40 && ended === undefined; round++) {
      for (let i = 0; i < 50; i++) mrs.push(server.pd.registerMemory(64, Access.LOCAL_WRITE | Access.REMOTE_WRITE));
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(ended instanceof Error, `DISCONNECTED with an error after ${mrs.length} registrations (got ${String(ended)})`);
    assert.match((ended as Error & { code?: string }).code ?? '', /^(EAGAIN|ETOOMANYREFS|ENOBUFS)$/);
    assert.equal(server.qp.state, QpState.ERR);
    // Registering goes on working without a connection.
    mrs.push(server.pd.registerMemory(64, Access.LOCAL_WRITE));
    await rawDrain(fd);
  } finally {
    native().close(fd);
    l.close();
    await teardown(server, mrs);
    destroySide(fake);
  }
});
