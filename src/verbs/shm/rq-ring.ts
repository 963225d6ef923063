/**
 * A receive queue in shared memory (layout.ts, part 2): the owner posts receive WQEs; the peers' requesters take
 * them in order with a CAS on the head (several consumers for a shared receive queue). A taken WQE is copied out
 * before the CAS, so the owner may reuse its slot the moment the head moves.
 */
import {
  LAYOUT_VERSION, RQ_HEADER_BYTES, RQ_I_CAPACITY, RQ_I_HEAD, RQ_I_MAGIC, RQ_I_MAX_SGE, RQ_I_TAIL, RQ_I_VERSION,
  RQ_MAGIC, SGE_BYTES, WQE_HEADER_BYTES, rqBytes, rqStride,
} from './layout';
import { layoutError } from './cq-ring';
import { PLAIN_PUBLISH } from '../../ring/layout';
import type { Sge } from '../types';

/**
 * How many slots a receive queue asked for `requested` receives gets (what `cap.maxRecvWr` / an SRQ's `maxWr`
 * then report): the power of two at or above it, doubled once if that stays within `max`.
 *
 * The doubling is for the usual way of using a receive queue: post as many receives as were asked for, and
 * repost each one as its completion comes (perftest does; so do most servers). In a queue of exactly that many
 * slots, each repost finds the queue full as far as the owner's cached head knows, so it reads the head, the
 * line the peer's requester compare-and-swaps on every SEND; that line then crosses between the two cores on
 * every message, and the slot reposted shares its cache line with the next WQE the requester reads. With twice
 * the slots the owner reads the head once per `slots - posted` reposts, and writes far from where the requester
 * reads. send_bw 64 B went from 3.24 to 3.66 M messages/s on average over 10 interleaved pairs
 * (docs/BENCHMARKS.md, "A receive queue kept full"). The cost: twice the queue's memory, and a program that
 * posts the whole reported cap needs a receive CQ that large. libibverbs allows it: ibv_create_qp(3) and
 * ibv_create_srq(3) may give more than was asked for, and say so in the capabilities they return.
 */
export function rqSlots(requested: number, max: number): number {
  let slots = 1;
  while (slots < requested) slots *= 2;
  return slots * 2 <= max ? slots * 2 : slots;
}

/** A receive WQE as a consumer copied it out (reused by its taker). */
export class RecvWqe {
  wrId = 0;
  numSge = 0;
  readonly addr: Float64Array;
  readonly length: Uint32Array;
  readonly lkey: Uint32Array;
  constructor(maxSge: number) {
    this.addr = new Float64Array(maxSge);
    this.length = new Uint32Array(maxSge);
    this.lkey = new Uint32Array(maxSge);
  }
  /** Total bytes the WQE's buffers hold. */
  capacityBytes(): number {
    let n = 0;
    for (let i = 0; i < this.numSge; i++) n += this.length[i]!;
    return n;
  }
}

export class RqRing {
  readonly capacity: number;
  readonly maxSge: number;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #stride: number;
  readonly #mask: number;
  /** Owner's cached tail. */
  #tail = 0;
  /** Owner: the consumers' head as last read (re-read only when the queue looks full). */
  #headCache = 0;
  /** Consumer: the owner's tail as last read (re-read only when the queue looks empty). */
  #tailCache = 0;
  /**
   * Consumer: the head as this view last saw it (its own CAS, or the value a failed CAS found). Another consumer
   * may have moved it since; a CAS from a stale value fails and returns the real head, so no load is needed to
   * begin (an Atomics.load costs V8 a builtin call, about 7 ns).
   */
  #headSeen = 0;

  private constructor(buffer: ArrayBuffer, offset: number, capacity: number, maxSge: number) {
    this.capacity = capacity;
    this.maxSge = maxSge;
    this.#mask = capacity - 1;
    this.#stride = rqStride(maxSge);
    const bytes = rqBytes(capacity, maxSge);
    this.#i32 = new Int32Array(buffer, offset, bytes >> 2);
    this.#f64 = new Float64Array(buffer, offset, bytes >> 3);
    this.#tail = Atomics.load(this.#i32, RQ_I_TAIL);
  }

  /** Lay out a new receive queue at `offset` of zeroed memory. */
  static init(buffer: ArrayBuffer, offset: number, capacity: number, maxSge: number): RqRing {
    const i32 = new Int32Array(buffer, offset, RQ_HEADER_BYTES >> 2);
    i32[RQ_I_VERSION] = LAYOUT_VERSION;
    i32[RQ_I_CAPACITY] = capacity;
    i32[RQ_I_MAX_SGE] = maxSge;
    Atomics.store(i32, RQ_I_MAGIC, RQ_MAGIC);
    return new RqRing(buffer, offset, capacity, maxSge);
  }

  /** Attach to a peer's receive queue, checking its header against the region. */
  static attach(buffer: ArrayBuffer, offset: number): RqRing {
    if (buffer.byteLength < offset + RQ_HEADER_BYTES) throw layoutError('receive queue beyond its region');
    const i32 = new Int32Array(buffer, offset, RQ_HEADER_BYTES >> 2);
    if (Atomics.load(i32, RQ_I_MAGIC) !== RQ_MAGIC) throw layoutError('not a kbypass receive queue (bad magic)');
    if (i32[RQ_I_VERSION] !== LAYOUT_VERSION) throw layoutError(`receive queue layout version ${i32[RQ_I_VERSION]}, this side speaks ${LAYOUT_VERSION}`);
    const cap = i32[RQ_I_CAPACITY]!;
    const sge = i32[RQ_I_MAX_SGE]!;
    if (cap <= 0 || (cap & (cap - 1)) !== 0 || sge < 1 || sge > 64 || offset + rqBytes(cap, sge) > buffer.byteLength) {
      throw layoutError(`bad receive queue geometry (${cap} × ${sge} SGEs)`);
    }
    return new RqRing(buffer, offset, cap, sge);
  }

  /** WQEs posted and not yet taken. */
  get count(): number { return (Atomics.load(this.#i32, RQ_I_TAIL) - Atomics.load(this.#i32, RQ_I_HEAD)) >>> 0; }

  /** Owner: post one WQE. Returns false when the queue is full. */
  post(wrId: number, sgList: readonly Sge[] | undefined): boolean {
    const i32 = this.#i32;
    const t = this.#tail;
    // Each line read here is one the other process writes: read it only when the cached value is not enough.
    if (((t - this.#headCache) >>> 0) >= this.capacity) {
      this.#headCache = Atomics.load(i32, RQ_I_HEAD);
      if (((t - this.#headCache) >>> 0) >= this.capacity) return false;
    }
    const base = RQ_HEADER_BYTES + (t & this.#mask) * this.#stride;
    const n = sgList === undefined ? 0 : sgList.length;
    this.#f64[base >> 3] = wrId;
    i32[(base >> 2) + 2] = n;
    for (let k = 0; k < n; k++) {
      const s = sgList![k]!;
      const at = base + WQE_HEADER_BYTES + k * SGE_BYTES;
      this.#f64[at >> 3] = s.addr;
      i32[(at >> 2) + 2] = s.length;
      i32[(at >> 2) + 3] = s.lkey;
    }
    this.#tail = (t + 1) | 0;
    // The publish. On x86 (TSO) a plain store is ordered after the WQE's stores (ring/layout.ts, PLAIN_PUBLISH).
    if (PLAIN_PUBLISH) i32[RQ_I_TAIL] = this.#tail;
    else Atomics.store(i32, RQ_I_TAIL, this.#tail);
    return true;
  }

  /** Consumer: take the oldest WQE into `out`. Returns false when none is posted (receiver not ready: RNR). */
  take(out: RecvWqe): boolean {
    const i32 = this.#i32;
    const f64 = this.#f64;
    let h = this.#headSeen;
    for (;;) {
      const avail = (this.#tailCache - h) >>> 0;
      if (avail === 0 || avail > this.capacity) { // empty as far as we know, or others took past what we saw
        this.#tailCache = Atomics.load(i32, RQ_I_TAIL);
        if (h === this.#tailCache) return false;
      }
      const base = RQ_HEADER_BYTES + (h & this.#mask) * this.#stride;
      out.wrId = f64[base >> 3]!;
      let n = i32[(base >> 2) + 2]!;
      if (n < 0 || n > this.maxSge || n > out.addr.length) n = -1; // a corrupt WQE: reported by the caller
      out.numSge = n;
      for (let k = 0; k < n; k++) {
        const at = base + WQE_HEADER_BYTES + k * SGE_BYTES;
        out.addr[k] = f64[at >> 3]!;
        out.length[k] = i32[(at >> 2) + 2]!;
        out.lkey[k] = i32[(at >> 2) + 3]!;
      }
      const was = Atomics.compareExchange(i32, RQ_I_HEAD, h, (h + 1) | 0);
      if (was === h) { this.#headSeen = (h + 1) | 0; return true; }
      h = was; // someone else moved it (or our view was stale): go again from where it really is
      this.#headSeen = h;
    }
  }

  /** Owner: take every posted WQE (flushing a queue in ERROR), calling `each` for each. */
  drain(out: RecvWqe, each: (w: RecvWqe) => void): void {
    while (this.take(out)) each(out);
  }
}
