/**
 * A peer's queue pair as this process sees it once the connection manager attached it: the peer's QP block
 * (its state), the receive queue its receives come from (its own or its SRQ), its receive CQ and that CQ's
 * channel, its protection domain's MR table, and the regions registered there, mapped as they arrive.
 */
import { KbypassError } from '../../errors';
import { QpType } from '../constants';
import { attachRegion } from '../../memory/region';
import { native } from '../../native/binding';
import { CqRing, layoutError } from './cq-ring';
import { MrTable } from './mr-table';
import { RqRing } from './rq-ring';
import {
  MAX_REGION_ID, LAYOUT_VERSION, QP_BLOCK_BYTES, QP_I_ACCESS, QP_I_MAGIC, QP_I_MIN_RNR_TIMER, QP_I_QKEY, QP_I_QPN, QP_I_STATE,
  QP_I_TYPE, QP_I_VERSION, QP_MAGIC,
} from './layout';

/** The fds a peer sends for one QP (each is closed here once mapped). */
export interface RemoteQpFds {
  qp: number;
  /** The SRQ's region when the peer's QP takes receives from an SRQ, else -1. */
  srq: number;
  recvCq: number;
  /** The recv CQ's channel (an eventfd), or -1. Kept open while attached. */
  recvCqEvent: number;
  mrTable: number;
}

export class RemoteQp {
  readonly lid: number;
  readonly qpn: number;
  readonly type: number;
  readonly rq: RqRing;
  readonly cq: CqRing;
  readonly mrTable: MrTable;
  /** Mapped regions of the peer's PD, by region id. */
  readonly regions: Array<Uint8Array | undefined> = [];
  /** The same regions as 64-bit words (aligned copies, atomics). */
  readonly #words: Array<BigUint64Array | undefined> = [];
  /** Set by the connection: pull region fds the peer already sent (synchronously); true if `id` is now mapped. */
  fetchRegion: ((id: number) => boolean) | null = null;
  /** False once the connection is gone (operations then fail as if the packets were lost). */
  alive = true;
  readonly #block: Int32Array;
  #eventFd: number;

  constructor(lid: number, fds: RemoteQpFds) {
    const n = native();
    try {
      const qp = attachRegion(fds.qp, QP_BLOCK_BYTES).buffer;
      const block = new Int32Array(qp, 0, QP_BLOCK_BYTES >> 2);
      if (Atomics.load(block, QP_I_MAGIC) !== QP_MAGIC) throw layoutError('not a kbypass QP (bad magic)');
      if (block[QP_I_VERSION] !== LAYOUT_VERSION) throw layoutError(`QP layout version ${block[QP_I_VERSION]}, this side speaks ${LAYOUT_VERSION}`);
      this.#block = block;
      this.lid = lid;
      this.qpn = block[QP_I_QPN]!;
      this.type = block[QP_I_TYPE]!;
      this.rq = fds.srq >= 0 ? RqRing.attach(attachRegion(fds.srq, 0).buffer, 0) : RqRing.attach(qp, QP_BLOCK_BYTES);
      // Shared without its channel's eventfd: the CQ has no channel, so it is never armed (cq-ring.ts, attach).
      this.cq = CqRing.attach(attachRegion(fds.recvCq, 0).buffer, fds.recvCqEvent >= 0);
      this.mrTable = MrTable.attach(attachRegion(fds.mrTable, 0).buffer);
      this.#eventFd = fds.recvCqEvent;
    } finally {
      for (const fd of [fds.qp, fds.srq, fds.recvCq, fds.mrTable]) if (fd >= 0) n.close(fd);
    }
    // Last (nothing below can throw): our receive completions go to the CQ's private lane if nobody has it (no
    // locked instruction per push), else to the shared lane (layout.ts, part 1). Only for a queue whose
    // receives no one else takes: an RC or UC QP's own. Requesters sharing a queue (an SRQ; UD, where anyone
    // may send) would each push into a different lane, and its completions would leave WQE order.
    if ((this.type === QpType.RC || this.type === QpType.UC) && fds.srq < 0) this.cq.claimLane();
  }

  /** The peer QP's state (QpState), as it publishes it (a plain read: a state change races with any operation). */
  get state(): number { return this.#block[QP_I_STATE]!; }
  get minRnrTimer(): number { return this.#block[QP_I_MIN_RNR_TIMER]!; }
  get accessFlags(): number { return this.#block[QP_I_ACCESS]!; }
  get qkey(): number { return this.#block[QP_I_QKEY]! >>> 0; }

  /** Map a region the peer registered (the fd is closed here). */
  addRegion(id: number, fd: number): void {
    try {
      if (!Number.isInteger(id) || id < 1 || id > MAX_REGION_ID) throw new KbypassError('ERR_KBYPASS_PROTOCOL', `bad region id ${id}`);
      const buffer = attachRegion(fd, 0).buffer;
      this.regions[id] = new Uint8Array(buffer);
      this.#words[id] = new BigUint64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
    } finally {
      native().close(fd);
    }
  }

  /** The bytes of region `id`, pulling it from the connection if it was registered after we attached. */
  region(id: number): Uint8Array | undefined {
    const r = this.regions[id];
    if (r !== undefined || this.fetchRegion === null) return r;
    return this.fetchRegion(id) ? this.regions[id] : undefined;
  }

  /** Region `id` as 64-bit words (after region(id) found it). */
  words(id: number): BigUint64Array | undefined { return this.#words[id]; }

  /** Raise the peer's completion event (its recv CQ was armed). */
  notify(): void {
    if (this.#eventFd >= 0 && this.alive) native().eventfdSignal(this.#eventFd);
  }

  /** Drop the peer's resources (their mappings go when collected). */
  detach(): void {
    this.alive = false;
    this.cq.releaseLane(); // nothing is pushed once !alive: the next peer may have it
    if (this.#eventFd >= 0) { native().close(this.#eventFd); this.#eventFd = -1; }
  }
}
