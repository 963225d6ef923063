/**
 * The writing side of a single-producer/single-consumer ring of variable-length records (layout.ts).
 *
 * A record is written in place and committed by storing its type word last; the word after it is zeroed first
 * so the consumer stops there. A corked batch holds back the first record's type word, so the whole batch
 * appears at once. The consumer's head is cached and re-read only when the cached value says the ring is full.
 * Nothing here allocates or makes a system call; when the consumer is parked, `wake` (the peer's doorbell)
 * is called, once per park.
 */
import {
  CTRL_CONSUMER_WAITING, CTRL_HEAD, CTRL_PRODUCER_CLOSED, CTRL_PRODUCER_WAITING, FRAG_FIRST_PREFIX_BYTES,
  LINE_BYTES, PLAIN_PUBLISH, RECORD_HEADER_BYTES, RING_CONTROL_BYTES, RING_SLACK_BYTES, TYPE_PAD, WRITE_AHEAD_BYTES,
  maxRecordPayload,
} from './layout';

/** Called when the other side is parked and must be woken (rings its doorbell). */
export type Wake = () => void;

export class RingProducer {
  /** Ring data bytes (capacity bytes, after the control block). */
  readonly bytes: Uint8Array;
  /** The whole region the ring lives in (for copies from the other ring of the same region). */
  readonly region: Uint8Array;
  /** Where `bytes` starts in `region`. */
  readonly bytesOffset: number;
  /** The other ring of the region (the consumer's bytes), whose records can be forwarded with copyWithin. */
  sibling: Uint8Array | null = null;
  /** Where `sibling` starts in `region`. */
  siblingOffset = 0;
  readonly capacity: number;
  /** Largest payload one record may carry. */
  readonly maxPayload: number;
  readonly #i32: Int32Array;
  readonly #ctrl: Int32Array;
  readonly #mask: number;
  readonly #wake: Wake;
  #tail = 0;
  #headCache = 0;
  /** Position up to which the lines ahead of the tail have been written ahead (see #writeAhead). */
  #aheadTo = 0;
  /** WRITE_AHEAD_BYTES, or a quarter of a smaller ring (layout.ts, "Writing ahead"). */
  #writeAheadBytes: number;
  /** True from a reserve() until its commit() or abort(): the bytes past the tail are a claim's, not free. */
  #reserved = false;
  #corked = 0;
  /** Index (in #i32) of the held-back type word of a corked batch, or -1. */
  #heldAt = -1;
  #heldType = 0;
  #fault: string | null = null;

  /** A producer for a new ring (its memory zeroed, head 0). */
  constructor(buffer: ArrayBuffer, ringByteOffset: number, capacity: number, wake: Wake) {
    this.capacity = capacity;
    this.#mask = capacity - 1;
    this.maxPayload = maxRecordPayload(capacity);
    this.#ctrl = new Int32Array(buffer, ringByteOffset, RING_CONTROL_BYTES >> 2);
    this.bytes = new Uint8Array(buffer, ringByteOffset + RING_CONTROL_BYTES, capacity);
    this.region = new Uint8Array(buffer);
    this.bytesOffset = ringByteOffset + RING_CONTROL_BYTES;
    this.#i32 = new Int32Array(buffer, ringByteOffset + RING_CONTROL_BYTES, capacity >> 2);
    this.#wake = wake;
    this.#writeAheadBytes = Math.min(WRITE_AHEAD_BYTES, capacity / 4);
  }

  /** Say which array is the other ring of this region (the incoming one), and where it starts. */
  setSibling(bytes: Uint8Array): void {
    this.sibling = bytes;
    this.siblingOffset = bytes.byteOffset;
  }

  /** Why the consumer's index was rejected, or null. Once set, every reserve fails. */
  get fault(): string | null { return this.#fault; }

  /** Bytes committed but not yet consumed, as of the cached head. */
  get used(): number { return (this.#tail - this.#headCache) >>> 0; }

  /**
   * Reserve room for one record of `payload` bytes (≤ maxPayload), writing a PAD record first if it would
   * cross the end of the ring. Returns the offset in `bytes` where the payload goes, or -1 when there is no room
   * yet (back-pressure) or the ring is faulted. Nothing is visible to the consumer until commit; a reservation
   * that is not committed is simply forgotten (abort).
   */
  reserve(payload: number): number {
    const rec = (payload + 15) & ~7;
    const tail = this.#tail;
    const pos = tail & this.#mask;
    const toEnd = this.capacity - pos;
    const need = (toEnd < rec ? rec + toEnd : rec) + RING_SLACK_BYTES;
    if (((tail - this.#headCache) >>> 0) + need > this.capacity && !this.#refreshHead(need)) return -1;
    this.#reserved = true;
    if (toEnd < rec) {
      this.#write(pos, TYPE_PAD, toEnd - RECORD_HEADER_BYTES, 0);
      this.#tail = (tail + toEnd) | 0;
      return RECORD_HEADER_BYTES;
    }
    return pos + RECORD_HEADER_BYTES;
  }

  /** Forget the reservation made last (a claim aborted): nothing was committed. */
  abort(): void { this.#reserved = false; }

  /**
   * How far past the tail to write ahead after a commit, bytes (layout.ts, "Writing ahead"): an integer from 0
   * (not at all) to a quarter of the ring. Default WRITE_AHEAD_BYTES (320), or a quarter of a smaller ring.
   */
  get writeAheadBytes(): number { return this.#writeAheadBytes; }
  set writeAheadBytes(v: number) {
    if (!Number.isInteger(v) || v < 0 || v > this.capacity / 4) {
      throw new RangeError(`writeAheadBytes must be an integer from 0 to ${this.capacity / 4}; got ${String(v)}`);
    }
    this.#writeAheadBytes = v;
  }

  /**
   * Reserve, copy and commit one DATA record of `src[offset, offset + length)` (length ≤ maxPayload) in one go:
   * the send fast path. Returns false, writing nothing, when there is no room yet.
   */
  offer(type: number, src: Uint8Array, offset: number, length: number): boolean {
    this.#reserved = false; // a reservation not committed is forgotten: this record takes its place
    const rec = (length + 15) & ~7;
    let tail = this.#tail;
    let pos = tail & this.#mask;
    const toEnd = this.capacity - pos;
    const need = (toEnd < rec ? rec + toEnd : rec) + RING_SLACK_BYTES;
    if (((tail - this.#headCache) >>> 0) + need > this.capacity && !this.#refreshHead(need)) return false;
    if (toEnd < rec) {
      this.#write(pos, TYPE_PAD, toEnd - RECORD_HEADER_BYTES, 0);
      tail = (tail + toEnd) | 0;
      pos = 0;
    }
    this.copyIn(pos + RECORD_HEADER_BYTES, src, offset, length);
    this.#write(pos, type, length, (pos + rec) & this.#mask);
    this.#tail = (tail + rec) | 0;
    if (this.#corked === 0) { this.#wakeIfParked(); this.#writeAhead(); }
    return true;
  }

  /**
   * Copy `length` bytes of `src` from `offset` into the ring at `at`, without allocating: a whole array is
   * copied as is, and a message forwarded from the other ring of the same region (`sibling`) moves with
   * copyWithin. (No `.buffer` or `.byteOffset` here: each costs 10–15 ns in V8 11.)
   */
  copyIn(at: number, src: Uint8Array, offset: number, length: number): void {
    if (offset === 0 && length === src.length) {
      this.bytes.set(src, at);
    } else if (src === this.sibling) {
      const from = this.siblingOffset + offset;
      this.region.copyWithin(this.bytesOffset + at, from, from + length);
    } else {
      this.bytes.set(src.subarray(offset, offset + length), at);
    }
  }

  /** Commit the record reserved last (its payload written). Visible at once unless corked. */
  commit(type: number, payload: number): void {
    this.#reserved = false;
    const tail = this.#tail;
    const pos = tail & this.#mask;
    const rec = (payload + 15) & ~7;
    this.#write(pos, type, payload, (pos + rec) & this.#mask);
    this.#tail = (tail + rec) | 0;
    if (this.#corked === 0) { this.#wakeIfParked(); this.#writeAhead(); }
  }

  /**
   * After a commit (a batch's, when corked), take ownership of the next few cache lines of free space by
   * writing a zero into each (layout.ts, "Writing ahead"): the next records' stores then hit lines this core
   * already holds, instead of each waiting for a line last touched by the consumer a lap ago. Only whole lines of
   * free space are written: from the line after the one holding the next type word (which the consumer may be
   * polling) up to writeAheadBytes past the tail, never into the line holding the consumer's head (as last
   * read: the real head is never behind it), and not at all while a reservation is open (its payload lies past
   * the tail).
   */
  #writeAhead(): void {
    if (this.#reserved || this.#writeAheadBytes === 0) return; // past the tail is a claim's payload: not free
    const tail = this.#tail;
    let from = (tail + RECORD_HEADER_BYTES + LINE_BYTES - 1) & ~(LINE_BYTES - 1);
    let end = (tail + this.#writeAheadBytes) & ~(LINE_BYTES - 1);
    // (Compared as differences: positions are int32 and change sign every 2^31 bytes.)
    const free = (this.#headCache + this.capacity) & ~(LINE_BYTES - 1);
    if (((free - end) | 0) < 0) end = free;
    // Lines written ahead by an earlier commit need no second write; a mark outside [from, end] is stale.
    if (((this.#aheadTo - from) | 0) > 0 && ((end - this.#aheadTo) | 0) >= 0) from = this.#aheadTo;
    if (((end - from) | 0) <= 0) return;
    const i32 = this.#i32;
    const mask = this.#mask;
    for (let p = from; p !== end; p = (p + LINE_BYTES) | 0) i32[(p & mask) >> 2] = 0;
    this.#aheadTo = end;
  }

  /** Zero the next type word, write the length, then the type (or hold it back in a batch). */
  #write(pos: number, type: number, length: number, next: number): void {
    const i32 = this.#i32;
    const i = pos >> 2;
    i32[next >> 2] = 0;
    i32[i + 1] = length;
    if (this.#corked !== 0 && this.#heldAt < 0) {
      this.#heldAt = i;
      this.#heldType = type;
    } else if (PLAIN_PUBLISH) {
      i32[i] = type;
    } else {
      Atomics.store(i32, i, type);
    }
  }

  #wakeIfParked(): void {
    // A plain read (a cache hit: the flag's line is rarely written); the parked side's re-check covers a
    // read that races with its park (layout.ts).
    if (this.#ctrl[CTRL_CONSUMER_WAITING] !== 0 &&
        Atomics.compareExchange(this.#ctrl, CTRL_CONSUMER_WAITING, 1, 0) === 1) {
      this.#wake();
    }
  }

  /** Hold commits back until the matching uncork (nests): the batch then appears at once. */
  cork(): void { this.#corked++; }

  /** End one cork; the outermost commits the batch and wakes the consumer if it is parked. */
  uncork(): void {
    if (this.#corked === 0 || --this.#corked !== 0) return;
    const at = this.#heldAt;
    if (at >= 0) {
      this.#heldAt = -1;
      if (PLAIN_PUBLISH) this.#i32[at] = this.#heldType;
      else Atomics.store(this.#i32, at, this.#heldType);
    }
    this.#wakeIfParked();
    this.#writeAhead();
  }

  /** Commit everything, then say no record will follow (orderly close). */
  markClosed(): void {
    if (this.#corked !== 0) { this.#corked = 1; this.uncork(); }
    Atomics.store(this.#ctrl, CTRL_PRODUCER_CLOSED, 1);
  }

  /** Number of records a message of `length` bytes takes (1 unless it must be fragmented). */
  fragmentCount(length: number): number {
    if (length <= this.maxPayload) return 1;
    const first = this.maxPayload - FRAG_FIRST_PREFIX_BYTES;
    return 1 + Math.ceil((length - first) / this.maxPayload);
  }

  /** Free bytes in the ring, re-reading the consumer's head (0 when faulted). */
  freeBytes(): number {
    return this.#refreshHead(0) ? Math.max(0, this.capacity - RING_SLACK_BYTES - this.used) : 0;
  }

  /** Is there room for a record of `payload` bytes now (and the padding before it)? Sets no flag. */
  hasRoomFor(payload: number): boolean {
    const rec = (payload + 15) & ~7;
    const toEnd = this.capacity - (this.#tail & this.#mask);
    return this.#refreshHead((toEnd < rec ? rec + toEnd : rec) + RING_SLACK_BYTES);
  }

  /**
   * Park: say we wait for space for a record of `payload` bytes. Returns true if space is there already (the
   * flag is cleared again; go on writing), false if the consumer will ring our doorbell when it frees space.
   */
  parkForSpace(payload: number): boolean {
    Atomics.store(this.#ctrl, CTRL_PRODUCER_WAITING, 1);
    const rec = (payload + 15) & ~7;
    const toEnd = this.capacity - (this.#tail & this.#mask);
    if (this.#refreshHead((toEnd < rec ? rec + toEnd : rec) + RING_SLACK_BYTES)) {
      Atomics.store(this.#ctrl, CTRL_PRODUCER_WAITING, 0);
      return true;
    }
    return false;
  }

  #refreshHead(need: number): boolean {
    if (this.#fault !== null) return false;
    const head = Atomics.load(this.#ctrl, CTRL_HEAD);
    const used = (this.#tail - head) >>> 0;
    // The consumer only moves its head forward, up to our tail, in 8-byte steps.
    if (used > this.capacity || (head & 7) !== 0) {
      this.#fault = `consumer head ${head >>> 0} is outside [tail − capacity, tail] (tail ${this.#tail >>> 0})`;
      // Make the cached head say "full", so that every later reserve comes here and fails.
      this.#headCache = (this.#tail - this.capacity) | 0;
      return false;
    }
    this.#headCache = head;
    return used + need <= this.capacity;
  }
}
