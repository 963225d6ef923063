/**
 * A completion queue in shared memory (layout.ts, part 1): many producers — this process's send queues and the
 * peers' requesters posting receive completions — and one consumer, the owner polling it. No allocation and no
 * system call per completion; the caller rings the CQ's channel only when push() says the CQ was armed.
 *
 * Its entries lie in two lanes. Producers share the first with a CAS on its tail. The second (the private
 * lane) belongs to one producer at a time, a peer that claimed it (claimLane) and fills it with plain stores:
 * a locked instruction per completion would make the requester wait, on every SEND, for its stores into lines
 * the consumer is polling to reach that consumer's core.
 */
import { KbypassError } from '../../errors';
import { WorkCompletion } from '../types';
import { PLAIN_PUBLISH } from '../../ring/layout';
import {
  CQE_BYTE_LEN, CQE_BYTES, CQE_F64_WR_ID, CQE_IMM, CQE_INFO, CQE_QP_NUM, CQE_SEQ, CQE_SKIP, CQE_SLID, CQE_SRC_QP, CQ_ARM_NEXT,
  CQ_FLAG_OVERRUN, CQ_HEADER_BYTES, CQ_I_ARMED, CQ_I_CAPACITY, CQ_I_EVENTS, CQ_I_FLAGS, CQ_I_HEAD, CQ_I_HEAD1, CQ_I_MAGIC,
  CQ_I_OWNER1, CQ_I_TAIL, CQ_I_TAIL1, CQ_I_VERSION, CQ_MAGIC, LAYOUT_VERSION, cqRegionBytes, cqeOffset, packInfo,
} from './layout';

/** push() results. */
export const PUSHED = 0;
export const PUSHED_NOTIFY = 1;
export const OVERRUN = -1;

export class CqRing {
  readonly capacity: number;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #mask: number;
  /** The consumer's head (only the owner polls). */
  #head = 0;
  /**
   * False while no other process can push into this CQ (it was never handed to a peer): this process's pushes
   * then need no CAS. The connection manager sets it before sharing the CQ; it never goes back.
   */
  multiProducer = false;
  /** True for an attached (peer's) CQ: its consumer runs in another process. */
  #remote = false;
  /** A producer's last read of the consumer's head (multi-producer path). */
  #headSeen = 0;
  /** The single producer's tail (used only while !multiProducer). */
  #tail = 0;
  /** False for a peer's CQ that has no completion channel (see attach). */
  #armable = true;
  /** Producer: true while this view owns the private lane (claimLane), and pushes into it. */
  #private = false;
  /** Producer: the private lane's tail (while #private). */
  #tail1 = 0;
  /** Producer: the private lane's head as last read (re-read only when the lane looks full). */
  #head1Seen = 0;
  /** Consumer: the private lane's head. */
  #head1 = 0;
  /** Consumer: which lane the next poll starts with (each in turn, so neither can starve the other). */
  #turn = 0;
  /** Consumer: completions moved out of the private lane by spillLane(), handed out first by poll(). */
  #spill: WorkCompletion[] = [];
  #spillAt = 0;
  /** i32 index of the private lane's first entry. */
  readonly #lane1: number;

  private constructor(buffer: ArrayBuffer, capacity: number) {
    this.capacity = capacity;
    this.#mask = capacity - 1;
    this.#i32 = new Int32Array(buffer, 0, cqRegionBytes(capacity) >> 2);
    this.#f64 = new Float64Array(buffer, 0, cqRegionBytes(capacity) >> 3);
    this.#lane1 = cqeOffset(capacity, 1, 0) >> 2;
  }

  /** Lay out a new CQ of `capacity` entries (a power of two) in zeroed memory. */
  static init(buffer: ArrayBuffer, capacity: number): CqRing {
    const i32 = new Int32Array(buffer, 0, CQ_HEADER_BYTES >> 2);
    i32[CQ_I_VERSION] = LAYOUT_VERSION | (CQE_BYTES << 16);
    i32[CQ_I_CAPACITY] = capacity;
    Atomics.store(i32, CQ_I_MAGIC, CQ_MAGIC);
    return new CqRing(buffer, capacity);
  }

  /**
   * Attach to a peer's CQ, checking its header against the region's size. `armable`: false when the peer shared
   * the CQ without a completion channel. Only a CQ with a channel can be armed (ibv_req_notify_cq; requestNotify
   * throws without one), and with no channel there is nobody to wake, so push() then skips the armed word.
   */
  static attach(buffer: ArrayBuffer, armable = true): CqRing {
    if (buffer.byteLength < CQ_HEADER_BYTES) throw layoutError('CQ region smaller than its header');
    const i32 = new Int32Array(buffer, 0, CQ_HEADER_BYTES >> 2);
    if (Atomics.load(i32, CQ_I_MAGIC) !== CQ_MAGIC) throw layoutError('not a kbypass CQ (bad magic)');
    if ((i32[CQ_I_VERSION]! & 0xffff) !== LAYOUT_VERSION || i32[CQ_I_VERSION]! >>> 16 !== CQE_BYTES) {
      throw layoutError(`CQ layout version ${i32[CQ_I_VERSION]! & 0xffff}, this side speaks ${LAYOUT_VERSION}`);
    }
    const cap = i32[CQ_I_CAPACITY]!;
    if (cap <= 0 || (cap & (cap - 1)) !== 0 || cqRegionBytes(cap) > buffer.byteLength) throw layoutError(`bad CQ capacity ${cap}`);
    const r = new CqRing(buffer, cap);
    r.multiProducer = true; // an attached CQ is someone else's: its owner and other peers push into it too
    r.#remote = true; // and its consumer runs in another process: push() reads the armed flag with a locked op (if armable)
    r.#armable = armable;
    return r;
  }

  /** True for an attached CQ (a peer's): its consumer runs in another process. */
  get remote(): boolean { return this.#remote; }

  /** False for a peer's CQ shared without a completion channel: it is never armed, and push() never looks. */
  get armable(): boolean { return this.#armable; }

  /** True once a producer found the CQ full (IBV_EVENT_CQ_ERR). */
  get overrun(): boolean { return (Atomics.load(this.#i32, CQ_I_FLAGS) & CQ_FLAG_OVERRUN) !== 0; }

  /**
   * Producer: add one completion. Returns PUSHED, PUSHED_NOTIFY (the CQ was armed for it: ring its channel), or
   * OVERRUN (the CQ is full; nothing written, the overrun flag set).
   */
  push(status: number, opcode: number, byteLen: number, wrId: number, imm: number, qpNum: number, srcQp: number,
    wcFlags: number, solicited: boolean, slid = 0): number {
    const i32 = this.#i32;
    let t: number;
    let base: number;
    if (this.#private) {
      t = this.#tail1;
      if (((t - this.#head1Seen) >>> 0) >= this.capacity) {
        this.#head1Seen = Atomics.load(i32, CQ_I_HEAD1);
        if (((t - this.#head1Seen) >>> 0) >= this.capacity) {
          Atomics.or(i32, CQ_I_FLAGS, CQ_FLAG_OVERRUN);
          return OVERRUN;
        }
      }
      this.#tail1 = (t + 1) | 0; // (published for the next owner by releaseLane, not per push)
      base = this.#lane1 + (t & this.#mask) * (CQE_BYTES >> 2);
    } else if (!this.multiProducer) {
      t = this.#tail;
      if (((t - this.#head) >>> 0) >= this.capacity) {
        Atomics.or(i32, CQ_I_FLAGS, CQ_FLAG_OVERRUN);
        return OVERRUN;
      }
      this.#tail = (t + 1) | 0;
      i32[CQ_I_TAIL] = this.#tail;
      base = (CQ_HEADER_BYTES + (t & this.#mask) * CQE_BYTES) >> 2;
    } else {
      for (;;) {
        t = Atomics.load(i32, CQ_I_TAIL);
        // The consumer's head line is written by the owner on every poll: read it only when the CQ looks full.
        if (((t - this.#headSeen) >>> 0) >= this.capacity) {
          this.#headSeen = Atomics.load(i32, CQ_I_HEAD);
          if (((t - this.#headSeen) >>> 0) >= this.capacity) {
            Atomics.or(i32, CQ_I_FLAGS, CQ_FLAG_OVERRUN);
            return OVERRUN;
          }
        }
        if (Atomics.compareExchange(i32, CQ_I_TAIL, t, (t + 1) | 0) === t) break;
      }
      base = (CQ_HEADER_BYTES + (t & this.#mask) * CQE_BYTES) >> 2;
    }
    i32[base + CQE_INFO] = packInfo(status, opcode, wcFlags, solicited);
    i32[base + CQE_BYTE_LEN] = byteLen;
    i32[base + CQE_IMM] = imm;
    this.#f64[(base >> 1) + CQE_F64_WR_ID] = wrId;
    i32[base + CQE_QP_NUM] = qpNum;
    i32[base + CQE_SRC_QP] = srcQp;
    i32[base + CQE_SLID] = slid;
    // The commit. On x86 (TSO) a plain store is ordered after the stores above (ring/layout.ts, PLAIN_PUBLISH).
    if (PLAIN_PUBLISH) i32[base + CQE_SEQ] = (t + 1) | 0;
    else Atomics.store(i32, base + CQE_SEQ, (t + 1) | 0);
    // A CQ without a completion channel is never armed: no event to raise, so no need for the locked read below.
    if (!this.#armable) return PUSHED;
    // Is the CQ armed? For a peer's CQ, read with a locked instruction: a plain load could pass the commit store
    // above (x86 lets a load overtake an earlier store), and the consumer — which arms, then polls — would miss
    // both the completion and the event. Our own CQ's consumer is this thread: program order is enough.
    const armed = this.#remote ? Atomics.compareExchange(i32, CQ_I_ARMED, -1, -1) : i32[CQ_I_ARMED]!;
    // Solicited-only arming also fires on an error completion (IB spec o11-2.1.2; mlx5 does the same).
    if (armed !== 0 && (armed === CQ_ARM_NEXT || solicited || status !== 0) &&
        Atomics.compareExchange(i32, CQ_I_ARMED, armed, 0) === armed) {
      Atomics.add(i32, CQ_I_EVENTS, 1);
      return PUSHED_NOTIFY;
    }
    return PUSHED;
  }

  /**
   * Consumer: fill up to `max` of `out` with completions, returns how many: each lane's oldest first, the two
   * lanes in turn (one poll starts with the shared lane, the next with the private one).
   */
  poll(max: number, out: WorkCompletion[]): number {
    let n = 0;
    if (this.#spillAt !== this.#spill.length) n = this.#unspill(max, out);
    const first = this.#turn;
    this.#turn = first ^ 1;
    if (n < max) n = this.#take(first, n, max, out);
    if (n < max) n = this.#take(first ^ 1, n, max, out);
    return n;
  }

  /**
   * Owner: move every committed completion of the private lane out of it, to be handed out by poll() before
   * anything in either lane. Call it before pushing completions that must come after the private lane's, such as
   * the flush of a receive queue whose successes a peer pushed there: the flush goes to the shared lane, and
   * verbs keep a work queue's completions in order.
   */
  spillLane(): void {
    const scratch = [new WorkCompletion()];
    if (this.#spillAt === this.#spill.length) { this.#spill = []; this.#spillAt = 0; }
    while (this.#take(1, 0, 1, scratch) === 1) {
      this.#spill.push(scratch[0]!);
      scratch[0] = new WorkCompletion();
    }
  }

  /** Hand out spilled completions (oldest first) into out[0 …]; returns how many. */
  #unspill(max: number, out: WorkCompletion[]): number {
    let n = 0;
    while (n < max && this.#spillAt < this.#spill.length) {
      const from = this.#spill[this.#spillAt++]!;
      const wc = out[n++]!;
      wc.status = from.status;
      wc.opcode = from.opcode;
      wc.wcFlags = from.wcFlags;
      wc.byteLen = from.byteLen;
      wc.immData = from.immData;
      wc.wrId = from.wrId;
      wc.qpNum = from.qpNum;
      wc.srcQp = from.srcQp;
      wc.slid = from.slid;
      wc.vendorErr = from.vendorErr;
    }
    if (this.#spillAt === this.#spill.length) { this.#spill = []; this.#spillAt = 0; }
    return n;
  }

  /** Take completions from one lane into out[n …] until `max` are there; returns the new n. */
  #take(lane: number, n: number, max: number, out: WorkCompletion[]): number {
    const i32 = this.#i32;
    const f64 = this.#f64;
    const start = lane === 0 ? this.#head : this.#head1;
    const entries = lane === 0 ? CQ_HEADER_BYTES >> 2 : this.#lane1;
    const mask = this.#mask;
    let h = start;
    while (n < max) {
      const base = entries + (h & mask) * (CQE_BYTES >> 2);
      if (Atomics.load(i32, base + CQE_SEQ) !== ((h + 1) | 0)) break;
      const info = i32[base + CQE_INFO]!;
      h = (h + 1) | 0;
      if ((info & 0xff) === CQE_SKIP) continue;
      const wc = out[n]!;
      wc.status = info & 0xff;
      wc.opcode = (info >>> 8) & 0xff;
      wc.wcFlags = (info >>> 16) & 0xff;
      wc.byteLen = i32[base + CQE_BYTE_LEN]! >>> 0;
      wc.immData = i32[base + CQE_IMM]! >>> 0;
      wc.wrId = f64[(base >> 1) + CQE_F64_WR_ID]!;
      wc.qpNum = i32[base + CQE_QP_NUM]! >>> 0;
      wc.srcQp = i32[base + CQE_SRC_QP]! >>> 0;
      wc.slid = i32[base + CQE_SLID]! & 0xffff;
      wc.vendorErr = 0;
      n++;
    }
    if (h !== start) {
      const at = lane === 0 ? CQ_I_HEAD : CQ_I_HEAD1;
      if (lane === 0) this.#head = h;
      else this.#head1 = h;
      if (PLAIN_PUBLISH) i32[at] = h;
      else Atomics.store(i32, at, h);
    }
    return n;
  }

  /**
   * Producer (a peer's view): try to take the private lane for this view's pushes. True if it is ours now (and
   * until releaseLane); false if another producer has it (pushes then go to the shared lane).
   */
  claimLane(): boolean {
    if (this.#private) return true;
    if (!this.#remote || Atomics.compareExchange(this.#i32, CQ_I_OWNER1, 0, 1) !== 0) return false;
    // The tail the last owner left (it stored it before giving the lane back). It is in shared memory, so check
    // it against the head: a lane that looks more than full is refused for good (every push would overrun).
    const tail = Atomics.load(this.#i32, CQ_I_TAIL1);
    const head = Atomics.load(this.#i32, CQ_I_HEAD1);
    if (((tail - head) >>> 0) > this.capacity) return false; // (and the lane stays taken: it is unusable)
    this.#tail1 = tail;
    this.#head1Seen = head;
    this.#private = true;
    return true;
  }

  /** True while this view owns the private lane. */
  get ownsLane(): boolean { return this.#private; }

  /** Give the private lane back (after this view's last push: an orderly detach). */
  releaseLane(): void {
    if (!this.#private) return;
    this.#private = false;
    Atomics.store(this.#i32, CQ_I_TAIL1, this.#tail1);
    Atomics.store(this.#i32, CQ_I_OWNER1, 0);
  }

  /**
   * Owner: turn every slot between head and tail that is still not committed into a SKIP entry. For use after a
   * peer that pushed into this CQ has gone: a producer that died between claiming a slot and committing it would
   * otherwise stall the CQ forever. (A live producer that has stalled that long would lose its completion.)
   */
  fillHoles(): number {
    const i32 = this.#i32;
    const tail = Atomics.load(i32, CQ_I_TAIL);
    let filled = 0;
    for (let t = this.#head; t !== tail; t = (t + 1) | 0) {
      const base = (CQ_HEADER_BYTES + (t & this.#mask) * CQE_BYTES) >> 2;
      if (Atomics.load(i32, base + CQE_SEQ) !== ((t + 1) | 0)) {
        i32[base + CQE_INFO] = CQE_SKIP;
        Atomics.store(i32, base + CQE_SEQ, (t + 1) | 0);
        filled++;
      }
    }
    return filled;
  }

  /**
   * Completions waiting: the shared lane's committed or being written, the private lane's committed (its tail
   * lives in its producer until releaseLane), and the spilled ones. A diagnostic: it walks the private lane.
   */
  get depth(): number {
    let inLane = 0;
    for (let h = this.#head1; inLane < this.capacity; h = (h + 1) | 0, inLane++) {
      if (Atomics.load(this.#i32, this.#lane1 + (h & this.#mask) * (CQE_BYTES >> 2) + CQE_SEQ) !== ((h + 1) | 0)) break;
    }
    return ((Atomics.load(this.#i32, CQ_I_TAIL) - this.#head) >>> 0) + inLane + this.#spill.length - this.#spillAt;
  }

  /** True if the next completion of either lane is committed. */
  ready(): boolean {
    if (this.#spillAt !== this.#spill.length) return true;
    const i32 = this.#i32;
    const b0 = (CQ_HEADER_BYTES + (this.#head & this.#mask) * CQE_BYTES) >> 2;
    const b1 = this.#lane1 + (this.#head1 & this.#mask) * (CQE_BYTES >> 2);
    return Atomics.load(i32, b0 + CQE_SEQ) === ((this.#head + 1) | 0) || Atomics.load(i32, b1 + CQE_SEQ) === ((this.#head1 + 1) | 0);
  }

  /** Notifications sent so far (the channel reports each once). */
  get events(): number { return Atomics.load(this.#i32, CQ_I_EVENTS); }

  /** Arm: the next completion (or the next solicited one) makes push() return PUSHED_NOTIFY. */
  arm(mode: number): void { Atomics.store(this.#i32, CQ_I_ARMED, mode); }
}

export function layoutError(message: string): KbypassError {
  return new KbypassError('ERR_KBYPASS_LAYOUT', message);
}
