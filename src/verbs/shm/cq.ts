/**
 * shm0's completion queue: a CqRing in its own memfd (shared with the peers whose requesters complete receives
 * into it), and a completion channel: an eventfd that any process holding it can signal, watched by libuv.
 */
import { KbypassError } from '../../errors';
import { createRegion, type Region } from '../../memory/region';
import { native, WATCH_READABLE, type WatchHandle } from '../../native/binding';
import type { CompChannel, CompletionQueue } from '../api';
import { WorkCompletion } from '../types';
import { CQ_ARM_NEXT, CQ_ARM_SOLICITED, cqRegionBytes } from './layout';
import { CqRing } from './cq-ring';

/** Something to run when a CQ is polled: a QP whose send queue waits on a timer (RNR back-off). */
export interface Progress { progress(): void }

export class ShmCompChannel implements CompChannel {
  /** The eventfd (passed to peers so they can raise our events). */
  readonly fd: number;
  readonly #cqs = new Set<ShmCq>();
  readonly #ready: ShmCq[] = [];
  readonly #waiters: Array<{ resolve(cq: CompletionQueue): void; reject(e: Error): void }> = [];
  #watch: WatchHandle | null = null;
  #destroyed = false;

  readonly #onDestroy: () => void;

  constructor(onDestroy: () => void = () => {}) {
    this.fd = native().eventfd();
    this.#onDestroy = onDestroy;
  }

  /** @internal */ attach(cq: ShmCq): void { this.#cqs.add(cq); }
  /** True once destroy() ran. */
  get destroyed(): boolean { return this.#destroyed; }
  /** @internal */ detach(cq: ShmCq): void {
    this.#cqs.delete(cq);
    const i = this.#ready.indexOf(cq);
    if (i >= 0) this.#ready.splice(i, 1);
  }

  /** @internal Ring it (our own producers; peers signal the eventfd directly). */
  signal(): void { native().eventfdSignal(this.fd); }

  getCqEvent(): Promise<CompletionQueue> {
    if (this.#destroyed) return Promise.reject(new KbypassError('EBADF', 'the completion channel was destroyed'));
    this.#collect();
    const cq = this.#ready.shift();
    if (cq) { cq.eventsReceived++; return Promise.resolve(cq); }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#start();
    });
  }

  #start(): void {
    if (this.#watch === null) {
      this.#watch = native().watch(this.fd, WATCH_READABLE, () => this.#onReadable());
    } else {
      native().watchRef(this.#watch, true);
    }
  }

  #onReadable(): void {
    native().eventfdDrain(this.fd);
    this.#collect();
    while (this.#waiters.length !== 0 && this.#ready.length !== 0) {
      const cq = this.#ready.shift()!;
      cq.eventsReceived++;
      this.#waiters.shift()!.resolve(cq);
    }
    if (this.#waiters.length === 0 && this.#watch !== null) native().watchRef(this.#watch, false);
  }

  /** Turn each CQ's notification count into queued events. */
  #collect(): void {
    for (const cq of this.#cqs) {
      // One event per notification, but at most 64 per look: the count is in shared memory, and a peer could
      // make it say anything (a legitimate producer notifies once per requestNotify).
      const sent = cq.ring.events;
      const k = Math.min((sent - cq.eventsSeen) >>> 0, 64);
      for (let i = 0; i < k; i++) this.#ready.push(cq);
      cq.eventsSeen = sent;
    }
  }

  destroy(): void {
    if (this.#destroyed) return;
    if (this.#cqs.size !== 0) throw new KbypassError('EBUSY', `the completion channel still serves ${this.#cqs.size} CQ(s)`);
    this.#destroyed = true;
    if (this.#watch !== null) native().watchStop(this.#watch);
    this.#watch = null;
    for (const w of this.#waiters.splice(0)) w.reject(new KbypassError('EBADF', 'the completion channel was destroyed'));
    native().close(this.fd);
    this.#onDestroy();
  }
}

export class ShmCq implements CompletionQueue {
  readonly cqe: number;
  readonly channel: ShmCompChannel | null;
  readonly wc: WorkCompletion[] = [];
  /** @internal */ readonly ring: CqRing;
  /** @internal */ readonly region: Region;
  /** @internal QPs whose send queues wait on a retry timer: polling drives them. */
  readonly waiting = new Set<Progress>();
  /** @internal */ eventsSeen = 0;
  /** @internal */ eventsReceived = 0;
  #eventsAcked = 0;
  /** @internal QPs and SRQs using this CQ. */
  users = 0;
  #destroyed = false;

  readonly #onDestroy: () => void;

  constructor(cqe: number, channel: ShmCompChannel | null, onDestroy: () => void = () => {}) {
    this.#onDestroy = onDestroy;
    let cap = 1;
    while (cap < cqe) cap *= 2;
    this.cqe = cap;
    this.channel = channel;
    this.region = createRegion(cqRegionBytes(cap), { name: 'kbypass-cq' });
    this.ring = CqRing.init(this.region.buffer, cap);
    for (let i = 0; i < Math.min(cap, 64); i++) this.wc.push(new WorkCompletion());
    channel?.attach(this);
  }

  poll(max = 1, out: WorkCompletion[] = this.wc): number {
    if (this.waiting.size !== 0) for (const q of this.waiting) q.progress();
    const n = max <= out.length ? max : out.length;
    return this.ring.poll(n, out);
  }

  /** True once a completion found this CQ full and was lost (IBV_EVENT_CQ_ERR): size CQs for what can be outstanding. */
  get overrun(): boolean { return this.ring.overrun; }

  requestNotify(solicitedOnly = false): void {
    if (this.channel === null) throw new KbypassError('EINVAL', 'this CQ has no completion channel');
    this.ring.arm(solicitedOnly ? CQ_ARM_SOLICITED : CQ_ARM_NEXT);
  }

  ackEvents(n: number): void {
    if (!Number.isInteger(n) || n < 0 || this.#eventsAcked + n > this.eventsReceived) {
      throw new KbypassError('EINVAL', `cannot acknowledge ${n} event(s): ${this.eventsReceived - this.#eventsAcked} unacknowledged`);
    }
    this.#eventsAcked += n;
  }

  /** @internal Ring the channel after a push that returned PUSHED_NOTIFY. */
  notify(): void { this.channel?.signal(); }

  destroy(): void {
    if (this.#destroyed) return;
    if (this.users !== 0) throw new KbypassError('EBUSY', `the CQ is still used by ${this.users} queue pair(s)`);
    if (this.#eventsAcked !== this.eventsReceived) {
      throw new KbypassError('EBUSY', `${this.eventsReceived - this.#eventsAcked} CQ event(s) not acknowledged (ackEvents)`);
    }
    this.#destroyed = true;
    this.channel?.detach(this);
    if (this.region.fd >= 0) { native().close(this.region.fd); this.region.fd = -1; }
    this.#onDestroy();
  }
}
