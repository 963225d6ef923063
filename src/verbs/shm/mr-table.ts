/**
 * A protection domain's memory-region table in shared memory (layout.ts, part 4). The owner publishes and
 * revokes keys; peers look keys up on every one-sided operation, so a deregistered MR stops working for them at
 * once. Lookups are O(1): a key carries its slot index and a generation.
 */
import {
  LAYOUT_VERSION, MRE_ACCESS, MRE_F64_ADDR, MRE_F64_LENGTH, MRE_KEY, MRE_REGION, MRT_ENTRY_BYTES, MRT_HEADER_BYTES,
  MRT_I_CAPACITY, MRT_I_MAGIC, MRT_I_VERSION, MRT_MAGIC, keyIndex, mrtBytes,
} from './layout';
import { layoutError } from './cq-ring';
import { PLAIN_PUBLISH } from '../../ring/layout';

/** What a lookup found (reused by its caller). */
export class MrRef {
  key = 0;
  access = 0;
  regionId = 0;
  addr = 0;
  length = 0;
  /** True if [addr, addr + len) lies inside this MR. */
  covers(addr: number, len: number): boolean {
    return addr >= this.addr && len >= 0 && addr + len <= this.addr + this.length;
  }
}

export class MrTable {
  readonly capacity: number;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;

  private constructor(buffer: ArrayBuffer, capacity: number) {
    this.capacity = capacity;
    this.#i32 = new Int32Array(buffer, 0, mrtBytes(capacity) >> 2);
    this.#f64 = new Float64Array(buffer, 0, mrtBytes(capacity) >> 3);
  }

  static init(buffer: ArrayBuffer, capacity: number): MrTable {
    const i32 = new Int32Array(buffer, 0, MRT_HEADER_BYTES >> 2);
    i32[MRT_I_VERSION] = LAYOUT_VERSION;
    i32[MRT_I_CAPACITY] = capacity;
    Atomics.store(i32, MRT_I_MAGIC, MRT_MAGIC);
    return new MrTable(buffer, capacity);
  }

  static attach(buffer: ArrayBuffer): MrTable {
    if (buffer.byteLength < MRT_HEADER_BYTES) throw layoutError('MR table region smaller than its header');
    const i32 = new Int32Array(buffer, 0, MRT_HEADER_BYTES >> 2);
    if (Atomics.load(i32, MRT_I_MAGIC) !== MRT_MAGIC) throw layoutError('not a kbypass MR table (bad magic)');
    if (i32[MRT_I_VERSION] !== LAYOUT_VERSION) throw layoutError(`MR table layout version ${i32[MRT_I_VERSION]}, this side speaks ${LAYOUT_VERSION}`);
    const cap = i32[MRT_I_CAPACITY]!;
    if (cap <= 0 || cap > (1 << 24) || mrtBytes(cap) > buffer.byteLength) throw layoutError(`bad MR table capacity ${cap}`);
    return new MrTable(buffer, cap);
  }

  /** Owner: publish an MR in slot keyIndex(key); the key is stored last. */
  publish(key: number, access: number, regionId: number, addr: number, length: number): void {
    const e = (MRT_HEADER_BYTES + keyIndex(key) * MRT_ENTRY_BYTES) >> 2;
    this.#i32[e + MRE_ACCESS] = access;
    this.#i32[e + MRE_REGION] = regionId;
    this.#f64[(e >> 1) + MRE_F64_ADDR] = addr;
    this.#f64[(e >> 1) + MRE_F64_LENGTH] = length;
    Atomics.store(this.#i32, e + MRE_KEY, key | 0);
  }

  /** Owner: revoke the MR with this key (peers fail from their next lookup). */
  revoke(key: number): void {
    const e = (MRT_HEADER_BYTES + keyIndex(key) * MRT_ENTRY_BYTES) >> 2;
    Atomics.compareExchange(this.#i32, e + MRE_KEY, key | 0, 0);
  }

  /** Look `key` up into `out`; false if no MR has that key now. */
  lookup(key: number, out: MrRef): boolean {
    const index = keyIndex(key);
    if (index >= this.capacity || key === 0) return false;
    const e = (MRT_HEADER_BYTES + index * MRT_ENTRY_BYTES) >> 2;
    const k = key | 0;
    // x86 keeps loads in order, so a plain first read is enough there; elsewhere it must be an acquire.
    if ((PLAIN_PUBLISH ? this.#i32[e + MRE_KEY] : Atomics.load(this.#i32, e + MRE_KEY)) !== k) return false;
    out.access = this.#i32[e + MRE_ACCESS]!;
    out.regionId = this.#i32[e + MRE_REGION]!;
    out.addr = this.#f64[(e >> 1) + MRE_F64_ADDR]!;
    out.length = this.#f64[(e >> 1) + MRE_F64_LENGTH]!;
    out.key = key;
    // Re-read: a revoke (or a revoke and a new MR in the slot) in between makes the entry invalid.
    return Atomics.load(this.#i32, e + MRE_KEY) === k;
  }
}
