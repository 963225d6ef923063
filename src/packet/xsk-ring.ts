/**
 * One AF_XDP ring (layout in xdp-layout.ts), as seen from user space: the FILL and TX rings are produced here
 * and consumed by the kernel; RX and COMPLETION the other way round.
 *
 * Indices are free-running u32s. The side that owns an index keeps it in a field and publishes it with one
 * Atomics.store per batch (a release on x86); the other side's index is cached and re-read (Atomics.load, an
 * acquire) only when the cached value says the ring is empty (consumer) or full (producer). Entries are plain
 * u32 words: the publishing store orders them. Nothing here allocates or makes a system call.
 */
import { DESC_ADDR_HI, DESC_ADDR_LO, DESC_LEN, DESC_OPTIONS, XDP_RING_NEED_WAKEUP } from './xdp-layout';

export class XskRing {
  /** Number of entries (a power of two). */
  readonly size: number;
  readonly mask: number;
  /** The entries as u32 words: 4 per xdp_desc (RX, TX), 2 per u64 address (FILL, COMPLETION). */
  readonly words: Uint32Array;
  /** Words per entry (4 or 2). */
  readonly stride: number;
  /** The whole mapping (kept so the views stay valid while the ring object lives). */
  readonly buffer: ArrayBuffer;
  readonly #u32: Uint32Array;
  readonly #producerAt: number;
  readonly #consumerAt: number;
  readonly #flagsAt: number;
  /** Our own index (producer of FILL/TX, consumer of RX/COMPLETION). */
  #local = 0;
  /** Cached copy of the kernel's index. */
  #remote = 0;
  readonly #producer: boolean;

  /**
   * @param buffer the ring's mapping
   * @param offsets producer, consumer, desc, flags byte offsets (from XDP_MMAP_OFFSETS)
   * @param size entries
   * @param entryBytes 16 (xdp_desc) or 8 (u64 address)
   * @param producer true for FILL/TX (we produce), false for RX/COMPLETION
   */
  constructor(buffer: ArrayBuffer, offsets: readonly [number, number, number, number], size: number,
    entryBytes: 8 | 16, producer: boolean) {
    const [prod, cons, desc, flags] = offsets;
    if ((prod & 3) !== 0 || (cons & 3) !== 0 || (desc & 3) !== 0 || (flags & 3) !== 0 ||
        desc + size * entryBytes > buffer.byteLength) {
      throw new RangeError('AF_XDP ring offsets out of the mapping');
    }
    this.buffer = buffer;
    this.size = size;
    this.mask = size - 1;
    this.stride = entryBytes >> 2;
    this.#u32 = new Uint32Array(buffer, 0, buffer.byteLength >> 2);
    this.#producerAt = prod >> 2;
    this.#consumerAt = cons >> 2;
    this.#flagsAt = flags >> 2;
    this.words = new Uint32Array(buffer, desc, size * this.stride);
    this.#producer = producer;
    // A new ring starts at 0/0, but read what is there: a ring is never reused, yet this costs nothing.
    this.#local = Atomics.load(this.#u32, producer ? this.#producerAt : this.#consumerAt);
    this.#remote = Atomics.load(this.#u32, producer ? this.#consumerAt : this.#producerAt);
  }

  /** Our index (next entry to produce, or next to consume). */
  get local(): number { return this.#local; }

  // ---- producer side (FILL, TX) ----

  /** Free entries, at least `want` if the kernel has made that many free (re-reads its index only then). */
  free(want: number): number {
    let free = this.size - ((this.#local - this.#remote) >>> 0);
    if (free < want) {
      this.#remote = Atomics.load(this.#u32, this.#consumerAt);
      free = this.size - ((this.#local - this.#remote) >>> 0);
    }
    return free;
  }

  /** Write entry `local + i` of a FILL/COMPLETION-style ring: a u64 frame address (UMEMs are < 4 GiB). */
  putAddr(i: number, addr: number): void {
    const s = ((this.#local + i) & this.mask) << 1;
    this.words[s] = addr;
    this.words[s + 1] = 0;
  }

  /** Write entry `local + i` of a TX-style ring: an xdp_desc {addr, len, options 0}. */
  putDesc(i: number, addr: number, len: number): void {
    const s = ((this.#local + i) & this.mask) << 2;
    this.words[s + DESC_ADDR_LO] = addr;
    this.words[s + DESC_ADDR_HI] = 0;
    this.words[s + DESC_LEN] = len;
    this.words[s + DESC_OPTIONS] = 0;
  }

  /** Publish `count` entries written with putAddr/putDesc(0..count-1). */
  submit(count: number): void {
    this.#local = (this.#local + count) >>> 0;
    Atomics.store(this.#u32, this.#producerAt, this.#local);
  }

  /** Entries published but not yet taken by the kernel (re-reads its index). */
  outstanding(): number {
    this.#remote = Atomics.load(this.#u32, this.#consumerAt);
    return (this.#local - this.#remote) >>> 0;
  }

  // ---- consumer side (RX, COMPLETION) ----

  /** Entries ready to read, up to `max` (re-reads the kernel's index only when the cached one shows none). */
  available(max: number): number {
    let n = (this.#remote - this.#local) >>> 0;
    if (n === 0) {
      this.#remote = Atomics.load(this.#u32, this.#producerAt);
      n = (this.#remote - this.#local) >>> 0;
    }
    if (n > this.size) return 0; // a kernel index we cannot believe: read nothing rather than garbage
    return n < max ? n : max;
  }

  /** Hand `count` consumed entries back to the kernel. */
  release(count: number): void {
    this.#local = (this.#local + count) >>> 0;
    Atomics.store(this.#u32, this.#consumerAt, this.#local);
  }

  /** The kernel asked for a wake-up syscall on this ring (XDP_RING_NEED_WAKEUP). */
  needsWakeup(): boolean { return (Atomics.load(this.#u32, this.#flagsAt) & XDP_RING_NEED_WAKEUP) !== 0; }

  /** True for FILL/TX. */
  get isProducer(): boolean { return this.#producer; }
}
