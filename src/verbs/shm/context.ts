/**
 * The shm0 device: RDMA verbs between processes of one host over shared memory. A requester executes its own
 * work requests against the peer's registered memory, mapped at connection time, so the target's CPU takes no
 * part in RDMA WRITE, READ or atomics — as with a real HCA. See docs/VERBS.md for the trust model.
 */
import { KbypassError } from '../../errors';
import type { CompChannel, Context, DeviceInfo, Provider } from '../api';
import { AtomicCap, Mtu } from '../constants';
import type { DeviceAttr, PortAttr } from '../types';
import { MRT_CAPACITY } from './layout';
import { ShmCompChannel, ShmCq } from './cq';
import { ShmPd } from './pd';
import type { RemoteQp } from './remote';
import { LOCAL_LID } from './lid';

const GUID = 0x6b62797073000001n; // 'kbyps' … 1

export const SHM_DEVICE: DeviceInfo = Object.freeze({ name: 'shm0', guid: GUID, transport: 'shm' });

/** The device's limits (ibv_query_device). */
export const SHM_LIMITS: Readonly<DeviceAttr> = Object.freeze({
  fwVer: '1.0.0',
  nodeGuid: GUID,
  sysImageGuid: GUID,
  // 2 GiB: offsets within an MR stay 31-bit integers (the data path's word copies index with them).
  maxMrSize: 2 ** 31,
  pageSizeCap: 4096,
  vendorId: 0,
  vendorPartId: 0,
  hwVer: 1,
  maxQp: 1 << 16,
  maxQpWr: 1 << 15,
  maxSge: 32,
  maxCq: 1 << 16,
  maxCqe: 1 << 20,
  maxMr: MRT_CAPACITY - 1,
  maxPd: 1 << 16,
  maxQpRdAtom: 16,
  maxQpInitRdAtom: 16,
  maxSrq: 1 << 16,
  maxSrqWr: 1 << 15,
  maxSrqSge: 32,
  maxInlineData: 4096,
  atomicCap: AtomicCap.HCA,
  maxPkeys: 1,
  physPortCnt: 1,
});

export { LOCAL_LID } from './lid';

let nextQpn = 0x100 + ((process.pid * 2654435761) >>> 0) % 0x7f0000;

export class ShmContext implements Context {
  readonly device = SHM_DEVICE;
  /** @internal */ readonly pds = new Set<ShmPd>();
  /** @internal Peers' QPs attached by the connection manager, by `${lid}:${qpn}`. */
  readonly remotes = new Map<string, RemoteQp>();
  /** CQs and completion channels not yet destroyed. */
  #live = 0;
  #closed = false;

  query(): DeviceAttr { return { ...SHM_LIMITS }; }

  queryPort(port: number): PortAttr {
    if (port !== 1) throw new KbypassError('EINVAL', `shm0 has one port (1), not ${port}`);
    return { state: 4, maxMtu: Mtu.MTU_4096, activeMtu: Mtu.MTU_4096, gidTblLen: 1, pkeyTblLen: 1, lid: LOCAL_LID, linkLayer: 'InfiniBand' };
  }

  allocPd(): ShmPd {
    this.#check();
    const pd = new ShmPd(this);
    this.pds.add(pd);
    return pd;
  }

  createCompChannel(): CompChannel {
    this.#check();
    this.#live++;
    return new ShmCompChannel(() => { this.#live--; });
  }

  createCq(cqe: number, channel: CompChannel | null = null): ShmCq {
    this.#check();
    if (!Number.isInteger(cqe) || cqe < 1 || cqe > SHM_LIMITS.maxCqe) {
      throw new KbypassError('EINVAL', `cqe must be an integer from 1 to ${SHM_LIMITS.maxCqe}, got ${cqe}`);
    }
    if (channel !== null && !(channel instanceof ShmCompChannel)) throw new KbypassError('EINVAL', 'the channel belongs to another device');
    if (channel !== null && channel.destroyed) throw new KbypassError('EINVAL', 'the completion channel was destroyed');
    this.#live++;
    return new ShmCq(cqe, channel, () => { this.#live--; });
  }

  /** @internal A new QP number (24 bits, unique in this process). */
  allocQpn(): number {
    const q = nextQpn;
    nextQpn = nextQpn >= 0xfffff0 ? 0x100 : nextQpn + 1;
    return q;
  }

  /** @internal */ remoteKey(lid: number, qpn: number): string { return `${lid}:${qpn}`; }

  close(): void {
    if (this.#closed) return;
    if (this.pds.size !== 0) throw new KbypassError('EBUSY', `${this.pds.size} protection domain(s) still allocated`);
    if (this.#live !== 0) throw new KbypassError('EBUSY', `${this.#live} CQ(s) or completion channel(s) not destroyed`);
    this.#closed = true;
  }

  #check(): void {
    if (this.#closed) throw new KbypassError('EINVAL', 'the device context was closed');
  }
}

export const shmProvider: Provider = {
  devices: () => [SHM_DEVICE],
  open: () => new ShmContext(),
};
