/**
 * shm0's queue pair. Its 256-byte block and its receive queue live in a memfd the peer maps (layout.ts, part 3):
 * the peer's requester reads our state and takes our receive WQEs. Our send queue is executed by this process
 * as WRs are posted (engine.ts); a WR that meets RNR waits, with the ones behind it, for the min_rnr_timer of
 * the target and is retried up to rnr_retry times (7: forever), driven by a timer and by polling the send CQ.
 */
import { KbypassError } from '../../errors';
import { createRegion, type Region } from '../../memory/region';
import { native } from '../../native/binding';
import { PostError, type QueuePair } from '../api';
import { QpAttrMask, QpState, QpType, RNR_TIMER_US, SendFlags, WcOpcode, WcStatus, WrOpcode, type QpTypeValue } from '../constants';
import { applyAttrs, checkModify, type QpAttr } from '../qp-attr';
import type { QpCap, RecvWr, SendWr } from '../types';
import type { QpInitAttr } from '../api';
import {
  LAYOUT_VERSION, QP_BLOCK_BYTES, QP_I_ACCESS, QP_I_MAGIC, QP_I_MIN_RNR_TIMER, QP_I_PD, QP_I_PORT, QP_I_QKEY, QP_I_QPN,
  QP_I_SRQ, QP_I_STATE, QP_I_TYPE, QP_I_VERSION, QP_MAGIC, qpRegionBytes,
} from './layout';
import { OVERRUN, PUSHED_NOTIFY } from './cq-ring';
import { RecvWqe, RqRing, rqSlots } from './rq-ring';
import { NOT_READY, RNR, Requester } from './engine';
import { ShmCq } from './cq';
import { ShmSrq } from './srq';
import type { ShmPd } from './pd';
import type { RemoteQp } from './remote';
import { SHM_LIMITS } from './context';
import { checkRecvWr, checkSgList } from './post-checks';

const opcodeToWc = [WcOpcode.RDMA_WRITE, WcOpcode.RDMA_WRITE, WcOpcode.SEND, WcOpcode.SEND, WcOpcode.RDMA_READ, WcOpcode.COMP_SWAP, WcOpcode.FETCH_ADD];
const ALLOWED: Record<number, number> = {
  [QpType.RC]: 0x7f,
  [QpType.UC]: (1 << WrOpcode.SEND) | (1 << WrOpcode.SEND_WITH_IMM) | (1 << WrOpcode.RDMA_WRITE) | (1 << WrOpcode.RDMA_WRITE_WITH_IMM),
  [QpType.UD]: (1 << WrOpcode.SEND) | (1 << WrOpcode.SEND_WITH_IMM),
};
const KNOWN_FLAGS = SendFlags.FENCE | SendFlags.SIGNALED | SendFlags.SOLICITED | SendFlags.INLINE;

function roundCap(v: number | undefined, dflt: number, max: number, name: string): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 0 || x > max) throw new KbypassError('EINVAL', `cap.${name} must be an integer from 0 to ${max}, got ${v}`);
  return x;
}

/** A WR waiting behind an RNR (copied: the caller may reuse its objects once postSend returns). */
interface Waiting { wr: SendWr; retries: number }

export class ShmQp implements QueuePair {
  readonly qpNum: number;
  readonly qpType: QpTypeValue;
  readonly pd: ShmPd;
  readonly cap: QpCap;
  /** @internal */ readonly sendCq: ShmCq;
  /** @internal */ readonly recvCq: ShmCq;
  /** @internal */ readonly srq: ShmSrq | null;
  /** @internal */ readonly region: Region;
  readonly #block: Int32Array;
  readonly #rq: RqRing | null;
  readonly #sigAll: boolean;
  readonly #attr: QpAttr = {};
  readonly #req: Requester;
  #state: number = QpState.RESET;
  /** RC/UC: the connected peer QP, bound at RTR. */
  #peer: RemoteQp | null = null;
  readonly #waiting: Waiting[] = [];
  #retryAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #destroyed = false;

  constructor(pd: ShmPd, init: QpInitAttr) {
    if (init === null || typeof init !== 'object') throw new KbypassError('EINVAL', 'createQp needs a QpInitAttr object');
    const type = init.qpType;
    if (type !== QpType.RC && type !== QpType.UC && type !== QpType.UD) throw new KbypassError('EINVAL', `qpType must be QpType.RC, UC or UD, got ${type}`);
    if (!(init.sendCq instanceof ShmCq) || !(init.recvCq instanceof ShmCq)) throw new KbypassError('EINVAL', 'sendCq and recvCq must be CQs of this device');
    const srq = init.srq ?? null;
    if (srq !== null && (!(srq instanceof ShmSrq) || srq.pd !== pd)) throw new KbypassError('EINVAL', 'the SRQ must belong to the same protection domain');
    if (srq !== null && type === QpType.UC) throw new KbypassError('EINVAL', 'an SRQ attaches to RC or UD QPs only');
    const c = init.cap ?? {};
    const maxSendSge = Math.max(1, roundCap(c.maxSendSge, 1, SHM_LIMITS.maxSge, 'maxSendSge'));
    const maxRecvSge = Math.max(1, roundCap(c.maxRecvSge, 1, SHM_LIMITS.maxSge, 'maxRecvSge'));
    const maxSendWr = Math.max(1, roundCap(c.maxSendWr, 1, SHM_LIMITS.maxQpWr, 'maxSendWr'));
    // A QP on an SRQ has no receives of its own (cap 0); its queue's region still lays out one unused slot.
    const rqCap = srq !== null ? 1 : rqSlots(Math.max(1, roundCap(c.maxRecvWr, 1, SHM_LIMITS.maxQpWr, 'maxRecvWr')), SHM_LIMITS.maxQpWr);
    const maxRecvWr = srq !== null ? 0 : rqCap;
    const maxInlineData = roundCap(c.maxInlineData, 0, SHM_LIMITS.maxInlineData, 'maxInlineData');
    this.cap = { maxSendWr, maxRecvWr, maxSendSge, maxRecvSge: srq !== null ? 0 : maxRecvSge, maxInlineData };
    this.pd = pd;
    this.qpType = type;
    this.sendCq = init.sendCq;
    this.recvCq = init.recvCq;
    this.srq = srq;
    this.#sigAll = init.sqSigAll === true;
    this.qpNum = pd.context.allocQpn();
    this.region = createRegion(qpRegionBytes(rqCap, maxRecvSge), { name: 'kbypass-qp' });
    const b = new Int32Array(this.region.buffer, 0, QP_BLOCK_BYTES >> 2);
    b[QP_I_VERSION] = LAYOUT_VERSION;
    b[QP_I_TYPE] = type;
    b[QP_I_QPN] = this.qpNum;
    b[QP_I_SRQ] = srq !== null ? 1 : 0;
    b[QP_I_PD] = pd.id;
    b[QP_I_PORT] = 1;
    Atomics.store(b, QP_I_STATE, QpState.RESET);
    Atomics.store(b, QP_I_MAGIC, QP_MAGIC);
    this.#block = b;
    // The receive queue is laid out even with an SRQ (peers attach to the SRQ's region instead).
    const rq = RqRing.init(this.region.buffer, QP_BLOCK_BYTES, rqCap, maxRecvSge);
    this.#rq = srq === null ? rq : null;
    this.#req = new Requester(pd, type, this.qpNum);
    this.#attr.qpState = QpState.RESET;
    this.sendCq.users++;
    this.recvCq.users++;
    if (srq !== null) srq.users++;
    pd.users++;
  }

  get state(): number { return this.#state; }

  modify(attr: QpAttr, mask: number): void {
    if (this.#destroyed) throw new KbypassError('EINVAL', 'the QP was destroyed');
    if (attr === null || typeof attr !== 'object') throw new KbypassError('EINVAL', 'modify needs a QpAttr object');
    if (!Number.isInteger(mask)) throw new KbypassError('EINVAL', 'mask must be an integer of QpAttrMask bits');
    const next = checkModify(this.qpType, this.#state as 0, attr, mask, {
      maxQpRdAtom: SHM_LIMITS.maxQpRdAtom, maxQpInitRdAtom: SHM_LIMITS.maxQpInitRdAtom, pkeyTableLen: 1, physPortCnt: 1,
    });
    let peer = this.#peer;
    if (next === QpState.RTR && this.qpType !== QpType.UD && (mask & QpAttrMask.DEST_QPN) !== 0) {
      const dlid = (mask & QpAttrMask.AV) !== 0 ? attr.ahAttr?.dlid ?? 0 : 0;
      peer = this.pd.context.remotes.get(this.pd.context.remoteKey(dlid, attr.destQpNum!)) ?? null;
    }
    if ((mask & QpAttrMask.CAP) !== 0) throw new KbypassError('EINVAL', 'shm0 cannot resize a QP (CAP)');
    applyAttrs(this.#attr, attr, mask);
    this.#peer = peer;
    const b = this.#block;
    if ((mask & QpAttrMask.MIN_RNR_TIMER) !== 0) b[QP_I_MIN_RNR_TIMER] = attr.minRnrTimer!;
    if ((mask & QpAttrMask.ACCESS_FLAGS) !== 0) b[QP_I_ACCESS] = attr.qpAccessFlags!;
    if ((mask & QpAttrMask.QKEY) !== 0) { b[QP_I_QKEY] = attr.qkey! | 0; this.#req.qkey = attr.qkey! >>> 0; }
    const was = this.#state;
    this.#state = next;
    Atomics.store(b, QP_I_STATE, next);
    if (next === QpState.ERR && was !== QpState.ERR) this.#flush();
    if (next === QpState.RESET) this.#reset();
    // WRs posted while the send queue was drained (SQD) or stalled start now.
    if (next === QpState.RTS && this.#waiting.length !== 0) this.#schedule();
  }

  query(): QpAttr {
    const a: QpAttr = structuredClone(this.#attr);
    a.qpState = this.#state as 0;
    a.cap = { ...this.cap };
    return a;
  }

  /** @internal The connection manager binds a peer (and unbinds it on disconnect). */
  bindPeer(peer: RemoteQp | null): void { this.#peer = peer; }
  /** @internal */ get peer(): RemoteQp | null { return this.#peer; }

  postSend(wr: SendWr | readonly SendWr[]): void {
    if (Array.isArray(wr)) {
      const list = wr as readonly SendWr[];
      for (let i = 0; i < list.length; i++) this.#postOne(list[i]!, i);
    } else {
      this.#postOne(wr as SendWr, 0);
    }
  }

  #postOne(wr: SendWr, index: number): void {
    if (wr === null || typeof wr !== 'object') throw new PostError('EINVAL', index, 'a send WR must be an object');
    const op = wr.opcode;
    const flags = wr.sendFlags ?? 0;
    if (!Number.isInteger(op) || op < 0 || op > 6 || ((ALLOWED[this.qpType]! >>> op) & 1) === 0) {
      throw new PostError('EINVAL', index, `opcode ${op} is not valid on a ${this.qpType === QpType.RC ? 'RC' : this.qpType === QpType.UC ? 'UC' : 'UD'} QP`);
    }
    if (wr.wrId !== undefined && (typeof wr.wrId !== 'number' || !Number.isFinite(wr.wrId))) throw new PostError('EINVAL', index, 'wrId must be a number');
    if ((flags & ~KNOWN_FLAGS) !== 0 || !Number.isInteger(flags)) throw new PostError('EINVAL', index, `unknown send flags 0x${Number(flags).toString(16)}`);
    if (this.#destroyed) throw new PostError('EINVAL', index, 'the QP was destroyed');
    const st = this.#state;
    if (st !== QpState.RTS && st !== QpState.ERR && st !== QpState.SQD && st !== QpState.SQE) {
      throw new PostError('EINVAL', index, `the QP is in state ${stateName(st)}; sends need RTS`);
    }
    const sg = wr.sgList;
    if (sg !== undefined) checkSgList(sg, index, this.cap.maxSendSge);
    const inline = (flags & SendFlags.INLINE) !== 0;
    if (inline) {
      if (op === WrOpcode.RDMA_READ || op >= WrOpcode.ATOMIC_CMP_AND_SWP) throw new PostError('EINVAL', index, 'INLINE applies to SEND and RDMA WRITE only');
      let total = wr.inlineData !== undefined ? wr.inlineData.length : 0;
      if (wr.inlineData === undefined && sg !== undefined) for (let k = 0; k < sg.length; k++) total += sg[k]!.length;
      if (total > this.cap.maxInlineData) throw new PostError('EINVAL', index, `${total} inline bytes; the QP takes at most ${this.cap.maxInlineData} (cap.maxInlineData)`);
    } else if (wr.inlineData !== undefined) {
      throw new PostError('EINVAL', index, 'inlineData needs the INLINE send flag');
    }
    if (op === WrOpcode.RDMA_WRITE || op === WrOpcode.RDMA_WRITE_WITH_IMM || op === WrOpcode.RDMA_READ) {
      const r = wr.rdma;
      if (r === undefined || r === null || !Number.isSafeInteger(r.remoteAddr) || r.remoteAddr < 0 || !Number.isInteger(r.rkey) || r.rkey < 0 || r.rkey > 0xffffffff) {
        throw new PostError('EINVAL', index, 'RDMA WRITE/READ needs rdma: { remoteAddr, rkey }');
      }
    } else if (op === WrOpcode.ATOMIC_CMP_AND_SWP || op === WrOpcode.ATOMIC_FETCH_AND_ADD) {
      const a = wr.atomic;
      if (a === undefined || a === null || !Number.isSafeInteger(a.remoteAddr) || a.remoteAddr < 0 || !Number.isInteger(a.rkey) ||
          typeof a.compareAdd !== 'bigint' || (op === WrOpcode.ATOMIC_CMP_AND_SWP && typeof a.swap !== 'bigint')) {
        throw new PostError('EINVAL', index, 'atomics need atomic: { remoteAddr, rkey, compareAdd: bigint, swap: bigint (CMP_AND_SWP) }');
      }
      let total = 0;
      if (sg !== undefined) for (let k = 0; k < sg.length; k++) total += sg[k]!.length;
      if (total !== 8) throw new PostError('EINVAL', index, `an atomic returns 8 bytes; its SGEs hold ${total}`);
    }
    if ((op === WrOpcode.SEND_WITH_IMM || op === WrOpcode.RDMA_WRITE_WITH_IMM) &&
        (!Number.isInteger(wr.immData) || wr.immData! < 0 || wr.immData! > 0xffffffff)) {
      throw new PostError('EINVAL', index, 'immData must be a u32');
    }
    let peer = this.#peer;
    if (this.qpType === QpType.UD) {
      const u = wr.ud;
      if (u === undefined || u === null || u.ah === undefined || !Number.isInteger(u.remoteQpn) || !Number.isInteger(u.remoteQkey)) {
        throw new PostError('EINVAL', index, 'a UD send needs ud: { ah, remoteQpn, remoteQkey }');
      }
      peer = this.pd.context.remotes.get(this.pd.context.remoteKey(u.ah.dlid, u.remoteQpn)) ?? null;
    }
    if (this.#waiting.length !== 0 || st !== QpState.RTS) {
      if (st === QpState.ERR || st === QpState.SQE) { this.#complete(wr, WcStatus.WR_FLUSH_ERR, true); return; }
      if (this.#waiting.length >= this.cap.maxSendWr) throw new PostError('ENOMEM', index, `the send queue is full (${this.cap.maxSendWr} WRs)`);
      this.#waiting.push({ wr: this.#clone(wr), retries: 0 });
      this.#schedule();
      return;
    }
    const status = this.#req.execute(wr, peer, inline);
    if (status === RNR || status === NOT_READY) {
      const w: Waiting = { wr: this.#clone(wr), retries: 0 };
      this.#waiting.push(w);
      if (status === RNR) this.#rnr(w, peer); else this.#notReady(w);
      return;
    }
    this.#finish(wr, status);
  }

  /**
   * The target QP is not ready yet (RESET or INIT): on a fabric the packets would be dropped and the requester
   * would time out and resend. Wait the ACK timeout (4.096 µs × 2^timeout; 0: wait forever) and retry, up to
   * retry_cnt times; then RETRY_EXC_ERR.
   */
  #notReady(w: Waiting): void {
    const limit = this.#attr.retryCnt ?? 7;
    if (w.retries >= limit) {
      this.#waiting.shift();
      this.#finish(w.wr, WcStatus.RETRY_EXC_ERR);
      return;
    }
    w.retries++;
    const t = this.#attr.timeout ?? 14;
    this.#retryAt = performance.now() + (t === 0 ? 1 : (4.096 * 2 ** t) / 1000);
    this.#schedule();
  }

  /** Complete a WR the requester executed: a completion if signaled or failed; an error moves the QP to ERR. */
  #finish(wr: SendWr, status: number): void {
    if (status === WcStatus.SUCCESS) {
      if (this.#sigAll || ((wr.sendFlags ?? 0) & SendFlags.SIGNALED) !== 0) this.#complete(wr, status, false);
      return;
    }
    this.#complete(wr, status, true);
    // An RC QP goes to ERROR; UC and UD go to SQE, where the send queue is flushed and receives go on (IB spec).
    if (this.qpType === QpType.RC) this.#toError(); else this.#toSqError();
  }

  #toSqError(): void {
    if (this.#state === QpState.ERR || this.#state === QpState.SQE) return;
    this.#state = QpState.SQE;
    this.#attr.qpState = QpState.SQE;
    Atomics.store(this.#block, QP_I_STATE, QpState.SQE);
    this.#cancelTimer();
    for (const w of this.#waiting.splice(0)) this.#complete(w.wr, WcStatus.WR_FLUSH_ERR, true);
  }

  #complete(wr: SendWr, status: number, always: boolean): void {
    if (!always && status === WcStatus.SUCCESS && !this.#sigAll && ((wr.sendFlags ?? 0) & SendFlags.SIGNALED) === 0) return;
    const op = wr.opcode;
    let len = 0;
    if (op === WrOpcode.RDMA_READ || op >= WrOpcode.ATOMIC_CMP_AND_SWP) {
      const sg = wr.sgList;
      if (sg !== undefined) for (let k = 0; k < sg.length; k++) len += sg[k]!.length;
    }
    const r = this.sendCq.ring.push(status, opcodeToWc[op] ?? 0, len, wr.wrId ?? 0, 0, this.qpNum, 0, 0, false);
    if (r === PUSHED_NOTIFY) this.sendCq.notify();
    else if (r === OVERRUN && this.#state !== QpState.ERR) this.#toError();
  }

  #toError(): void {
    if (this.#state === QpState.ERR) return;
    this.#state = QpState.ERR;
    this.#attr.qpState = QpState.ERR;
    Atomics.store(this.#block, QP_I_STATE, QpState.ERR);
    this.#flush();
  }

  /** ERR: every outstanding WR completes with WR_FLUSH_ERR (send queue, then our own receive queue). */
  #flush(): void {
    this.#cancelTimer();
    for (const w of this.#waiting.splice(0)) this.#complete(w.wr, WcStatus.WR_FLUSH_ERR, true);
    if (this.#rq !== null) {
      // The peer pushed our receives' successes into the CQ's private lane, and these flushes go to the shared
      // lane: hand out what the private lane holds first, so this queue's completions stay in order (cq-ring.ts).
      this.recvCq.ring.spillLane();
      this.#rq.drain(new RecvWqe(this.#rq.maxSge), (w) => {
        if (this.recvCq.ring.push(WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, w.wrId, 0, this.qpNum, 0, 0, false) === PUSHED_NOTIFY) this.recvCq.notify();
      });
    }
  }

  #reset(): void {
    this.#cancelTimer();
    this.#waiting.length = 0;
    this.#peer = null;
    if (this.#rq !== null) this.#rq.drain(new RecvWqe(this.#rq.maxSge), () => {});
  }

  /**
   * An RNR NAK for `w`, the WR at the head of the send queue: wait and retry while rnr_retry allows (7: forever);
   * with none left it fails with RNR_RETRY_EXC_ERR (rnr_retry 0: at the first RNR NAK, as rxe_comp.c does).
   */
  #rnr(w: Waiting, peer: RemoteQp | null): void {
    const limit = this.#attr.rnrRetry ?? 7;
    if (limit !== 7 && w.retries >= limit) {
      this.#waiting.shift();
      this.#finish(w.wr, WcStatus.RNR_RETRY_EXC_ERR);
      return;
    }
    w.retries++;
    this.#rnrWait(peer);
  }

  /** Copy a WR that must wait; an INLINE WR's bytes are taken now (its buffers are the caller's again on return). */
  #clone(wr: SendWr): SendWr {
    const c = cloneWr(wr);
    if (((wr.sendFlags ?? 0) & SendFlags.INLINE) !== 0 && wr.inlineData === undefined) {
      const bytes = this.#req.inlineBytes(wr.sgList);
      if (bytes !== null) c.inlineData = bytes;
    }
    return c;
  }

  /** RNR: wait for the target's min_rnr_timer, then retry (timer and send-CQ polling both drive it). */
  #rnrWait(peer: RemoteQp | null): void {
    const us = RNR_TIMER_US[(peer?.minRnrTimer ?? 0) & 31]!;
    this.#retryAt = performance.now() + us / 1000;
    this.#schedule();
  }

  #schedule(): void {
    this.sendCq.waiting.add(this);
    if (this.#timer === null) {
      this.#timer = setTimeout(() => { this.#timer = null; this.progress(); }, Math.max(1, Math.ceil(this.#retryAt - performance.now())));
    }
  }

  #cancelTimer(): void {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    this.sendCq.waiting.delete(this);
  }

  /** @internal Run waiting WRs whose retry time has come. */
  progress(): void {
    if (this.#waiting.length === 0 || this.#state !== QpState.RTS) {
      if (this.#waiting.length === 0) this.#cancelTimer();
      return;
    }
    if (performance.now() < this.#retryAt) { this.#schedule(); return; }
    while (this.#waiting.length !== 0 && this.#state === QpState.RTS) {
      const w = this.#waiting[0]!;
      const peer = this.qpType === QpType.UD
        ? this.pd.context.remotes.get(this.pd.context.remoteKey(w.wr.ud!.ah.dlid, w.wr.ud!.remoteQpn)) ?? null
        : this.#peer;
      const status = this.#req.execute(w.wr, peer, ((w.wr.sendFlags ?? 0) & SendFlags.INLINE) !== 0);
      if (status === RNR) {
        this.#rnr(w, peer);
        return;
      }
      if (status === NOT_READY) {
        this.#notReady(w);
        return;
      }
      this.#waiting.shift();
      this.#finish(w.wr, status);
    }
    if (this.#waiting.length === 0) this.#cancelTimer();
  }

  postRecv(wr: RecvWr | readonly RecvWr[]): void {
    if (Array.isArray(wr)) {
      const list = wr as readonly RecvWr[];
      for (let i = 0; i < list.length; i++) this.#postRecvOne(list[i]!, i);
    } else {
      this.#postRecvOne(wr as RecvWr, 0);
    }
  }

  #postRecvOne(w: RecvWr, i: number): void {
    if (this.#destroyed) throw new PostError('EINVAL', i, 'the QP was destroyed');
    if (this.#rq === null) throw new PostError('EINVAL', i, 'this QP takes its receives from an SRQ: post to the SRQ');
    if (this.#state === QpState.RESET) throw new PostError('EINVAL', i, 'the QP is in RESET; receives can be posted from INIT on');
    checkRecvWr(w, i, this.cap.maxRecvSge);
    if (this.#state === QpState.ERR) {
      this.recvCq.ring.spillLane(); // (as in #flush)
      if (this.recvCq.ring.push(WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, w.wrId ?? 0, 0, this.qpNum, 0, 0, false) === PUSHED_NOTIFY) this.recvCq.notify();
      return;
    }
    if (!this.#rq.post(w.wrId ?? 0, w.sgList)) throw new PostError('ENOMEM', i, `the receive queue is full (${this.cap.maxRecvWr} WRs)`);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#cancelTimer();
    this.#state = QpState.RESET;
    Atomics.store(this.#block, QP_I_STATE, QpState.ERR);
    this.#peer = null;
    this.sendCq.users--;
    this.recvCq.users--;
    if (this.srq !== null) this.srq.users--;
    this.pd.users--;
    if (this.region.fd >= 0) { native().close(this.region.fd); this.region.fd = -1; }
  }
}

function cloneWr(wr: SendWr): SendWr {
  const c: SendWr = { ...wr };
  if (wr.sgList !== undefined) c.sgList = wr.sgList.map((s) => ({ addr: s.addr, length: s.length, lkey: s.lkey }));
  if (wr.inlineData !== undefined) c.inlineData = wr.inlineData.slice();
  if (wr.rdma !== undefined) c.rdma = { ...wr.rdma };
  if (wr.atomic !== undefined) c.atomic = { ...wr.atomic };
  if (wr.ud !== undefined) c.ud = { ...wr.ud };
  return c;
}

const STATE_NAMES = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'];
export const stateName = (s: number): string => STATE_NAMES[s] ?? `state ${s}`;
