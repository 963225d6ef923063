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
 */
import { EventEmitter } from 'node:events';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { KbypassError } from '../errors';
import { native, WATCH_READABLE, type WatchHandle } from '../native/binding';
import { closeAll } from '../channel/rendezvous';
import type { QueuePair } from '../verbs/api';
import { Access, QpAttrMask as M, QpState, QpType, Mtu } from '../verbs/constants';
import type { QpAttr } from '../verbs/qp-attr';
import { ShmQp } from '../verbs/shm/qp';
import { RemoteQp } from '../verbs/shm/remote';
import { LOCAL_LID } from '../verbs/shm/context';
import { CmLink } from './link';
import { CM_FLAG_HAS_EVENT, CM_FLAG_HAS_SRQ, CmType, PDATA_LIMIT, type CmMessage } from './wire';

/** rdma_cm's Q_Key for UD (RDMA_UDP_QKEY). */
export const CM_UDP_QKEY = 0x01234567;

/** A failed connect: `event` is rdma_cm's event name. */
export class CmError extends KbypassError {
  readonly event: 'REJECTED' | 'UNREACHABLE' | 'CONNECT_ERROR';
  /** The private data of a REJECTED. */
  readonly privateData: Uint8Array;
  constructor(code: string, event: CmError['event'], message: string, privateData: Uint8Array = new Uint8Array(0), cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.event = event;
    this.privateData = privateData;
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

function checkQp(qp: unknown, what: string): ShmQp {
  if (!(qp instanceof ShmQp)) throw new KbypassError('ERR_INVALID_ARG_TYPE', `${what}: qp must be a QP of device shm0`);
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
  try {
    return new RemoteQp(m.lid, { qp, srq, recvCq, recvCqEvent, mrTable });
  } catch (e) {
    if (recvCqEvent >= 0) closeAll([recvCqEvent]);
    throw e;
  }
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

  /** @internal */
  constructor(qp: ShmQp, link: CmLink, remote: RemoteQp, privateData: Uint8Array) {
    super();
    this.qp = qp;
    this.privateData = privateData;
    this.remote = { lid: remote.lid, qpn: remote.qpn, qkey: remote.qkey };
    this.#link = link;
    this.#remoteQp = remote;
    link.handlers((m, fds) => this.#onMessage(m, fds), (err) => this.#onEnd(err));
    const pd = qp.pd;
    const listener = (id: number, fd: number) => { if (!link.ended) link.send({ type: CmType.MR_ADD, value: id }, [fd]); };
    pd.listeners.add(listener);
    this.#unlisten = () => pd.listeners.delete(listener);
    remote.fetchRegion = (id) => { link.pump(); return remote.regions[id] !== undefined; };
    link.ref(false); // an established connection does not keep the process alive by itself
  }

  get state(): string { return this.#state; }

  #onMessage(m: CmMessage, fds: number[]): void {
    if (m.type === CmType.MR_ADD && fds.length === 1) { this.#remoteQp.addRegion(m.value, fds[0]!); return; }
    closeAll(fds);
    if (m.type === CmType.DREQ) {
      try { this.#link.send({ type: CmType.DREP }); } catch { /* gone */ }
      this.#finish(null);
    } else if (m.type === CmType.DREP) {
      this.#finish(null);
    }
  }

  #onEnd(err: Error | null): void { this.#finish(err); }

  #finish(err: Error | null): void {
    if (this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    this.#unlisten();
    const ctx = (this.qp as ShmQp).pd.context;
    const key = ctx.remoteKey(this.#remoteQp.lid, this.#remoteQp.qpn);
    if (ctx.remotes.get(key) === this.#remoteQp) ctx.remotes.delete(key);
    this.#remoteQp.detach();
    const qp = this.qp as ShmQp;
    // rdma_disconnect moves the QP to ERROR: outstanding work completes with WR_FLUSH_ERR.
    if (qp.state !== QpState.RESET && qp.state !== QpState.ERR) {
      try { qp.modify({ qpState: QpState.ERR }, M.STATE); } catch { /* destroyed */ }
    }
    this.#link.end(null);
    this.emit('DISCONNECTED', err);
  }

  /** rdma_disconnect: the QP goes to ERROR; resolves when the peer answered or has gone (at most 1 s). */
  disconnect(): Promise<void> {
    if (this.#state === 'disconnected') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('DISCONNECTED', () => resolve()));
    if (this.#state === 'established') {
      this.#state = 'disconnecting';
      this.#link.ref(true);
      try { this.#link.send({ type: CmType.DREQ }); } catch { this.#finish(null); }
      const t = setTimeout(() => this.#finish(null), 1000);
      t.unref();
      void done.then(() => clearTimeout(t));
    }
    return done;
  }
}

/** A client's request, as the listener's 'CONNECT_REQUEST' hands it over: accept or reject it once. */
export class ConnectRequest {
  /** The client's private data. */
  readonly privateData: Uint8Array;
  /** The client process (SO_PEERCRED). */
  readonly peer: { pid: number; uid: number; gid: number };
  /** The client QP's type (QpType.*): accept with a QP of the same type. */
  readonly qpType: number;
  readonly #link: CmLink;
  readonly #remote: RemoteQp;
  #answered = false;

  /** @internal */
  constructor(link: CmLink, m: CmMessage, remote: RemoteQp, peer: { pid: number; uid: number; gid: number }) {
    this.#link = link;
    this.#remote = remote;
    this.privateData = m.privateData;
    this.peer = peer;
    this.qpType = m.qpType;
    link.handlers((mm, fds) => {
      if (mm.type === CmType.MR_ADD && fds.length === 1) remote.addRegion(mm.value, fds[0]!);
      else closeAll(fds);
    }, () => { if (!this.#answered) { this.#answered = true; remote.detach(); } });
  }

  /** rdma_accept: attach, move `qp` to RTS, answer; resolves at ESTABLISHED (the client's RTU). */
  accept(qp: QueuePair, options: CmConnectionOptions = {}): Promise<CmConnection> {
    if (this.#answered) return Promise.reject(new KbypassError('EINVAL', 'this request was already answered'));
    const q = checkQp(qp, 'accept');
    const pdata = checkPdata(options.privateData, CmType.REP, 'accept');
    if (q.qpType !== this.qpType) return Promise.reject(new KbypassError('EINVAL', `the client's QP is type ${this.qpType}; accept with a QP of the same type`));
    this.#answered = true;
    const link = this.#link;
    const remote = this.#remote;
    return new Promise<CmConnection>((resolve, reject) => {
      try {
        const ctx = q.pd.context;
        ctx.remotes.set(ctx.remoteKey(remote.lid, remote.qpn), remote);
        const psn = Math.floor(Math.random() * 0xffffff);
        toRts(q, remote, psn, options);
        remote.fetchRegion = (id) => { link.pump(); return remote.regions[id] !== undefined; };
        const { fds, flags } = qpFds(q);
        link.send({ type: CmType.REP, qpn: q.qpNum, qpType: q.qpType, psn, lid: LOCAL_LID, flags, privateData: pdata }, fds);
        for (let id = 1; id < q.pd.regions.length; id++) {
          const r = q.pd.regions[id];
          if (r !== undefined && r.fd >= 0) link.send({ type: CmType.MR_ADD, value: id }, [r.fd]);
        }
      } catch (e) {
        // Undo what was done: forget the peer, and take our QP out of RTS (its work is flushed).
        const ctx = q.pd.context;
        const key = ctx.remoteKey(remote.lid, remote.qpn);
        if (ctx.remotes.get(key) === remote) ctx.remotes.delete(key);
        if (q.state !== QpState.RESET && q.state !== QpState.ERR) {
          try { q.modify({ qpState: QpState.ERR }, M.STATE); } catch { /* destroyed meanwhile */ }
        }
        remote.detach();
        reject(e);
        link.end(null);
        return;
      }
      // Reject before ending the link: ending it runs the end handler below, whose rejection would win otherwise.
      const timer = setTimeout(() => { reject(new CmError('ETIMEDOUT', 'CONNECT_ERROR', 'accept: the client never confirmed (RTU)')); link.end(null); }, options.timeout ?? 5000);
      link.handlers((m, fds) => {
        if (m.type === CmType.MR_ADD && fds.length === 1) { remote.addRegion(m.value, fds[0]!); return; }
        closeAll(fds);
        if (m.type === CmType.RTU) { clearTimeout(timer); resolve(new CmConnection(q, link, remote, this.privateData)); }
      }, (err) => { clearTimeout(timer); remote.detach(); reject(new CmError('ECONNRESET', 'CONNECT_ERROR', 'accept: the client went away', undefined, err ?? undefined)); });
    });
  }

  /** rdma_reject, with optional private data (≤ 148 bytes) for the client's REJECTED. */
  reject(privateData?: Uint8Array): void {
    if (this.#answered) throw new KbypassError('EINVAL', 'this request was already answered');
    const pdata = checkPdata(privateData, CmType.REJ, 'reject');
    this.#answered = true;
    try { this.#link.send({ type: CmType.REJ, value: 0, privateData: pdata }); } catch { /* client gone */ }
    this.#remote.detach();
    this.#link.end(null);
  }
}

/** Options of a listener. */
export interface CmListenOptions {
  /** Permissions of a path socket. Default 0o600 (this user only). */
  mode?: number;
  /** listen(2) backlog. Default 128. */
  backlog?: number;
}

/** rdma_listen: emits 'CONNECT_REQUEST' (ConnectRequest) and 'error'. */
export class CmListener extends EventEmitter {
  readonly address: string;
  readonly #fd: number;
  readonly #parsed: Parsed;
  #watch: WatchHandle | null;
  #closed = false;

  constructor(address: string, options: CmListenOptions = {}) {
    super();
    const p = parseAddress(address);
    this.address = address;
    this.#parsed = p;
    const n = native();
    if (!p.abstract && existsSync(p.name) && lstatSync(p.name).isSocket()) {
      // A socket file left by a dead listener: take it over if nobody answers on it.
      try { n.close(n.unixConnect(p.name, false)); throw new KbypassError('EADDRINUSE', `${p.name}: another listener is using it`); } catch (e) {
        if ((e as { code?: string }).code === 'ECONNREFUSED') unlinkSync(p.name); else throw e;
      }
    }
    this.#fd = n.unixListen(p.name, p.abstract, options.mode ?? 0o600, options.backlog ?? 128);
    this.#watch = n.watch(this.#fd, WATCH_READABLE, () => this.#accept());
  }

  #accept(): void {
    const n = native();
    for (;;) {
      let fd: number;
      try { fd = n.unixAccept(this.#fd); } catch (e) { this.emit('error', e); return; }
      if (fd < 0) return;
      const [pid, uid, gid] = n.peerCred(fd);
      const timer = setTimeout(() => link.end(null), 5000);
      const link: CmLink = new CmLink(fd, (m, fds) => {
        if (m.type !== CmType.REQ) { closeAll(fds); link.end(null); return; }
        clearTimeout(timer);
        let remote: RemoteQp;
        try { remote = attach(m, fds); } catch (e) { link.end(null); this.emit('error', e); return; }
        const req = new ConnectRequest(link, m, remote, { pid, uid, gid });
        if (this.listenerCount('CONNECT_REQUEST') === 0) req.reject(); else this.emit('CONNECT_REQUEST', req);
      }, () => clearTimeout(timer));
    }
  }

  /** Stop listening (established connections stay up). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = native();
    if (this.#watch !== null) { n.watchStop(this.#watch); this.#watch = null; }
    n.close(this.#fd);
    if (!this.#parsed.abstract) { try { unlinkSync(this.#parsed.name); } catch { /* gone */ } }
  }
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
  return new Promise<CmConnection>((resolve, reject) => {
    let remote: RemoteQp | null = null;
    // Reject first: ending the link runs its end handler, which fails again (a no-op then) with CONNECT_ERROR.
    const fail = (e: CmError): void => { clearTimeout(timer); remote?.detach(); reject(e); link.end(null); };
    const timer = setTimeout(() => fail(new CmError('ETIMEDOUT', 'UNREACHABLE', `connect ${address}: no answer within ${options.timeout ?? 5000} ms`)), options.timeout ?? 5000);
    const link: CmLink = new CmLink(fd, (m, fds) => {
      if (m.type === CmType.MR_ADD && fds.length === 1 && remote !== null) { remote.addRegion(m.value, fds[0]!); return; }
      if (m.type === CmType.REJ) { closeAll(fds); fail(new CmError('ECONNREFUSED', 'REJECTED', `connect ${address}: rejected by the server`, m.privateData)); return; }
      if (m.type !== CmType.REP || remote !== null) { closeAll(fds); return; }
      try {
        remote = attach(m, fds);
        const ctx = q.pd.context;
        ctx.remotes.set(ctx.remoteKey(remote.lid, remote.qpn), remote);
        const r = remote;
        r.fetchRegion = (id) => { link.pump(); return r.regions[id] !== undefined; };
        // The server sends its MR_ADDs right after REP: take those already here before going on.
        link.pump();
        toRts(q, r, q.qpNum & 0xffffff, options);
        link.send({ type: CmType.RTU });
      } catch (e) {
        fail(new CmError((e as { code?: string }).code ?? 'ERR_KBYPASS_PROTOCOL', 'CONNECT_ERROR', `connect ${address}: ${(e as Error).message}`, undefined, e));
        return;
      }
      clearTimeout(timer);
      resolve(new CmConnection(q, link, remote, m.privateData));
    }, (err) => fail(new CmError('ECONNRESET', 'CONNECT_ERROR', `connect ${address}: the server closed the connection`, undefined, err ?? undefined)));
    try {
      initQp(q);
      const { fds, flags } = qpFds(q);
      link.send({ type: CmType.REQ, qpn: q.qpNum, qpType: q.qpType, psn: q.qpNum & 0xffffff, lid: LOCAL_LID, flags, privateData: pdata }, fds);
      for (let id = 1; id < q.pd.regions.length; id++) {
        const r = q.pd.regions[id];
        if (r !== undefined && r.fd >= 0) link.send({ type: CmType.MR_ADD, value: id }, [r.fd]);
      }
    } catch (e) {
      fail(new CmError((e as { code?: string }).code ?? 'EIO', 'CONNECT_ERROR', `connect ${address}: ${(e as Error).message}`, undefined, e));
    }
  });
}
