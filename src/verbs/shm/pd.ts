/**
 * shm0's protection domain: owns the memory-region table peers read (mr-table.ts) and the regions registered in
 * it. Each registered region gets an id; its memfd goes to every connected peer, so one-sided operations reach
 * it without our CPU.
 */
import { KbypassError } from '../../errors';
import { createRegion, type Region } from '../../memory/region';
import { native } from '../../native/binding';
import type { Context, MemoryRegion, ProtectionDomain, QpInitAttr, SrqInitAttr } from '../api';
import { Access, ACCESS_ALL } from '../constants';
import type { AddressHandle } from '../types';
import { MAX_REGION_ID, MRT_CAPACITY, iovaOf, keyIndex, makeKey, mrtBytes } from './layout';
import { MrTable } from './mr-table';
import type { ShmContext } from './context';
import { ShmQp } from './qp';
import { ShmSrq } from './srq';

let nextPdId = 1;
/**
 * Key generations per table slot, shared by every PD of this process, and the keys of the live MRs: a new key
 * is never one that names a live MR of another PD, so an lkey/rkey names one MR of one PD (as an HCA's keys do)
 * and another PD's key fails the target PD's lookup instead of matching its MR in the same slot.
 */
const generations = new Uint8Array(MRT_CAPACITY);
const liveKeys = new Set<number>();

export class ShmMr implements MemoryRegion {
  readonly pd: ShmPd;
  readonly addr: number;
  readonly length: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly access: number;
  readonly buffer: Uint8Array;
  /** @internal The region as 64-bit words (aligned copies). */ readonly words: BigUint64Array;
  /** @internal */ readonly regionId: number;
  /** @internal */ valid = true;

  constructor(pd: ShmPd, key: number, regionId: number, bytes: Uint8Array, access: number) {
    this.pd = pd;
    this.lkey = key;
    this.rkey = key;
    this.regionId = regionId;
    this.addr = iovaOf(regionId, 0);
    this.length = bytes.length;
    this.buffer = bytes;
    this.words = new BigUint64Array(bytes.buffer, 0, Math.floor(bytes.buffer.byteLength / 8));
    this.access = access;
  }

  deregister(): void {
    if (!this.valid) return;
    this.valid = false;
    this.pd.release(this);
  }
}

/** What a connection needs to hear about: a region registered after it was set up. */
export type RegionListener = (regionId: number, fd: number) => void;

export class ShmPd implements ProtectionDomain {
  readonly context: ShmContext;
  readonly id = nextPdId++;
  /** @internal */ readonly table: MrTable;
  /** @internal */ readonly tableRegion: Region;
  /** @internal Registered regions by id (index 0 unused). */
  readonly regions: Array<Region | undefined> = [undefined];
  /** @internal Their bytes by id, for the local side of operations. */
  readonly regionBytes: Array<Uint8Array | undefined> = [undefined];
  /** @internal MRs by table slot. */
  readonly mrs: Array<ShmMr | undefined> = [];
  /** @internal Connections to tell about new regions. */
  readonly listeners = new Set<RegionListener>();
  readonly #regionIds = new Map<Region, number>();
  readonly #ownRegions = new Set<Region>();
  #freeSlots: number[] = [];
  #nextSlot = 1;
  /** @internal */ users = 0;
  #live = 0;
  #deallocated = false;

  constructor(context: ShmContext) {
    this.context = context;
    this.tableRegion = createRegion(mrtBytes(MRT_CAPACITY), { name: 'kbypass-mrt' });
    this.table = MrTable.init(this.tableRegion.buffer, MRT_CAPACITY);
  }

  registerMemory(regionOrLength: Region | number, access: number): MemoryRegion {
    this.#check();
    if (!Number.isInteger(access) || (access & ~ACCESS_ALL) !== 0) {
      throw new KbypassError('EINVAL', `access flags 0x${Number(access).toString(16)} include bits this device does not know`);
    }
    if ((access & (Access.REMOTE_WRITE | Access.REMOTE_ATOMIC)) !== 0 && (access & Access.LOCAL_WRITE) === 0) {
      throw new KbypassError('EINVAL', 'REMOTE_WRITE and REMOTE_ATOMIC access need LOCAL_WRITE too (ibv_reg_mr)');
    }
    const maxMr = this.context.query().maxMrSize;
    let region: Region;
    let length: number;
    let own = false;
    if (typeof regionOrLength === 'number') {
      if (!Number.isInteger(regionOrLength) || regionOrLength < 1 || regionOrLength > maxMr) {
        throw new KbypassError('EINVAL', `cannot register ${regionOrLength} bytes (1 to ${maxMr})`);
      }
      length = regionOrLength;
      region = { buffer: new ArrayBuffer(0), size: 0, fd: -1 }; // made below, once nothing else can fail
      own = true;
    } else if (regionOrLength !== null && typeof regionOrLength === 'object' && regionOrLength.buffer instanceof ArrayBuffer &&
        !ArrayBuffer.isView(regionOrLength) && Number.isInteger(regionOrLength.fd) && Number.isInteger(regionOrLength.size) &&
        regionOrLength.size > 0 && regionOrLength.size <= regionOrLength.buffer.byteLength) {
      region = regionOrLength;
      if (region.fd < 0) throw new KbypassError('EBADF', 'the region\'s fd is closed: peers could never map it (keep it open while registered)');
      if (region.size > maxMr) throw new KbypassError('EINVAL', `cannot register a ${region.size}-byte region (at most ${maxMr})`);
      length = region.size;
    } else {
      throw new KbypassError('ERR_INVALID_ARG_TYPE', 'The "regionOrLength" argument must be a Region (createRegion) or a length in bytes');
    }
    // Everything that can fail comes first; the PD changes only once the MR exists (all or nothing).
    const slot = this.#freeSlots.length !== 0 ? this.#freeSlots[this.#freeSlots.length - 1]! : this.#nextSlot;
    if (slot >= MRT_CAPACITY) throw new KbypassError('ENOMEM', `this protection domain holds at most ${MRT_CAPACITY - 1} MRs`);
    let gen = generations[slot]!;
    let key = 0;
    for (let i = 0; i < 255 && (key === 0 || liveKeys.has(key)); i++) { gen = (gen % 255) + 1; key = makeKey(slot, gen); }
    if (liveKeys.has(key)) throw new KbypassError('ENOMEM', `no free key for MR slot ${slot} (255 live MRs of other PDs use it)`);
    let regionId = own ? undefined : this.#regionIds.get(region);
    const isNew = regionId === undefined;
    if (isNew && this.regions.length > MAX_REGION_ID) throw new KbypassError('ENOMEM', 'too many registered regions');
    // Our own region, or our own descriptor of the caller's: peers get it at connection time, and the caller may
    // close theirs (or the number may be reused) meanwhile.
    let shared: Region | undefined;
    if (isNew) {
      if (own) {
        region = createRegion(length, { name: 'kbypass-mr' });
        shared = region;
      } else {
        shared = { buffer: region.buffer, size: region.size, fd: native().dup(region.fd) };
      }
    }
    let mr: ShmMr;
    try {
      mr = new ShmMr(this, key, isNew ? this.regions.length : regionId!, new Uint8Array(region.buffer, 0, length), access);
    } catch (e) {
      if (shared !== undefined) native().close(shared.fd);
      throw e;
    }
    if (isNew) {
      regionId = this.regions.length;
      if (!own) this.#regionIds.set(region, regionId);
      this.#ownRegions.add(shared!);
      this.regions.push(shared);
      this.regionBytes.push(new Uint8Array(region.buffer));
    }
    if (this.#freeSlots.length !== 0) this.#freeSlots.pop(); else this.#nextSlot++;
    generations[slot] = gen;
    liveKeys.add(key);
    this.mrs[slot] = mr;
    this.#live++;
    this.table.publish(key, access, regionId!, mr.addr, length);
    if (isNew) for (const l of this.listeners) l(regionId!, shared!.fd);
    return mr;
  }

  /** @internal */
  release(mr: ShmMr): void {
    this.table.revoke(mr.lkey);
    liveKeys.delete(mr.lkey);
    const slot = keyIndex(mr.lkey);
    this.mrs[slot] = undefined;
    this.#freeSlots.push(slot);
    this.#live--;
  }

  /** @internal The local MR for an lkey, or undefined. */
  localMr(lkey: number): ShmMr | undefined {
    const mr = this.mrs[keyIndex(lkey)];
    return mr !== undefined && mr.lkey === lkey ? mr : undefined;
  }

  createQp(init: QpInitAttr): ShmQp {
    this.#check();
    return new ShmQp(this, init);
  }

  createSrq(init: SrqInitAttr): ShmSrq {
    this.#check();
    return new ShmSrq(this, init);
  }

  createAh(attr: { dlid: number; portNum?: number }): AddressHandle {
    this.#check();
    if (attr === null || typeof attr !== 'object' || !Number.isInteger(attr.dlid) || attr.dlid < 0 || attr.dlid > 0xffff) {
      throw new KbypassError('EINVAL', 'an address handle needs a 16-bit dlid');
    }
    return Object.freeze({ dlid: attr.dlid, portNum: attr.portNum ?? 1 });
  }

  dealloc(): void {
    if (this.#deallocated) return;
    if (this.#live !== 0 || this.users !== 0) {
      throw new KbypassError('EBUSY', `the protection domain still has ${this.#live} MR(s) and ${this.users} QP/SRQ(s)`);
    }
    this.#deallocated = true;
    const n = native();
    for (const r of this.#ownRegions) if (r.fd >= 0) { n.close(r.fd); r.fd = -1; }
    if (this.tableRegion.fd >= 0) { n.close(this.tableRegion.fd); this.tableRegion.fd = -1; }
    this.context.pds.delete(this);
  }

  #check(): void {
    if (this.#deallocated) throw new KbypassError('EINVAL', 'the protection domain was deallocated');
  }
}

export type { Context };
