/**
 * The requester: what shm0's "hardware" does for one send work request. It runs in the posting process, against
 * the peer's memory mapped at connection time — the target's CPU takes no part. Every remote access is checked
 * against the peer's published MR table (key, bounds, access) and the peer QP's access flags; every local SGE
 * against our own MRs. It returns the completion status for the requester, or RNR when the target had no
 * receive posted (the caller retries per rnr_retry).
 */
import { Access, QpState, QpType, WcFlags, WcOpcode, WcStatus, WrOpcode } from '../constants';
import type { SendWr, Sge } from '../types';
import { OVERRUN, PUSHED_NOTIFY } from './cq-ring';
import { LOCAL_LID } from './lid';
import { offsetOfIova, regionOfIova } from './layout';
import { MrRef } from './mr-table';
import { RecvWqe } from './rq-ring';
import type { RemoteQp } from './remote';
import type { ShmMr, ShmPd } from './pd';

/** execute() result: the target had no receive WQE (Receiver Not Ready). */
export const RNR = -1;
/** execute() result (RC): the target QP is not in RTR or RTS yet (still RESET or INIT): retry after the ACK timeout. */
export const NOT_READY = -3;
const MAX_SEGS = 64;

/** A list of byte ranges: (bytes, offset, length) triples in parallel arrays. */
class Segs {
  n = 0;
  total = 0;
  readonly bytes: Array<Uint8Array | undefined> = new Array(MAX_SEGS).fill(undefined);
  // Plain arrays: small integers stay SMIs, so indexing a Uint8Array with them is fast (a Float64Array's
  // doubles are not).
  readonly off: number[] = new Array<number>(MAX_SEGS).fill(0);
  readonly len: number[] = new Array<number>(MAX_SEGS).fill(0);
  /** The same buffers as 64-bit words from offset 0, where known (aligned copies go a word at a time). */
  readonly words: Array<BigUint64Array | undefined> = new Array(MAX_SEGS).fill(undefined);
  reset(): void { this.n = 0; this.total = 0; }
  add(b: Uint8Array, o: number, l: number, w?: BigUint64Array): void {
    const i = this.n++;
    this.bytes[i] = b; this.off[i] = o; this.len[i] = l; this.total += l; this.words[i] = w;
  }
}

function copy(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  if (n <= 64) {
    for (let i = 0; i < n; i++) dst[d + i] = src[s + i]!;
  } else {
    dst.set(src.subarray(s, s + n), d);
  }
}

/**
 * copy(), eight bytes at a time when both sides have 64-bit views and everything is 8-byte aligned (≤ 256 bytes).
 * BigUint64Array elements: V8 copies them as raw 64-bit integers, every bit kept, in half the accesses of 32-bit
 * words and about half the time (a Float64Array copy would be as fast, but may change a NaN's bits).
 */
function copyW(dst: Uint8Array, dw: BigUint64Array | undefined, d: number, src: Uint8Array, sw: BigUint64Array | undefined, s: number, n: number): void {
  // (Offsets past 2^31 — a peer's region can be that large — take the byte path: `>> 3` would go negative.)
  if (dw !== undefined && sw !== undefined && n <= 256 && d + n <= 0x7fffffff && s + n <= 0x7fffffff && ((d | s | n) & 7) === 0) {
    const a = d >> 3;
    const b = s >> 3;
    const k = n >> 3;
    for (let i = 0; i < k; i++) dw[a + i] = sw[b + i]!;
  } else {
    copy(dst, d, src, s, n);
  }
}

/** Move src's bytes into dst's ranges in order (dst.total ≥ src.total). */
function scatter(dst: Segs, src: Segs): void {
  if (src.n === 1 && dst.n >= 1 && dst.len[0]! >= src.len[0]!) {
    copyW(dst.bytes[0]!, dst.words[0], dst.off[0]!, src.bytes[0]!, src.words[0], src.off[0]!, src.len[0]!);
    return;
  }
  let di = 0;
  let dOff = 0;
  for (let si = 0; si < src.n; si++) {
    let sOff = 0;
    const sl = src.len[si]!;
    while (sOff < sl) {
      while (dOff === dst.len[di]) { di++; dOff = 0; }
      const n = Math.min(sl - sOff, dst.len[di]! - dOff);
      copy(dst.bytes[di]!, dst.off[di]! + dOff, src.bytes[si]!, src.off[si]! + sOff, n);
      sOff += n;
      dOff += n;
    }
  }
}

export class Requester {
  readonly #pd: ShmPd;
  readonly #qpType: number;
  readonly #qpNum: number;
  readonly #local = new Segs();
  readonly #remote = new Segs();
  readonly #ref = new MrRef();
  /** The offset #peerBytes found. */
  #roff = 0;
  readonly #wqe: RecvWqe;
  readonly #inline = new Segs();
  readonly #u8 = new Uint8Array(8);
  readonly #big = new BigUint64Array(this.#u8.buffer);
  /** Set per WR for UD: the destination. */
  target: RemoteQp | null = null;
  /** UD: the QP's own Q_Key (modify sets it). */
  qkey = 0;

  constructor(pd: ShmPd, qpType: number, qpNum: number) {
    this.#pd = pd;
    this.#qpType = qpType;
    this.#qpNum = qpNum;
    this.#wqe = new RecvWqe(64);
  }

  /** Our MR holding the SGE (writable if `write`), or undefined: LOC_PROT_ERR. */
  #localMr(s: Sge, write: boolean): ShmMr | undefined {
    const mr = this.#pd.localMr(s.lkey);
    if (mr === undefined || !mr.valid || s.addr < mr.addr || s.addr + s.length > mr.addr + mr.length) return undefined;
    return write && (mr.access & Access.LOCAL_WRITE) === 0 ? undefined : mr;
  }

  /**
   * The peer's bytes holding [addr, addr + len) under `key`, when its MR table grants `need` and its QP's access
   * flags grant `qpNeed`; #roff is then the offset in them. Undefined: an access violation. Every field read from
   * the peer's table is checked, so a hostile entry can never make us index outside the mapping.
   */
  #peerBytes(peer: RemoteQp, key: number, addr: number, len: number, need: number, qpNeed: number): Uint8Array | undefined {
    const ref = this.#ref;
    if (!peer.mrTable.lookup(key, ref) || !ref.covers(addr, len) || (ref.access & need) !== need ||
        (peer.accessFlags & qpNeed) !== qpNeed) return undefined;
    const bytes = peer.region(ref.regionId);
    // An MR starts at offset 0 of its region (pd.ts), so the offset is the distance from the MR's address.
    const off = addr - ref.addr;
    if (bytes === undefined || !(off >= 0) || off + len > bytes.length || off !== Math.floor(off)) return undefined;
    this.#roff = off;
    return bytes;
  }

  /** Resolve our SGEs into #local; `write` when the operation writes into them (READ, atomics). */
  #gather(list: readonly Sge[] | undefined, write: boolean): boolean {
    const segs = this.#local;
    segs.reset();
    if (list === undefined) return true;
    for (let k = 0; k < list.length; k++) {
      const s = list[k]!;
      if (s.length === 0) continue;
      const mr = this.#localMr(s, write);
      if (mr === undefined) return false;
      segs.add(mr.buffer, s.addr - mr.addr, s.length, mr.words);
    }
    return true;
  }

  /** Resolve a remote range through the peer's MR table into #remote; false on any violation. */
  #remoteRange(peer: RemoteQp, addr: number, rkey: number, len: number, need: number): boolean {
    // A zero-length RDMA WRITE/READ accesses no memory: its address and rkey are not checked (IB C9-88; rxe's check_rkey).
    if (len === 0) { this.#remote.reset(); return true; }
    const bytes = this.#peerBytes(peer, rkey, addr, len, need, need);
    if (bytes === undefined) return false;
    this.#remote.reset();
    this.#remote.add(bytes, this.#roff, len, peer.words(this.#ref.regionId));
    return true;
  }

  /**
   * Take a receive WQE at the target and check its SGEs against the target's MRs into #remote. Returns
   * SUCCESS, RNR, or the error to report (the target's receive completion is pushed here for errors).
   */
  #takeReceive(peer: RemoteQp, len: number): number {
    if (!peer.rq.take(this.#wqe)) return RNR;
    return this.#checkReceive(peer, len);
  }

  /** Check the receive WQE just taken (#wqe) against the target's MRs, into #remote (see #takeReceive). */
  #checkReceive(peer: RemoteQp, len: number): number {
    const w = this.#wqe;
    if (w.numSge < 0) { this.#completeRemote(peer, WcStatus.LOC_QP_OP_ERR, WcOpcode.RECV, 0, 0, 0, false); return WcStatus.REM_OP_ERR; }
    const segs = this.#remote;
    segs.reset();
    const ref = this.#ref;
    for (let k = 0; k < w.numSge; k++) {
      const l = w.length[k]!;
      if (l === 0) continue;
      const a = w.addr[k]!;
      const bytes = this.#peerBytes(peer, w.lkey[k]!, a, l, Access.LOCAL_WRITE, 0);
      if (bytes === undefined) {
        this.#completeRemote(peer, WcStatus.LOC_PROT_ERR, WcOpcode.RECV, 0, 0, 0, false);
        return WcStatus.REM_OP_ERR;
      }
      segs.add(bytes, this.#roff, l, peer.words(ref.regionId));
    }
    if (segs.total < len) {
      this.#completeRemote(peer, WcStatus.LOC_LEN_ERR, WcOpcode.RECV, 0, 0, 0, false);
      return WcStatus.REM_INV_REQ_ERR;
    }
    return WcStatus.SUCCESS;
  }

  /** Push a receive completion into the peer's CQ; false if it was full (the completion is lost: CQ overrun). */
  #completeRemote(peer: RemoteQp, status: number, opcode: number, len: number, imm: number, flags: number, solicited: boolean): boolean {
    const r = peer.cq.push(status, opcode, len, this.#wqe.wrId, imm, peer.qpn, this.#qpNum, flags, solicited, LOCAL_LID);
    if (r === PUSHED_NOTIFY) peer.notify();
    return r !== OVERRUN;
  }

  /** Local data for a send: inline bytes or our SGEs. False = LOC_PROT_ERR. */
  #source(wr: SendWr, inline: boolean): Segs | null {
    if (inline && wr.inlineData !== undefined) {
      this.#inline.reset();
      this.#inline.add(wr.inlineData, 0, wr.inlineData.length);
      return this.#inline;
    }
    if (inline) return this.#inlineSgl(wr.sgList);
    return this.#gather(wr.sgList, false) ? this.#local : null;
  }

  /**
   * INLINE from SGEs: the CPU copies the bytes, so the lkey is not checked (ibv_post_send); each address must
   * still lie in one of our PD's regions. Null = LOC_PROT_ERR.
   */
  #inlineSgl(list: readonly Sge[] | undefined): Segs | null {
    const segs = this.#inline;
    segs.reset();
    if (list === undefined) return segs;
    for (let k = 0; k < list.length; k++) {
      const s = list[k]!;
      if (s.length === 0) continue;
      const bytes = this.#pd.regionBytes[regionOfIova(s.addr)];
      const off = offsetOfIova(s.addr);
      if (bytes === undefined || off + s.length > bytes.length) return null;
      segs.add(bytes, off, s.length);
    }
    return segs;
  }

  /** The bytes of an INLINE WR's SGEs, copied (for a WR that must wait: its buffers are the caller's again). */
  inlineBytes(list: readonly Sge[] | undefined): Uint8Array | null {
    const segs = this.#inlineSgl(list);
    if (segs === null) return null;
    const out = new Uint8Array(segs.total);
    let at = 0;
    for (let i = 0; i < segs.n; i++) { out.set(segs.bytes[i]!.subarray(segs.off[i]!, segs.off[i]! + segs.len[i]!), at); at += segs.len[i]!; }
    return out;
  }

  /**
   * The common case, RDMA WRITE or READ of one SGE on RC, without the general scatter/gather machinery. Returns
   * a status, or -2 when the WR is not of that shape (the caller takes the general path).
   */
  #oneSge(wr: SendWr, peer: RemoteQp, op: number): number {
    const sg = wr.sgList;
    if (sg === undefined || sg.length !== 1 || sg[0]!.length === 0) return -2;
    const s = sg[0]!;
    const len = s.length;
    const write = op === WrOpcode.RDMA_WRITE;
    const mr = this.#localMr(s, !write);
    if (mr === undefined) return WcStatus.LOC_PROT_ERR;
    const r = wr.rdma!;
    const need = write ? Access.REMOTE_WRITE : Access.REMOTE_READ;
    const bytes = this.#peerBytes(peer, r.rkey, r.remoteAddr, len, need, need);
    if (bytes === undefined) return WcStatus.REM_ACCESS_ERR;
    const off = this.#roff;
    const ref = this.#ref;
    const local = s.addr - mr.addr;
    if (len <= 256 && off + len <= 0x7fffffff && local + len <= 0x7fffffff && ((off | local | len) & 7) === 0) {
      // Whole aligned 64-bit words: an eighth of the element accesses of a byte loop (copyW says why 64-bit).
      const r64 = peer.words(ref.regionId)!;
      const l64 = mr.words;
      const a = off >> 3;
      const b = local >> 3;
      const n = len >> 3;
      if (write) for (let i = 0; i < n; i++) r64[a + i] = l64[b + i]!;
      else for (let i = 0; i < n; i++) l64[b + i] = r64[a + i]!;
    } else if (write) {
      copy(bytes, off, mr.buffer, local, len);
    } else {
      copy(mr.buffer, local, bytes, off, len);
    }
    return WcStatus.SUCCESS;
  }

  /**
   * SEND (or SEND_WITH_IMM) of one non-empty SGE into a receive of one non-empty SGE, on RC or UC: the common
   * case without the scatter/gather machinery. Returns a status or RNR, or -2 when the WR is not of that shape
   * (nothing done: the caller takes the general path). Same checks and results as the general path.
   */
  #sendOne(wr: SendWr, peer: RemoteQp, op: number, reliable: boolean): number {
    const sg = wr.sgList;
    if (sg === undefined || sg.length !== 1) return -2;
    const s = sg[0]!;
    const len = s.length;
    if (len === 0) return -2;
    const mr = this.#localMr(s, false);
    if (mr === undefined) return WcStatus.LOC_PROT_ERR;
    const w = this.#wqe;
    if (!peer.rq.take(w)) return reliable ? RNR : WcStatus.SUCCESS;
    const local = s.addr - mr.addr;
    if (w.numSge !== 1 || w.length[0] === 0) {
      const st = this.#checkReceive(peer, len);
      if (st !== WcStatus.SUCCESS) return reliable ? st : WcStatus.SUCCESS;
      this.#local.reset();
      this.#local.add(mr.buffer, local, len, mr.words);
      scatter(this.#remote, this.#local);
    } else {
      const ref = this.#ref;
      const l = w.length[0]!;
      const a = w.addr[0]!;
      const bytes = this.#peerBytes(peer, w.lkey[0]!, a, l, Access.LOCAL_WRITE, 0);
      const off = this.#roff;
      if (bytes === undefined) {
        this.#completeRemote(peer, WcStatus.LOC_PROT_ERR, WcOpcode.RECV, 0, 0, 0, false);
        return reliable ? WcStatus.REM_OP_ERR : WcStatus.SUCCESS;
      }
      if (l < len) {
        this.#completeRemote(peer, WcStatus.LOC_LEN_ERR, WcOpcode.RECV, 0, 0, 0, false);
        return reliable ? WcStatus.REM_INV_REQ_ERR : WcStatus.SUCCESS;
      }
      copyW(bytes, peer.words(ref.regionId), off, mr.buffer, mr.words, local, len);
    }
    const imm = op === WrOpcode.SEND_WITH_IMM;
    const delivered = this.#completeRemote(peer, WcStatus.SUCCESS, WcOpcode.RECV, len, imm ? wr.immData! >>> 0 : 0, imm ? WcFlags.WITH_IMM : 0,
      ((wr.sendFlags ?? 0) & 4) !== 0);
    // The peer's CQ was full: its completion is lost, and the operation fails as a remote operational error.
    return delivered || !reliable ? WcStatus.SUCCESS : WcStatus.REM_OP_ERR;
  }

  /** Execute one WR against `peer`. Returns a WcStatus for the requester, or RNR. */
  execute(wr: SendWr, peer: RemoteQp | null, inline: boolean): number {
    const reliable = this.#qpType === QpType.RC;
    const op = wr.opcode;
    if (reliable && !inline && (op === WrOpcode.RDMA_WRITE || op === WrOpcode.RDMA_READ) && peer !== null && peer.alive &&
        peer.state >= QpState.RTR && peer.state !== QpState.ERR) {
      const st = this.#oneSge(wr, peer, op);
      if (st !== -2) return st;
    }
    if ((op === WrOpcode.SEND || op === WrOpcode.SEND_WITH_IMM) && !inline && this.#qpType !== QpType.UD && peer !== null &&
        peer.alive && peer.state >= QpState.RTR && peer.state !== QpState.ERR) {
      const st = this.#sendOne(wr, peer, op, reliable);
      if (st !== -2) return st;
    }
    // A peer gone, or not in a state that takes packets: RC retries until retry_cnt runs out; UC/UD lose them.
    if (reliable && peer !== null && peer.alive && peer.state < QpState.RTR) return NOT_READY;
    if (peer === null || !peer.alive || peer.state < QpState.RTR || peer.state === QpState.ERR) {
      if (!reliable) return this.#source(wr, inline) !== null ? WcStatus.SUCCESS : WcStatus.LOC_PROT_ERR;
      return WcStatus.RETRY_EXC_ERR;
    }
    switch (op) {
      case WrOpcode.SEND:
      case WrOpcode.SEND_WITH_IMM: {
        const src = this.#source(wr, inline);
        if (src === null) return WcStatus.LOC_PROT_ERR;
        const ud = this.#qpType === QpType.UD;
        // A Q_Key with the high bit set means the sending QP's own Q_Key (IB C10-15). A mismatch: dropped.
        if (ud && ((wr.ud!.remoteQkey & 0x80000000) === 0 ? wr.ud!.remoteQkey >>> 0 : this.qkey) !== peer.qkey) return WcStatus.SUCCESS;
        // A UD message is one packet: at most the path MTU (4096 on shm0).
        if (ud && src.total > 4096) return WcStatus.LOC_LEN_ERR;
        const len = src.total + (ud ? 40 : 0);
        const st = this.#takeReceive(peer, len);
        if (st === RNR) return reliable ? RNR : WcStatus.SUCCESS;
        if (st !== WcStatus.SUCCESS) return reliable ? st : WcStatus.SUCCESS;
        if (ud) this.#skip(this.#remote, 40);
        scatter(this.#remote, src);
        const imm = op === WrOpcode.SEND_WITH_IMM;
        const delivered = this.#completeRemote(peer, WcStatus.SUCCESS, WcOpcode.RECV, len, imm ? wr.immData! >>> 0 : 0, imm ? WcFlags.WITH_IMM : 0,
          (wr.sendFlags ?? 0) & 4 ? true : false);
        // The peer's CQ was full: its completion is lost, and the operation fails as a remote operational error.
        return delivered || !reliable ? WcStatus.SUCCESS : WcStatus.REM_OP_ERR;
      }
      case WrOpcode.RDMA_WRITE:
      case WrOpcode.RDMA_WRITE_WITH_IMM: {
        const src = this.#source(wr, inline);
        if (src === null) return WcStatus.LOC_PROT_ERR;
        if (!this.#remoteRange(peer, wr.rdma!.remoteAddr, wr.rdma!.rkey, src.total, Access.REMOTE_WRITE)) {
          return reliable ? WcStatus.REM_ACCESS_ERR : WcStatus.SUCCESS;
        }
        if (op === WrOpcode.RDMA_WRITE) {
          if (src.total !== 0) scatter(this.#remote, src);
          return WcStatus.SUCCESS;
        }
        const n = this.#remote.n;
        const b = this.#remote.bytes[0];
        const o = this.#remote.off[0]!;
        const w = this.#remote.words[0];
        const st = this.#takeReceive(peer, 0);
        if (st === RNR) return reliable ? RNR : WcStatus.SUCCESS;
        if (st !== WcStatus.SUCCESS) return reliable ? st : WcStatus.SUCCESS;
        this.#remote.reset();
        if (n !== 0) this.#remote.add(b!, o, src.total, w);
        if (src.total !== 0) scatter(this.#remote, src);
        const delivered = this.#completeRemote(peer, WcStatus.SUCCESS, WcOpcode.RECV_RDMA_WITH_IMM, src.total, wr.immData! >>> 0, WcFlags.WITH_IMM,
          (wr.sendFlags ?? 0) & 4 ? true : false);
        // The peer's CQ was full: its completion is lost, and the operation fails as a remote operational error.
        return delivered || !reliable ? WcStatus.SUCCESS : WcStatus.REM_OP_ERR;
      }
      case WrOpcode.RDMA_READ: {
        if (!this.#gather(wr.sgList, true)) return WcStatus.LOC_PROT_ERR;
        const dst = this.#local;
        if (!this.#remoteRange(peer, wr.rdma!.remoteAddr, wr.rdma!.rkey, dst.total, Access.REMOTE_READ)) return WcStatus.REM_ACCESS_ERR;
        if (dst.total !== 0) scatter(dst, this.#remote);
        return WcStatus.SUCCESS;
      }
      case WrOpcode.ATOMIC_CMP_AND_SWP:
      case WrOpcode.ATOMIC_FETCH_AND_ADD: {
        if (!this.#gather(wr.sgList, true)) return WcStatus.LOC_PROT_ERR;
        const a = wr.atomic!;
        if (a.remoteAddr % 8 !== 0) return WcStatus.REM_INV_REQ_ERR;
        if (!this.#remoteRange(peer, a.remoteAddr, a.rkey, 8, Access.REMOTE_ATOMIC)) return WcStatus.REM_ACCESS_ERR;
        const bytes = this.#remote.bytes[0]!;
        const at = (bytes.byteOffset + this.#remote.off[0]!) / 8;
        // The peer's MR table says where its MR starts; a hostile one could make the word misaligned.
        if (!Number.isInteger(at)) return WcStatus.REM_ACCESS_ERR;
        // An aligned 8-byte word of a shared mapping: lock-prefixed instructions, atomic across processes.
        // (The region's 64-bit view is made once per region, not per operation.)
        const words = peer.words(this.#ref.regionId)!;
        const old = op === WrOpcode.ATOMIC_FETCH_AND_ADD
          ? Atomics.add(words, at, BigInt.asUintN(64, a.compareAdd))
          : Atomics.compareExchange(words, at, BigInt.asUintN(64, a.compareAdd), BigInt.asUintN(64, a.swap ?? 0n));
        this.#big[0] = old;
        this.#remote.reset();
        this.#remote.add(this.#u8, 0, 8);
        scatter(this.#local, this.#remote);
        return WcStatus.SUCCESS;
      }
      default:
        return WcStatus.LOC_QP_OP_ERR;
    }
  }

  /** Drop the first `n` bytes of a range list (the UD receive's GRH space). */
  #skip(segs: Segs, n: number): void {
    let i = 0;
    while (n > 0 && i < segs.n) {
      const take = Math.min(n, segs.len[i]!);
      segs.off[i] = segs.off[i]! + take;
      segs.len[i] = segs.len[i]! - take;
      segs.total -= take;
      n -= take;
      if (segs.len[i] === 0) i++;
    }
  }
}
