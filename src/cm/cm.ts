/**
 * kbypass/cm: a connection manager modelled on rdma_cm. A server listens on an address; a client connects with
 * its QP and private data; the server's application accepts (with its own QP) or rejects. The two sides trade
 * what the peers need (QP numbers, the shared regions of their QPs, CQs and MRs) over a Unix socket, attach each
 * other's memory, and move both QPs to RTS — from an address to a connected QP in a few lines.
 *
 * Events use rdma_cm's names: a listener emits 'CONNECT_REQUEST'; a connection emits 'DISCONNECTED'; connect()
 * resolves at ESTABLISHED and rejects with a CmError whose `event` is 'REJECTED', 'UNREACHABLE' or
 * 'CONNECT_ERROR'.
 *
 * Addresses: a same-host address is a Unix socket path, or '@name' for a Linux abstract socket name. (Other
 * hosts' addresses come with a network provider.)
 *
 * Nothing a client or a peer sends can crash the process: a client whose set-up fails is a listener's
 * 'clientError' (reported only to whoever listens), a peer that breaks the protocol ends its connection with an
 * ERR_KBYPASS_PROTOCOL error ('DISCONNECTED', or a failed connect/accept). Every failure of a connect or accept
 * undoes what it did (the peer forgotten and detached, our QP out of RTS).
 */
import { EventEmitter } from 'node:events';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { invalidArgType, KbypassError, outOfRange } from '../errors';
import { debug } from '../diagnostics';
import { native, WATCH_READABLE, type WatchHandle } from '../native/binding';
import { closeAll, isEventfd } from '../channel/rendezvous';
import type { PeerCredentials } from '../channel/options';
import type { QueuePair } from '../verbs/api';
import { Access, QpAttrMask as M, QpState, QpType, Mtu } from '../verbs/constants';
import type { QpAttr } from '../verbs/qp-attr';
import { ShmQp } from '../verbs/shm/qp';
import { RemoteQp } from '../verbs/shm/remote';
import { LOCAL_LID } from '../verbs/shm/context';
import { CmLink, protocolError } from './link';
import { CM_FLAG_HAS_EVENT, CM_FLAG_HAS_SRQ, CmRejectReason, CmType, PDATA_LIMIT, type CmMessage } from './wire';

/** rdma_cm's Q_Key for UD (RDMA_UDP_QKEY). */
export const CM_UDP_QKEY = 0x01234567;

/** The client process of a request (SO_PEERCRED). */
export type CmPeer = PeerCredentials;

/**
 * Why a connect was REJECTED: the server's application said no ('application'), the listener's `authorize`
 * refused this client ('unauthorized'), nobody answered the request within the listener's `requestTimeout`
 * ('timeout'), or the server could not use the request ('invalid').
 */
export type CmRejectReasonName = 'application' | 'unauthorized' | 'timeout' | 'invalid' | 'unknown';
const REJECT_NAMES: readonly CmRejectReasonName[] = ['application', 'unauthorized', 'timeout', 'invalid'];
const REJECT_CODES: Record<CmRejectReasonName, string> = {
  application: 'ECONNREFUSED', unauthorized: 'EACCES', timeout: 'ETIMEDOUT', invalid: 'EPROTO', unknown: 'ECONNREFUSED',
};

/** A failed connect: `event` is rdma_cm's event name. */
export class CmError extends KbypassError {
  readonly event: 'REJECTED' | 'UNREACHABLE' | 'CONNECT_ERROR';
  /** The private data of a REJECTED. */
  readonly privateData: Uint8Array;
  /** Why a REJECTED came (`code` says the same: ECONNREFUSED, EACCES, ETIMEDOUT, EPROTO); null for other events. */
  readonly reason: CmRejectReasonName | null;
  constructor(code: string, event: CmError['event'], message: string, privateData: Uint8Array = new Uint8Array(0), cause?: unknown,
    reason: CmRejectReasonName | null = null) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.event = event;
    this.privateData = privateData;
    this.reason = reason;
    this.name = 'CmError';
  }
}

/** Options of a connection (both sides). */
export interface CmConnectionOptions {
  /** Up to 56 bytes (connect) / 196 (accept) / 148 (reject) for the peer. Default none. */
  privateData?: Uint8Array;
  /** How long the handshake may take, ms. Default 5000. */
  timeout?: number;
  /** RC: the RNR NAK timer code (0–31) this side's QP asks senders to wait. Default 12 (0.64 ms). */
  minRnrTimer?: number;
  /** RC: RNR retries (0–7; 7 = forever). Default 7. */
  rnrRetry?: number;
  /** RC: transport retries (0–7). Default 7. */
  retryCnt?: number;
}

interface Parsed { name: string; abstract: boolean }
function parseAddress(address: string): Parsed {
  if (typeof address !== 'string' || address.length === 0) throw new KbypassError('ERR_INVALID_ARG_TYPE', 'The "address" argument must be a non-empty string (a socket path, or @name)');
  if (address.startsWith('@')) return { name: address.slice(1), abstract: true };
  return { name: address, abstract: false };
}

function checkPdata(p: Uint8Array | undefined, type: number, what: string): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  if (!(p instanceof Uint8Array)) throw new KbypassError('ERR_INVALID_ARG_TYPE', `${what}: privateData must be a Uint8Array`);
  if (p.length > PDATA_LIMIT[type]!) throw new KbypassError('ERR_OUT_OF_RANGE', `${what}: privateData is ${p.length} bytes; at most ${PDATA_LIMIT[type]}`);
  return p;
}

/**
 * Who uses a QP: the connect or accept in progress with it (a Handshake), then its established connection until
 * that is disconnected. A QP belongs to one of them at a time; only its owner may move it to ERROR.
 */
const owners = new WeakMap<ShmQp, object>();

function checkQp(qp: unknown, what: string): ShmQp {
  if (!(qp instanceof ShmQp)) throw new KbypassError('ERR_INVALID_ARG_TYPE', `${what}: qp must be a QP of device shm0`);
  const owner = owners.get(qp);
  if (owner !== undefined) {
    throw new KbypassError('EBUSY', owner instanceof CmConnection
      ? `${what}: QP ${qp.qpNum} is still used by an established connection; disconnect it (and wait for 'DISCONNECTED') before connecting the QP again`
      : `${what}: QP ${qp.qpNum} is in a connect or accept that has not finished yet`);
  }
  if (qp.state !== QpState.RESET && qp.state !== QpState.INIT) throw new KbypassError('EINVAL', `${what}: the QP must be in RESET or INIT, not state ${qp.state}`);
  return qp;
}

/** The fds describing our QP, and the flags saying which optional ones are there. */
function qpFds(qp: ShmQp): { fds: number[]; flags: number } {
  const fds = [qp.region.fd];
  let flags = 0;
  if (qp.srq !== null) { fds.push(qp.srq.region.fd); flags |= CM_FLAG_HAS_SRQ; }
  qp.recvCq.ring.multiProducer = true; // the peer's requester will push into it from now on
  fds.push(qp.recvCq.region.fd);
  if (qp.recvCq.channel !== null) { fds.push(qp.recvCq.channel.fd); flags |= CM_FLAG_HAS_EVENT; }
  fds.push(qp.pd.tableRegion.fd);
  return { fds, flags };
}

function attach(m: CmMessage, fds: number[]): RemoteQp {
  const need = 3 + ((m.flags & CM_FLAG_HAS_SRQ) ? 1 : 0) + ((m.flags & CM_FLAG_HAS_EVENT) ? 1 : 0);
  if (fds.length !== need) { closeAll(fds); throw new KbypassError('ERR_KBYPASS_PROTOCOL', `expected ${need} fds with the peer's QP, got ${fds.length}`); }
  let i = 0;
  const qp = fds[i++]!;
  const srq = (m.flags & CM_FLAG_HAS_SRQ) ? fds[i++]! : -1;
  const recvCq = fds[i++]!;
  const recvCqEvent = (m.flags & CM_FLAG_HAS_EVENT) ? fds[i++]! : -1;
  const mrTable = fds[i++]!;
  // We write to it on every event we owe the peer: it must be a non-blocking eventfd, or a hostile peer could
  // make our postSend write into some other file, or block.
  if (recvCqEvent >= 0 && !isEventfd(recvCqEvent)) {
    closeAll(fds);
    throw new KbypassError('ERR_KBYPASS_PROTOCOL', "the peer's completion channel is not a non-blocking eventfd");
  }
  let remote: RemoteQp;
  try {
    remote = new RemoteQp(m.lid, { qp, srq, recvCq, recvCqEvent, mrTable });
  } catch (e) {
    if (recvCqEvent >= 0) closeAll([recvCqEvent]);
    throw protocolError(e, 'the peer\'s QP could not be attached');
  }
  if (remote.type !== m.qpType) {
    remote.detach();
    throw new KbypassError('ERR_KBYPASS_PROTOCOL', `the peer says its QP is type ${m.qpType}, but its QP block says ${remote.type}`);
  }
  return remote;
}

/** RESET → INIT with what the CM uses (all remote access for RC/UC; rdma_cm's Q_Key for UD). */
export function initQp(qp: QueuePair): void {
  if (qp.state !== QpState.RESET) return;
  const a: QpAttr = { qpState: QpState.INIT, pkeyIndex: 0, portNum: 1 };
  let mask = M.STATE | M.PKEY_INDEX | M.PORT;
  if (qp.qpType === QpType.UD) { a.qkey = CM_UDP_QKEY; mask |= M.QKEY; } else {
    a.qpAccessFlags = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | (qp.qpType === QpType.RC ? Access.REMOTE_ATOMIC : 0);
    mask |= M.ACCESS_FLAGS;
  }
  qp.modify(a, mask);
}

/** INIT → RTR → RTS towards `remote`, with the attributes each transition requires for the QP's type. */
function toRts(qp: ShmQp, remote: RemoteQp, psn: number, o: CmConnectionOptions): void {
  initQp(qp);
  const t = qp.qpType;
  if (t === QpType.UD) {
    qp.modify({ qpState: QpState.RTR }, M.STATE);
    qp.modify({ qpState: QpState.RTS, sqPsn: psn }, M.STATE | M.SQ_PSN);
    return;
  }
  const rtr: QpAttr = { qpState: QpState.RTR, ahAttr: { dlid: remote.lid, portNum: 1 }, pathMtu: Mtu.MTU_4096, destQpNum: remote.qpn, rqPsn: 0 };
  let mask = M.STATE | M.AV | M.PATH_MTU | M.DEST_QPN | M.RQ_PSN;
  if (t === QpType.RC) {
    rtr.maxDestRdAtomic = 16;
    rtr.minRnrTimer = o.minRnrTimer ?? 12;
    mask |= M.MAX_DEST_RD_ATOMIC | M.MIN_RNR_TIMER;
  }
  qp.modify(rtr, mask);
  const rts: QpAttr = { qpState: QpState.RTS, sqPsn: psn };
  let rmask = M.STATE | M.SQ_PSN;
  if (t === QpType.RC) {
    Object.assign(rts, { timeout: 14, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7, maxRdAtomic: 16 });
    rmask |= M.TIMEOUT | M.RETRY_CNT | M.RNR_RETRY | M.MAX_QP_RD_ATOMIC;
  }
  qp.modify(rts, rmask);
}

/**
 * Tell the peer about each region our PD registers from now on. Never throws into the user's registerMemory: if
 * the message cannot go (EAGAIN: the peer is not reading its socket), the link ends with that error on the next
 * tick (our side's connect/accept fails or the connection is DISCONNECTED; the peer sees DISCONNECTED).
 */
function subscribe(qp: ShmQp, link: CmLink): () => void {
  const pd = qp.pd;
  const listener = (id: number, fd: number): void => {
    if (link.ended) return;
    try {
      link.send({ type: CmType.MR_ADD, value: id }, [fd]);
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'EIO';
      link.abort(new KbypassError(code, `could not pass region ${id} to the peer: ${(e as Error).message}`, { cause: e }));
    }
  };
  pd.listeners.add(listener);
  return () => { pd.listeners.delete(listener); };
}

/**
 * Undo a peer's attachment (every failed connect or accept, and a connection's end): forget the peer in our
 * context (if that entry is still this peer's), move our QP to ERROR if `owner` still owns it and it is at
 * `fromState` or beyond (its outstanding work is flushed), and detach the peer's memory.
 */
function release(qp: ShmQp, remote: RemoteQp | null, owner: object, fromState: number): void {
  const ctx = qp.pd.context;
  if (remote !== null) {
    const key = ctx.remoteKey(remote.lid, remote.qpn);
    if (ctx.remotes.get(key) === remote) ctx.remotes.delete(key);
  }
  if (owners.get(qp) === owner) {
    owners.delete(qp);
    if (qp.state >= fromState && qp.state !== QpState.RESET && qp.state !== QpState.ERR) {
      try { qp.modify({ qpState: QpState.ERR }, M.STATE); } catch { /* destroyed meanwhile */ }
    }
  }
  remote?.detach();
}

/** A connect or accept in progress: what it did so far, so that one undo() takes all of it back. */
class Handshake {
  readonly qp: ShmQp;
  readonly link: CmLink;
  remote: RemoteQp | null = null;
  /** True once the connect or accept has resolved or failed. */
  settled = false;
  /** The handshake's deadline. */
  timer: NodeJS.Timeout | undefined;
  #unlisten: (() => void) | null = null;

  constructor(qp: ShmQp, link: CmLink) {
    this.qp = qp;
    this.link = link;
    owners.set(qp, this);
  }

  /** Settle as a success: stop the deadline; false if it had already settled. */
  succeed(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    return true;
  }

  /** Settle as a failure (once): stop the deadline, undo everything, reject, then end the link. */
  fail(e: CmError, reject: (e: CmError) => void): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.undo();
    reject(e);
    this.link.end(null);
  }

  /** Send an MR_ADD for each region of our PD, and one for each registered from now on (subscribed first). */
  advertise(): void {
    const pd = this.qp.pd;
    this.#unlisten = subscribe(this.qp, this.link);
    for (let id = 1; id < pd.regions.length; id++) {
      const r = pd.regions[id];
      if (r !== undefined && r.fd >= 0) this.link.send({ type: CmType.MR_ADD, value: id }, [r.fd]);
    }
  }

  /** Make the peer's QP known to our context (our QP's RTR finds it there); its late regions come from the link. */
  bind(remote: RemoteQp): void {
    this.remote = remote;
    const ctx = this.qp.pd.context;
    ctx.remotes.set(ctx.remoteKey(remote.lid, remote.qpn), remote);
    const link = this.link;
    remote.fetchRegion = (id) => { link.pump(); return remote.regions[id] !== undefined; };
  }

  /** The PD subscription, for the connection that takes over. */
  handOver(): () => void {
    const u = this.#unlisten ?? (() => {});
    this.#unlisten = null;
    return u;
  }

  /**
   * Take back everything. Our QP goes to ERROR only if it was bound to the peer (RTR or beyond): a QP still in
   * INIT (e.g. after REJECTED) is bound to nothing and may connect again, its posted receives kept.
   */
  undo(): void {
    this.#unlisten?.();
    this.#unlisten = null;
    release(this.qp, this.remote, this, QpState.RTR);
  }
}

/** The error of a handshake whose link ended. */
function endError(what: string, err: Error | null, gone: string): CmError {
  const code = (err as { code?: string } | null)?.code ?? 'ECONNRESET';
  return new CmError(code, 'CONNECT_ERROR', `${what}: ${err === null ? gone : err.message}`, undefined, err ?? undefined);
}

/** The error of a step of a handshake that threw. */
function stepError(what: string, e: unknown): CmError {
  if (e instanceof CmError) return e;
  return new CmError((e as { code?: string }).code ?? 'EIO', 'CONNECT_ERROR', `${what}: ${(e as Error)?.message ?? String(e)}`, undefined, e);
}

export interface CmConnection {
  /** The connection ended: `error` is null for an orderly disconnect (either side), else why (the peer died,
   *  broke the protocol — ERR_KBYPASS_PROTOCOL —, or could not be told about a new region). */
  on(event: 'DISCONNECTED', listener: (error: Error | null) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'DISCONNECTED', listener: (error: Error | null) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** An established connection: our QP, attached to the peer's. */
export class CmConnection extends EventEmitter {
  readonly qp: QueuePair;
  /** The peer's private data (from its connect or accept). */
  readonly privateData: Uint8Array;
  /** The peer's QP as the CM learned it (UD sends use lid and qpn). */
  readonly remote: { lid: number; qpn: number; qkey: number };
  readonly #link: CmLink;
  readonly #remoteQp: RemoteQp;
  readonly #unlisten: () => void;
  #state: 'established' | 'disconnecting' | 'disconnected' = 'established';
  #timer: NodeJS.Timeout | null = null;

  /** @internal */
  constructor(qp: ShmQp, link: CmLink, remote: RemoteQp, privateData: Uint8Array, unlisten: () => void) {
    super();
    this.qp = qp;
    this.privateData = privateData;
    this.remote = { lid: remote.lid, qpn: remote.qpn, qkey: remote.qkey };
    this.#link = link;
    this.#remoteQp = remote;
    this.#unlisten = unlisten;
    owners.set(qp, this);
    link.handlers((m, fds) => this.#onMessage(m, fds), (err) => this.#finish(err));
    link.ref(false); // an established connection does not keep the process alive by itself
  }

  get state(): string { return this.#state; }

  /**
   * False once the peer is known to be gone: the connection ended, or (one non-blocking peek at the socket, for
   * busy loops that keep the event loop from running) the peer's end of the socket is closed.
   */
  peerAlive(): boolean {
    return this.#state !== 'disconnected' && !this.#link.ended && native().peerAlive(this.#link.fd);
  }

  #onMessage(m: CmMessage, fds: number[]): void {
    if (m.type === CmType.MR_ADD) {
      if (fds.length !== 1) { closeAll(fds); throw new KbypassError('ERR_KBYPASS_PROTOCOL', `an MR_ADD came with ${fds.length} fds`); }
      this.#remoteQp.addRegion(m.value, fds[0]!); // a bad id or fd throws: the link ends with ERR_KBYPASS_PROTOCOL
      return;
    }
    closeAll(fds);
    if (m.type === CmType.DREQ) {
      try { this.#link.send({ type: CmType.DREP }); } catch { /* gone */ }
      this.#finish(null);
    } else if (m.type === CmType.DREP) {
      this.#finish(null);
    }
  }

  #finish(err: Error | null): void {
    if (this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    this.#unlisten();
    // rdma_disconnect moves the QP to ERROR (outstanding work completes with WR_FLUSH_ERR) — unless the QP has
    // passed on to another connection since.
    release(this.qp as ShmQp, this.#remoteQp, this, QpState.INIT);
    this.#link.end(null);
    // The peer may have died between claiming a slot of our receive CQ and committing it: once any write it had in
    // flight is surely over, fill such holes so the CQ does not stall (cq-ring.ts, fillHoles).
    const cq = (this.qp as ShmQp).recvCq;
    setTimeout(() => cq.ring.fillHoles(), 10).unref();
    // On the next tick: a listener's exception must not land in the link's message handling.
    process.nextTick(() => this.emit('DISCONNECTED', err));
  }

  /** rdma_disconnect: the QP goes to ERROR; resolves when the peer answered or has gone (at most 1 s). */
  disconnect(): Promise<void> {
    if (this.#state === 'disconnected') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('DISCONNECTED', () => resolve()));
    if (this.#state === 'established') {
      this.#state = 'disconnecting';
      this.#link.ref(true);
      try { this.#link.send({ type: CmType.DREQ }); } catch { this.#finish(null); return done; }
      this.#timer = setTimeout(() => this.#finish(null), 1000);
      this.#timer.unref();
    }
    return done;
  }
}

/** A client's request, as the listener's 'CONNECT_REQUEST' hands it over: accept or reject it once. */
export class ConnectRequest {
  /** The client's private data. */
  readonly privateData: Uint8Array;
  /** The client process (SO_PEERCRED). */
  readonly peer: CmPeer;
  /** The client QP's type (QpType.*): accept with a QP of the same type. */
  readonly qpType: number;
  readonly #link: CmLink;
  readonly #remote: RemoteQp;
  readonly #timeout: number;
  readonly #timer: NodeJS.Timeout;
  #state: 'pending' | 'accepted' | 'rejected' | 'timed-out' | 'gone' = 'pending';

  /** @internal */
  constructor(link: CmLink, m: CmMessage, remote: RemoteQp, peer: CmPeer, timeout: number) {
    this.#link = link;
    this.#remote = remote;
    this.privateData = m.privateData;
    this.peer = peer;
    this.qpType = m.qpType;
    this.#timeout = timeout;
    // Unanswered, a request would keep its socket, the client's mappings and its eventfd for ever.
    this.#timer = setTimeout(() => {
      debug('cm: request from pid %d not answered within %d ms: rejected', peer.pid, timeout);
      this.#refuse(CmRejectReason.TIMEOUT, new Uint8Array(0), 'timed-out');
    }, timeout);
    link.handlers((mm, fds) => {
      if (mm.type !== CmType.MR_ADD) { closeAll(fds); return; }
      if (fds.length !== 1) { closeAll(fds); throw new KbypassError('ERR_KBYPASS_PROTOCOL', `an MR_ADD came with ${fds.length} fds`); }
      remote.addRegion(mm.value, fds[0]!);
    }, (err) => {
      clearTimeout(this.#timer);
      if (this.#state !== 'pending') return;
      this.#state = 'gone';
      remote.detach();
      debug('cm: the client (pid %d) of an unanswered request went away%s', peer.pid, err === null ? '' : `: ${err.message}`);
    });
  }

  /** Why this request cannot be answered any more (null: it can). */
  #closed(what: string): Error | null {
    switch (this.#state) {
      case 'pending': return null;
      case 'gone': return new CmError('ECONNRESET', 'CONNECT_ERROR', `${what}: the client went away`);
      case 'timed-out': return new KbypassError('ETIMEDOUT', `${what}: this request was not answered within the listener's requestTimeout (${this.#timeout} ms) and was rejected`);
      default: return new KbypassError('EINVAL', `${what}: this request was already answered`);
    }
  }

  #refuse(reason: number, pdata: Uint8Array, state: 'rejected' | 'timed-out'): void {
    if (this.#state !== 'pending') return;
    this.#state = state;
    clearTimeout(this.#timer);
    try { this.#link.send({ type: CmType.REJ, value: reason, privateData: pdata }); } catch { /* client gone */ }
    this.#remote.detach();
    this.#link.end(null);
  }

  /** rdma_accept: attach, move `qp` to RTS, answer; resolves at ESTABLISHED (the client's RTU). */
  accept(qp: QueuePair, options: CmConnectionOptions = {}): Promise<CmConnection> {
    const closed = this.#closed('accept');
    if (closed !== null) return Promise.reject(closed);
    const q = checkQp(qp, 'accept');
    const pdata = checkPdata(options.privateData, CmType.REP, 'accept');
    if (q.qpType !== this.qpType) return Promise.reject(new KbypassError('EINVAL', `the client's QP is type ${this.qpType}; accept with a QP of the same type`));
    this.#state = 'accepted';
    clearTimeout(this.#timer);
    const link = this.#link;
    const remote = this.#remote;
    const hs = new Handshake(q, link);
    return new Promise<CmConnection>((resolve, reject) => {
      const fail = (e: CmError): void => hs.fail(e, reject);
      link.handlers((m, fds) => {
        if (m.type === CmType.MR_ADD) {
          if (fds.length !== 1) { closeAll(fds); throw new KbypassError('ERR_KBYPASS_PROTOCOL', `an MR_ADD came with ${fds.length} fds`); }
          remote.addRegion(m.value, fds[0]!);
          return;
        }
        closeAll(fds);
        if (m.type !== CmType.RTU || !hs.succeed()) return;
        resolve(new CmConnection(q, link, remote, this.privateData, hs.handOver()));
      }, (err) => fail(endError('accept', err, 'the client went away')));
      try {
        hs.bind(remote);
        const psn = Math.floor(Math.random() * 0xffffff);
        toRts(q, remote, psn, options);
        const { fds, flags } = qpFds(q);
        link.send({ type: CmType.REP, qpn: q.qpNum, qpType: q.qpType, psn, lid: LOCAL_LID, flags, privateData: pdata }, fds);
        hs.advertise();
      } catch (e) {
        fail(stepError('accept', e));
        return;
      }
      if (!hs.settled) {
        const ms = options.timeout ?? 5000;
        hs.timer = setTimeout(() => fail(new CmError('ETIMEDOUT', 'CONNECT_ERROR', `accept: the client never confirmed (RTU) within ${ms} ms`)), ms);
      }
    });
  }

  /**
   * rdma_reject, with optional private data (≤ 148 bytes) for the client's REJECTED. Throws EINVAL if the request
   * was already accepted or rejected; does nothing if the client has gone or the request timed out meanwhile.
   */
  reject(privateData?: Uint8Array): void {
    if (this.#state === 'gone' || this.#state === 'timed-out') return;
    if (this.#state !== 'pending') throw new KbypassError('EINVAL', 'this request was already answered');
    const pdata = checkPdata(privateData, CmType.REJ, 'reject');
    this.#refuse(CmRejectReason.APPLICATION, pdata, 'rejected');
  }
}

/** Options of a listener. */
export interface CmListenOptions {
  /** Permissions of a path socket. Default 0o600 (this user only). */
  mode?: number;
  /** listen(2) backlog. Default 128. */
  backlog?: number;
  /**
   * How long a CONNECT_REQUEST may wait for accept() or reject(), in ms. After that it is rejected (the client's
   * connect fails with REJECTED, reason 'timeout', code ETIMEDOUT) and its resources are released. Default 5000.
   */
  requestTimeout?: number;
  /**
   * Decide whether a client may connect, from its credentials (SO_PEERCRED). A client it refuses (it returns
   * anything but `true`, or throws — then the error is a 'clientError' too) is rejected before anything it sent
   * is mapped: its connect fails with REJECTED, reason 'unauthorized', code EACCES.
   *
   * Default (as for channels): for a path socket, any client that could open the socket file (its permissions,
   * `mode`, decided); for an abstract name ('@name'), which has no permissions and which any local user can
   * reach, only processes of this user (same uid) and root.
   */
  authorize?: (peer: CmPeer) => boolean;
}

interface ResolvedListenOptions {
  mode: number;
  backlog: number;
  requestTimeout: number;
  authorize: ((peer: CmPeer) => boolean) | undefined;
}

function intOption(o: Record<string, unknown>, name: string, min: number, max: number, dflt: number): number {
  const v = o[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw invalidArgType(`options.${name}`, 'of type number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(`options.${name}`, `an integer >= ${min} and <= ${max}`, v);
  return v;
}

function resolveListenOptions(options: unknown): ResolvedListenOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as Record<string, unknown>;
  const authorize = o['authorize'];
  if (authorize !== undefined && typeof authorize !== 'function') throw invalidArgType('options.authorize', 'of type function', authorize);
  return {
    mode: intOption(o, 'mode', 0, 0o777, 0o600),
    backlog: intOption(o, 'backlog', 1, 65535, 128),
    requestTimeout: intOption(o, 'requestTimeout', 1, 2 ** 31 - 1, 5000),
    authorize: authorize as ResolvedListenOptions['authorize'],
  };
}

/** How long a client may take to send its REQ after connecting. */
const REQ_TIMEOUT_MS = 5000;
/** How long the listener stops accepting after accept(2) fails (e.g. EMFILE). */
const ACCEPT_BACKOFF_MS = 100;

export interface CmListener {
  on(event: 'CONNECT_REQUEST', listener: (req: ConnectRequest) => void): this;
  /** A client's set-up failed (a bad REQ, fds that cannot be mapped, …); that client was dropped or rejected. */
  on(event: 'clientError', listener: (error: Error, peer: CmPeer | null) => void): this;
  /** The listening socket itself failed (accept(2): EMFILE…); the listener pauses briefly and goes on. */
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'CONNECT_REQUEST', listener: (req: ConnectRequest) => void): this;
  once(event: 'clientError', listener: (error: Error, peer: CmPeer | null) => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * rdma_listen: emits 'CONNECT_REQUEST' (ConnectRequest). A client whose set-up fails is a 'clientError' (emitted
 * only if someone listens, else traced with NODE_DEBUG=kbypass); 'error' is only for the listening socket itself
 * (accept(2) failing), and likewise emitted only if someone listens. Neither ever stops the listener.
 */
export class CmListener extends EventEmitter {
  readonly address: string;
  readonly #fd: number;
  readonly #parsed: Parsed;
  readonly #opts: ResolvedListenOptions;
  /** Clients that connected and have not sent their REQ yet, with their timers. */
  readonly #pending = new Map<CmLink, NodeJS.Timeout>();
  #watch: WatchHandle | null;
  #backoff: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(address: string, options: CmListenOptions = {}) {
    super();
    const p = parseAddress(address);
    this.#opts = resolveListenOptions(options);
    this.address = address;
    this.#parsed = p;
    const n = native();
    if (!p.abstract && existsSync(p.name) && lstatSync(p.name).isSocket()) {
      // A socket file left by a dead listener: take it over if nobody answers on it.
      try { n.close(n.unixConnect(p.name, false)); throw new KbypassError('EADDRINUSE', `${p.name}: another listener is using it`); } catch (e) {
        if ((e as { code?: string }).code === 'ECONNREFUSED') unlinkSync(p.name); else throw e;
      }
    }
    this.#fd = n.unixListen(p.name, p.abstract, this.#opts.mode, this.#opts.backlog);
    this.#watch = n.watch(this.#fd, WATCH_READABLE, () => this.#accept());
  }

  #accept(): void {
    const n = native();
    for (;;) {
      if (this.#closed) return;
      let fd: number;
      try {
        fd = n.unixAccept(this.#fd);
      } catch (e) {
        // EMFILE, ENFILE, ENOMEM…: the client stays queued and the socket readable. Pause instead of spinning,
        // and tell whoever listens (never an unhandled 'error' that would take the process down).
        if (this.listenerCount('error') > 0) this.emit('error', e);
        else debug('cm %s: accept failed: %s', this.address, (e as Error).message);
        this.#backOff();
        return;
      }
      if (fd < 0) return;
      this.#greet(fd);
    }
  }

  #backOff(): void {
    if (this.#watch === null) return;
    native().watchStop(this.#watch);
    this.#watch = null;
    this.#backoff = setTimeout(() => {
      this.#backoff = null;
      if (!this.#closed) this.#watch = native().watch(this.#fd, WATCH_READABLE, () => this.#accept());
    }, ACCEPT_BACKOFF_MS);
  }

  /** Report a client's failed set-up: 'clientError' if someone listens (on the next tick), else a trace. */
  #clientError(e: unknown, peer: CmPeer | null): void {
    const err = e instanceof Error ? e : new KbypassError('ERR_KBYPASS_PROTOCOL', String(e));
    process.nextTick(() => {
      if (this.listenerCount('clientError') > 0) this.emit('clientError', err, peer);
      else debug('cm %s: client pid %s: %s', this.address, peer?.pid ?? '?', err.message);
    });
  }

  #greet(fd: number): void {
    let peer: CmPeer;
    try {
      const [pid, uid, gid] = native().peerCred(fd);
      peer = { pid, uid, gid };
    } catch (e) {
      closeAll([fd]);
      this.#clientError(e, null);
      return;
    }
    let link: CmLink;
    try {
      link = new CmLink(fd, (m, fds) => this.#onRequest(link, peer, m, fds), (err) => {
        this.#forget(link);
        // Ended before its REQ was taken: a bad first message, or a client that left (not an error).
        if (err !== null) this.#clientError(err, peer);
      });
    } catch (e) {
      closeAll([fd]);
      this.#clientError(e, peer);
      return;
    }
    this.#pending.set(link, setTimeout(() => {
      debug('cm %s: client pid %d sent no request within %d ms', this.address, peer.pid, REQ_TIMEOUT_MS);
      link.end(null);
    }, REQ_TIMEOUT_MS));
  }

  #forget(link: CmLink): void {
    const t = this.#pending.get(link);
    if (t !== undefined) { clearTimeout(t); this.#pending.delete(link); }
  }

  #authorized(peer: CmPeer): boolean {
    const a = this.#opts.authorize;
    if (a !== undefined) {
      try { return a(peer) === true; } catch (e) { this.#clientError(e, peer); return false; }
    }
    if (!this.#parsed.abstract) return true; // the socket file's permissions decided
    const me = process.getuid?.() ?? -1;
    return peer.uid === me || peer.uid === 0;
  }

  /** The client's first message (throws end its link with ERR_KBYPASS_PROTOCOL, a 'clientError'). */
  #onRequest(link: CmLink, peer: CmPeer, m: CmMessage, fds: number[]): void {
    this.#forget(link);
    if (m.type !== CmType.REQ) { closeAll(fds); throw new KbypassError('ERR_KBYPASS_PROTOCOL', `expected a REQ, got a message of type ${m.type}`); }
    if (!this.#authorized(peer)) {
      closeAll(fds); // nothing of a refused client is mapped
      debug('cm %s: client pid %d uid %d refused (unauthorized)', this.address, peer.pid, peer.uid);
      refuseLink(link, CmRejectReason.UNAUTHORIZED);
      return;
    }
    let remote: RemoteQp;
    try {
      remote = attach(m, fds);
    } catch (e) {
      refuseLink(link, CmRejectReason.INVALID);
      this.#clientError(e, peer);
      return;
    }
    const req = new ConnectRequest(link, m, remote, peer, this.#opts.requestTimeout);
    // On the next tick: the application's handler runs outside the link's message handling (its exceptions are
    // its own). Nobody to answer: rejected at once (reject() does nothing if the client left meanwhile).
    process.nextTick(() => {
      if (this.listenerCount('CONNECT_REQUEST') === 0) req.reject(); else this.emit('CONNECT_REQUEST', req);
    });
  }

  /** Stop listening (established connections, and requests already handed over, stay). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = native();
    if (this.#backoff !== null) { clearTimeout(this.#backoff); this.#backoff = null; }
    if (this.#watch !== null) { n.watchStop(this.#watch); this.#watch = null; }
    n.close(this.#fd);
    for (const link of [...this.#pending.keys()]) link.end(null);
    if (!this.#parsed.abstract) { try { unlinkSync(this.#parsed.name); } catch { /* gone */ } }
  }
}

/** Answer a client with REJ (`reason`) and drop it. */
function refuseLink(link: CmLink, reason: number): void {
  try { link.send({ type: CmType.REJ, value: reason }); } catch { /* gone */ }
  link.end(null);
}

/** rdma_listen on `address`. */
export function listen(address: string, options?: CmListenOptions): CmListener {
  return new CmListener(address, options);
}

/** rdma_connect: resolves with the connection at ESTABLISHED; rejects with a CmError (REJECTED, UNREACHABLE, CONNECT_ERROR). */
export function connect(address: string, qp: QueuePair, options: CmConnectionOptions = {}): Promise<CmConnection> {
  const p = parseAddress(address);
  const q = checkQp(qp, 'connect');
  const pdata = checkPdata(options.privateData, CmType.REQ, 'connect');
  const n = native();
  let fd: number;
  try {
    fd = n.unixConnect(p.name, p.abstract);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'ECONNREFUSED';
    return Promise.reject(new CmError(code, 'UNREACHABLE', `connect ${address}: ${code}`, undefined, e));
  }
  const what = `connect ${address}`;
  return new Promise<CmConnection>((resolve, reject) => {
    let link: CmLink;
    let hs: Handshake;
    const fail = (e: CmError): void => hs.fail(e, reject);
    const onMessage = (m: CmMessage, fds: number[]): void => {
      if (m.type === CmType.MR_ADD) {
        const remote = hs.remote;
        if (remote === null || fds.length !== 1) {
          closeAll(fds);
          throw new KbypassError('ERR_KBYPASS_PROTOCOL', remote === null ? 'an MR_ADD before the REP' : `an MR_ADD came with ${fds.length} fds`);
        }
        remote.addRegion(m.value, fds[0]!);
        return;
      }
      if (m.type === CmType.REJ) {
        closeAll(fds);
        const reason = REJECT_NAMES[m.value] ?? 'unknown';
        fail(new CmError(REJECT_CODES[reason], 'REJECTED', `${what}: rejected by the server${reason === 'application' ? '' : ` (${reason})`}`,
          m.privateData, undefined, reason));
        return;
      }
      if (m.type !== CmType.REP || hs.settled || hs.remote !== null) { closeAll(fds); return; }
      let remote: RemoteQp;
      try {
        remote = attach(m, fds);
        hs.bind(remote);
        // The server sends its MR_ADDs right after REP: take those already here before going on.
        link.pump();
        toRts(q, remote, q.qpNum & 0xffffff, options);
        link.send({ type: CmType.RTU });
      } catch (e) {
        fail(stepError(what, e));
        return;
      }
      if (hs.succeed()) resolve(new CmConnection(q, link, remote, m.privateData, hs.handOver()));
    };
    try {
      link = new CmLink(fd, onMessage, (err) => fail(endError(what, err, 'the server closed the connection')));
    } catch (e) {
      closeAll([fd]);
      reject(stepError(what, e));
      return;
    }
    hs = new Handshake(q, link);
    const ms = options.timeout ?? 5000;
    hs.timer = setTimeout(() => fail(new CmError('ETIMEDOUT', 'UNREACHABLE', `${what}: no answer within ${ms} ms`)), ms);
    try {
      initQp(q);
      const { fds, flags } = qpFds(q);
      link.send({ type: CmType.REQ, qpn: q.qpNum, qpType: q.qpType, psn: q.qpNum & 0xffffff, lid: LOCAL_LID, flags, privateData: pdata }, fds);
      hs.advertise();
    } catch (e) {
      const code = (e as { code?: string }).code;
      // The server already closed (it refused us): its REJ, or the end of the stream, is on its way in and
      // says why better than this.
      if (code === 'EPIPE' || code === 'ECONNRESET') return;
      fail(stepError(what, e));
    }
  });
}
