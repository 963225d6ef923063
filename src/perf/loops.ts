/**
 * The measured loops of `kbypass perf`, one per test kind, run by both ends (perftest's run_iter_lat_write,
 * run_iter_lat_send, run_iter_lat, run_iter_bw, run_iter_bw_server). Every WR object is made once and reused;
 * every wait is bounded (PEER_TIMEOUT_MS).
 */
import { KbypassError } from '../errors';
import { SendFlags, WcStatus, WrOpcode, wcStatusName } from '../verbs/constants';
import type { CompletionQueue, RecvWr, SendWr } from '../verbs';
import { PEER_TIMEOUT_MS, type PerfSession } from './session';

/** Samples of a latency loop (ns per iteration: a round trip, or one operation for READ/atomics). */
export type Samples = Float64Array;

export const check = (cq: CompletionQueue, n: number): void => {
  for (let i = 0; i < n; i++) {
    const wc = cq.wc[i]!;
    if (wc.status !== WcStatus.SUCCESS) {
      throw new KbypassError(wcStatusName(wc.status), `work request ${wc.wrId} completed with ${wcStatusName(wc.status)}`);
    }
  }
};

/** Wait for one completion on `cq` (busy-polling, bounded). */
function waitOne(cq: CompletionQueue, s: PerfSession): void {
  const deadline = performance.now() + PEER_TIMEOUT_MS;
  for (let spins = 0; ; spins++) {
    const n = cq.poll(1);
    if (n !== 0) { check(cq, n); return; }
    if ((spins & 0xffff) === 0xffff && (performance.now() > deadline || s.conn?.peerAlive() === false)) {
      throw new KbypassError('ETIMEDOUT', 'no completion: the peer stopped');
    }
  }
}

/** Spin until byte `at` of our MR holds `v`. */
function waitByte(u8: Uint8Array, at: number, v: number, s: PerfSession): void {
  const deadline = performance.now() + PEER_TIMEOUT_MS;
  for (let spins = 0; Atomics.load(u8, at) !== v; spins++) {
    if ((spins & 0xffff) === 0xffff && (performance.now() > deadline || s.conn?.peerAlive() === false)) {
      throw new KbypassError('ETIMEDOUT', 'the peer stopped writing');
    }
  }
}

export function sendWr(s: PerfSession, opcode: number, size: number): SendWr {
  return {
    wrId: 1, opcode, sendFlags: SendFlags.SIGNALED,
    sgList: [{ addr: s.mr.addr + (opcode === WrOpcode.RDMA_READ ? s.recvOffset : s.sendOffset), length: size, lkey: s.mr.lkey }],
    rdma: { remoteAddr: s.remoteRecvAddr, rkey: s.rkey },
  };
}

/** The receive every SEND test posts and reposts: the whole receive area. */
export function recvWr(s: PerfSession): RecvWr {
  return { wrId: 2, sgList: [{ addr: s.mr.addr + s.recvOffset, length: s.maxSize, lkey: s.mr.lkey }] };
}

/** read_lat / atomic_lat's WR: an RDMA READ of `size`, or an 8-byte atomic on the peer's receive area. */
function oneSidedWr(s: PerfSession, opcode: number, size: number): SendWr {
  const wr = sendWr(s, opcode, size);
  if (opcode !== WrOpcode.RDMA_READ) {
    wr.atomic = { remoteAddr: s.remoteRecvAddr, rkey: s.rkey, compareAdd: opcode === WrOpcode.ATOMIC_FETCH_AND_ADD ? 1n : 0n, swap: 0n };
    wr.sgList = [{ addr: s.mr.addr + s.recvOffset, length: 8, lkey: s.mr.lkey }];
  }
  return wr;
}

/** write_lat: each end RDMA-writes the other's receive area and spins on the last byte of its own. */
export function writeLat(s: PerfSession, client: boolean, size: number, iters: number, warmup: number, clockNs: number): Samples {
  const u8 = s.mr.buffer;
  const last = s.recvOffset + size - 1;
  const mark = s.sendOffset + size - 1;
  u8[last] = 0;
  const wr = sendWr(s, WrOpcode.RDMA_WRITE, size);
  const stamps = new Float64Array(iters + 1);
  s.barrier();
  const total = warmup + iters + 1;
  for (let i = 0; i < total; i++) {
    const v = (i % 255) + 1;
    if (client) {
      if (i >= warmup) stamps[i - warmup] = performance.now();
      u8[mark] = v;
      s.qp.postSend(wr);
      waitOne(s.sendCq, s);
      waitByte(u8, last, v, s);
    } else {
      waitByte(u8, last, v, s);
      u8[mark] = v;
      s.qp.postSend(wr);
      waitOne(s.sendCq, s);
    }
  }
  return client ? deltas(stamps, clockNs) : new Float64Array(0);
}

/** What both send_lat loops (busy and -e) start with: 64 receives posted, the WRs, the stamps; the barrier passed. */
export function sendLatStart(s: PerfSession, size: number, iters: number, warmup: number): { recv: RecvWr; wr: SendWr; stamps: Float64Array; total: number } {
  s.fillRecvs(64);
  const start = { recv: recvWr(s), wr: sendWr(s, WrOpcode.SEND, size), stamps: new Float64Array(iters + 1), total: warmup + iters + 1 };
  s.barrier();
  return start;
}

/** send_lat: SEND ping-pong; each end reposts the receive it consumed. */
export function sendLat(s: PerfSession, client: boolean, size: number, iters: number, warmup: number, clockNs: number): Samples {
  const { recv, wr, stamps, total } = sendLatStart(s, size, iters, warmup);
  for (let i = 0; i < total; i++) {
    if (client) {
      if (i >= warmup) stamps[i - warmup] = performance.now();
      s.qp.postSend(wr);
      waitOne(s.sendCq, s);
      waitOne(s.recvCq, s);
      s.qp.postRecv(recv);
    } else {
      waitOne(s.recvCq, s);
      s.qp.postRecv(recv);
      s.qp.postSend(wr);
      waitOne(s.sendCq, s);
    }
  }
  s.barrier();
  return client ? deltas(stamps, clockNs) : new Float64Array(0);
}

/** read_lat / atomic_lat: the client times each operation to its completion; the server's CPU does nothing. */
export function oneSidedLat(s: PerfSession, client: boolean, opcode: number, size: number, iters: number, warmup: number, clockNs: number): Samples {
  const stamps = new Float64Array(iters + 1);
  s.barrier(!client);
  if (client) {
    const wr = oneSidedWr(s, opcode, size);
    const total = warmup + iters + 1;
    for (let i = 0; i < total; i++) {
      if (i >= warmup) stamps[i - warmup] = performance.now();
      s.qp.postSend(wr);
      waitOne(s.sendCq, s);
    }
  }
  s.barrier(!client);
  return client ? deltas(stamps, clockNs) : new Float64Array(0);
}

export function deltas(stamps: Float64Array, clockNs: number): Samples {
  const out = new Float64Array(stamps.length - 1);
  for (let i = 1; i < stamps.length; i++) out[i - 1] = (stamps[i]! - stamps[i - 1]!) * 1e6 - clockNs;
  return out;
}

/** What a bandwidth loop measured (client side). */
export interface BwResult { totalNs: number; posted: Float64Array | null; completed: Float64Array | null }

/**
 * The client's window in a bandwidth test, for both loops (busy and -e): keep up to txDepth WRs outstanding,
 * every cqMod-th signaled, until `iters` are complete. With `stampEach`, the post and completion times feed
 * perftest's peak.
 */
export class BwWindow {
  readonly posted: Float64Array | null;
  readonly completed: Float64Array | null;
  #scnt = 0;
  #ccnt = 0;
  readonly #s: PerfSession;
  readonly #wr: SendWr;
  readonly #iters: number;
  readonly #txDepth: number;
  readonly #cqMod: number;

  constructor(s: PerfSession, opcode: number, size: number, iters: number, txDepth: number, cqMod: number, stampEach: boolean) {
    this.#s = s;
    this.#wr = sendWr(s, opcode, size);
    this.#iters = iters;
    this.#txDepth = txDepth;
    this.#cqMod = cqMod;
    this.posted = stampEach ? new Float64Array(iters) : null;
    this.completed = stampEach ? new Float64Array(iters) : null;
  }

  get done(): boolean { return this.#ccnt >= this.#iters; }
  get completions(): number { return this.#ccnt; }

  /** Post until the window is full (or every WR is posted). */
  fill(): void {
    const wr = this.#wr;
    while (this.#scnt < this.#iters && this.#scnt - this.#ccnt < this.#txDepth) {
      wr.sendFlags = (this.#scnt + 1) % this.#cqMod === 0 || this.#scnt + 1 === this.#iters ? SendFlags.SIGNALED : 0;
      if (this.posted !== null) this.posted[this.#scnt] = performance.now();
      this.#s.qp.postSend(wr);
      this.#scnt++;
    }
  }

  /** `n` completions were polled (checked): each stands for the WRs up to the next signaled one. */
  complete(n: number): void {
    const now = this.completed !== null ? performance.now() : 0;
    for (let k = 0; k < n; k++) {
      const upto = Math.min(this.#iters, (Math.floor(this.#ccnt / this.#cqMod) + 1) * this.#cqMod);
      if (this.completed !== null) this.completed[upto - 1] = now;
      this.#ccnt = upto;
    }
  }
}

/** send_bw / write_bw / read_bw (client): busy-polling the send CQ (BwWindow says what is posted). */
export function bwClient(s: PerfSession, opcode: number, size: number, iters: number, txDepth: number, cqMod: number, stampEach: boolean): BwResult {
  const w = new BwWindow(s, opcode, size, iters, txDepth, cqMod, stampEach);
  const cq = s.sendCq;
  s.barrier();
  const deadline = performance.now() + PEER_TIMEOUT_MS * 10;
  const t0 = performance.now();
  while (!w.done) {
    w.fill();
    const n = cq.poll(16);
    if (n !== 0) {
      check(cq, n);
      w.complete(n);
    } else if (performance.now() > deadline) {
      throw new KbypassError('ETIMEDOUT', `only ${w.completions} of ${iters} completions`);
    }
  }
  const totalNs = (performance.now() - t0) * 1e6;
  s.barrier();
  return { totalNs, posted: w.posted, completed: w.completed };
}

/** The server's side of a bandwidth test: for send_bw, keep receives posted and count arrivals. */
export function bwServer(s: PerfSession, opcode: number, iters: number): void {
  if (opcode === WrOpcode.SEND) {
    s.fillRecvs(512);
    const recv = recvWr(s);
    s.barrier();
    const deadline = performance.now() + PEER_TIMEOUT_MS * 10;
    let got = 0;
    while (got < iters) {
      const n = s.recvCq.poll(16);
      if (n === 0) {
        if (performance.now() > deadline) throw new KbypassError('ETIMEDOUT', `only ${got} of ${iters} messages arrived`);
        continue;
      }
      check(s.recvCq, n);
      got += n;
      for (let k = 0; k < n; k++) s.qp.postRecv(recv);
    }
  } else {
    s.barrier(true);
  }
  s.barrier(true);
}
