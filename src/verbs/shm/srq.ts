/** shm0's shared receive queue: a receive queue (rq-ring.ts) in its own memfd, taken from by several QPs. */
import { KbypassError } from '../../errors';
import { createRegion, type Region } from '../../memory/region';
import { native } from '../../native/binding';
import { PostError, type SharedReceiveQueue, type SrqInitAttr } from '../api';
import type { RecvWr } from '../types';
import { rqBytes } from './layout';
import { RqRing, rqSlots } from './rq-ring';
import type { ShmPd } from './pd';
import { SHM_LIMITS } from './context';
import { checkRecvWr } from './post-checks';

export class ShmSrq implements SharedReceiveQueue {
  readonly pd: ShmPd;
  readonly maxWr: number;
  readonly maxSge: number;
  /** @internal */ readonly ring: RqRing;
  /** @internal */ readonly region: Region;
  /** @internal */ users = 0;
  #destroyed = false;

  constructor(pd: ShmPd, init: SrqInitAttr) {
    if (init === null || typeof init !== 'object') throw new KbypassError('EINVAL', 'createSrq needs { maxWr, maxSge }');
    const maxWr = init.maxWr;
    const maxSge = init.maxSge ?? 1;
    if (!Number.isInteger(maxWr) || maxWr < 1 || maxWr > SHM_LIMITS.maxSrqWr) throw new KbypassError('EINVAL', `maxWr must be 1 to ${SHM_LIMITS.maxSrqWr}, got ${maxWr}`);
    if (!Number.isInteger(maxSge) || maxSge < 1 || maxSge > SHM_LIMITS.maxSrqSge) throw new KbypassError('EINVAL', `maxSge must be 1 to ${SHM_LIMITS.maxSrqSge}, got ${maxSge}`);
    const cap = rqSlots(maxWr, SHM_LIMITS.maxSrqWr);
    this.pd = pd;
    this.maxWr = cap;
    this.maxSge = maxSge;
    this.region = createRegion(rqBytes(cap, maxSge), { name: 'kbypass-srq' });
    this.ring = RqRing.init(this.region.buffer, 0, cap, maxSge);
    pd.users++;
  }

  postRecv(wr: RecvWr | readonly RecvWr[]): void {
    if (this.#destroyed) throw new PostError('EINVAL', 0, 'the SRQ was destroyed');
    if (!Array.isArray(wr)) { this.#post(wr as RecvWr, 0); return; }
    const list = wr as readonly RecvWr[];
    for (let i = 0; i < list.length; i++) this.#post(list[i]!, i);
  }

  #post(w: RecvWr, i: number): void {
    checkRecvWr(w, i, this.maxSge);
    if (!this.ring.post(w.wrId ?? 0, w.sgList)) throw new PostError('ENOMEM', i, `the SRQ is full (${this.maxWr} WRs)`);
  }

  destroy(): void {
    if (this.#destroyed) return;
    if (this.users !== 0) throw new KbypassError('EBUSY', `the SRQ is still attached to ${this.users} QP(s)`);
    this.#destroyed = true;
    this.pd.users--;
    if (this.region.fd >= 0) { native().close(this.region.fd); this.region.fd = -1; }
  }
}
