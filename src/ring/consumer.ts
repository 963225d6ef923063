/**
 * The reading side of the ring (layout.ts): walks committed records in place and hands each message to a
 * handler as (buffer, offset, length) — no allocation, no copy, no system call per message. A record is there
 * when its type word is non-zero. Fragments are reassembled into a buffer owned by the consumer. The head is
 * published after a handler returns, never before, so the producer never overwrites a record a handler is
 * reading: at the end of each poll, and within a long batch every PUBLISH_FRACTION of the ring, so that a
 * producer waiting for room can refill what is already consumed while the rest is read. One poll goes at most
 * once round the ring.
 *
 * Every header comes from memory the peer can write: each is checked (bounds, type, fragment order, advertised
 * maximum) before it is used, and the first bad one stops the consumer with a reason. A hostile producer can
 * make us read garbage within the ring, never outside it.
 */
import {
  CTRL_CONSUMER_WAITING, CTRL_HEAD, CTRL_PRODUCER_CLOSED, CTRL_PRODUCER_WAITING, FRAG_FIRST_PREFIX_BYTES,
  PLAIN_PUBLISH, RING_CONTROL_BYTES, RING_SLACK_BYTES, TYPE_DATA, TYPE_FRAG_FIRST, TYPE_FRAG_LAST, TYPE_FRAG_MIDDLE,
  TYPE_PAD,
} from './layout';
import type { Wake } from './producer';

/** Within one poll, the head is published (and a producer waiting for room rung) each time this fraction of
 *  the ring has been consumed since the last publish. */
export const PUBLISH_FRACTION = 8;

/**
 * Receives one message. `buffer[offset .. offset + length)` is the message, valid only until the handler
 * returns (it is ring memory, reused once the handler is done): copy what you keep.
 */
export type MessageHandler = (buffer: Uint8Array, offset: number, length: number) => void;

/** Why a consumer stopped. */
export type ConsumerFault = { code: 'ERR_KBYPASS_RING_CORRUPT' | 'ERR_KBYPASS_MESSAGE_TOO_LARGE'; reason: string };

export class RingConsumer {
  readonly bytes: Uint8Array;
  readonly capacity: number;
  readonly #i32: Int32Array;
  readonly #ctrl: Int32Array;
  readonly #mask: number;
  readonly #wake: Wake;
  readonly #maxMessage: number;
  #head = 0;
  /** Bytes consumed within one poll between two publishes of the head (capacity / PUBLISH_FRACTION). */
  readonly #publishEvery: number;
  #fault: ConsumerFault | null = null;
  #polling = false;
  // Reassembly of a fragmented message.
  #asm: Uint8Array | null = null;
  #asmTotal = -1;
  #asmLen = 0;

  /** @param maxMessage the largest message this side accepts (advertised to the peer at the handshake) */
  constructor(buffer: ArrayBuffer, ringByteOffset: number, capacity: number, maxMessage: number, wake: Wake) {
    this.capacity = capacity;
    this.#publishEvery = capacity / PUBLISH_FRACTION;
    this.#mask = capacity - 1;
    this.#maxMessage = maxMessage;
    this.#ctrl = new Int32Array(buffer, ringByteOffset, RING_CONTROL_BYTES >> 2);
    this.bytes = new Uint8Array(buffer, ringByteOffset + RING_CONTROL_BYTES, capacity);
    this.#i32 = new Int32Array(buffer, ringByteOffset + RING_CONTROL_BYTES, capacity >> 2);
    this.#wake = wake;
  }

  /** The reason the consumer stopped (a corrupt ring or a protocol violation), or null. */
  get fault(): ConsumerFault | null { return this.#fault; }

  /** True once the producer has said it committed its last record (orderly close). */
  producerClosed(): boolean { return Atomics.load(this.#ctrl, CTRL_PRODUCER_CLOSED) !== 0; }

  /** True if a committed record is waiting (always, from inside a handler: the batch is not over). */
  hasData(): boolean {
    return this.#fault === null && (this.#polling || Atomics.load(this.#i32, (this.#head & this.#mask) >> 2) !== 0);
  }

  /**
   * Hand up to `limit` messages to `handler`. Returns how many were handed over (0 when the ring is empty,
   * stopped, when called from inside a handler, or when `limit` is below 1). A handler that throws ends the
   * batch; its record counts as consumed and the exception propagates.
   */
  poll(handler: MessageHandler, limit: number): number {
    if (this.#polling || this.#fault !== null || limit < 1) return 0;
    const i32 = this.#i32;
    const mask = this.#mask;
    const start = this.#head;
    let published = start;
    let head = start;
    const publishEvery = this.#publishEvery;
    // The one load a spinning caller repeats: an atomic load, so no compiler may hoist it out of their loop.
    let type = Atomics.load(i32, (head & mask) >> 2);
    if (type === 0) return 0;
    const cap = this.capacity;
    let n = 0;
    this.#polling = true;
    try {
      for (;;) {
        const pos = head & mask;
        const length = i32[(pos >> 2) + 1]!;
        // (Compared before rounding: `length + 15` would wrap to a negative int32 for lengths near 2^31.)
        if (length < 0 || length > cap - pos - 8) {
          this.#corrupt(`record at ${pos} claims ${length} bytes; ${cap - pos} remain before the end of the ring`);
          break;
        }
        const rec = (length + 15) & ~7;
        // One lap per poll: a producer refilling what this poll published could otherwise keep it going for ever;
        // the rest is the next poll's. Past the lap, the record may also run past what a producer can write:
        // capacity − slack bytes beyond the head we last published (`published` is between `start` and `head`,
        // so only a record that ends the lap can fail that). Such a record was overwritten, or goes round the
        // ring. (The first record of a poll ends the lap only if it is corrupt.)
        if (((head - start) >>> 0) + rec > cap - RING_SLACK_BYTES) {
          if (((head - published) >>> 0) + rec > cap - RING_SLACK_BYTES) {
            this.#corrupt(`record at ${pos} runs past the ${cap - RING_SLACK_BYTES} bytes a producer can be ahead of the head`);
          }
          break;
        }
        // Consumed: its type word goes back to 0, so no record position is handed over twice. A producer that
        // stops without zeroing the word after its last record (a hostile one, or one that died mid-write)
        // cannot make later polls go round the ring again and again.
        i32[pos >> 2] = 0;
        head = (head + rec) | 0;
        if (type === TYPE_DATA) {
          if (this.#asmTotal >= 0) { this.#corrupt('a whole message arrived in the middle of a fragmented one'); break; }
          if (length > this.#maxMessage) { this.#tooLarge(length); break; }
          n++;
          handler(this.bytes, pos + 8, length);
        } else if (type === TYPE_PAD) {
          if (pos + rec !== cap) { this.#corrupt(`padding record at ${pos} does not end at the end of the ring`); break; }
        } else if (type === TYPE_FRAG_FIRST || type === TYPE_FRAG_MIDDLE || type === TYPE_FRAG_LAST) {
          if (this.#fragment(type, pos + 8, length)) {
            n++;
            const total = this.#asmTotal;
            this.#asmTotal = -1;
            this.#asmLen = 0;
            handler(this.#asm!, 0, total);
          } else if (this.#fault !== null) break;
        } else {
          this.#corrupt(`unknown record type ${type} at ${pos}`);
          break;
        }
        if (n >= limit) break;
        if (((head - published) >>> 0) >= publishEvery) {
          // A long batch: hand the consumed part back now (the producer may be waiting for it).
          this.#publish(head);
          published = head;
        }
        type = i32[(head & mask) >> 2]!;
        if (type === 0) break;
      }
    } finally {
      this.#polling = false;
      this.#head = head;
      this.#publish(head);
    }
    return n;
  }

  /** Publish the head, and ring the producer if it is parked waiting for room. */
  #publish(head: number): void {
    if (PLAIN_PUBLISH) this.#ctrl[CTRL_HEAD] = head;
    else Atomics.store(this.#ctrl, CTRL_HEAD, head);
    if (this.#ctrl[CTRL_PRODUCER_WAITING] !== 0 &&
        Atomics.compareExchange(this.#ctrl, CTRL_PRODUCER_WAITING, 1, 0) === 1) {
      this.#wake();
    }
  }

  /**
   * Park: say we wait for data. Returns true if data is there already (flag cleared again: poll now), false if
   * the producer will ring our doorbell when it commits.
   */
  park(): boolean {
    Atomics.store(this.#ctrl, CTRL_CONSUMER_WAITING, 1);
    if (this.hasData() || this.#fault !== null || this.producerClosed()) {
      Atomics.store(this.#ctrl, CTRL_CONSUMER_WAITING, 0);
      return true;
    }
    return false;
  }

  /** Clear our waiting flag (we are awake and polling). */
  unpark(): void {
    if (Atomics.load(this.#ctrl, CTRL_CONSUMER_WAITING) !== 0) Atomics.store(this.#ctrl, CTRL_CONSUMER_WAITING, 0);
  }

  /** Returns true when a whole message is assembled. */
  #fragment(type: number, off: number, length: number): boolean {
    const bytes = this.bytes;
    if (type === TYPE_FRAG_FIRST) {
      if (this.#asmTotal >= 0) { this.#corrupt('a new fragmented message began before the last one ended'); return false; }
      if (length < FRAG_FIRST_PREFIX_BYTES) { this.#corrupt('first fragment shorter than its prefix'); return false; }
      const total = (bytes[off]! | (bytes[off + 1]! << 8) | (bytes[off + 2]! << 16) | (bytes[off + 3]! << 24)) >>> 0;
      if (total > this.#maxMessage) { this.#tooLarge(total); return false; }
      const part = length - FRAG_FIRST_PREFIX_BYTES;
      if (part > total) { this.#corrupt(`first fragment (${part} bytes) longer than its message (${total})`); return false; }
      if (this.#asm === null || this.#asm.length < total) this.#asm = new Uint8Array(Math.max(total, 64));
      this.#asm.set(bytes.subarray(off + FRAG_FIRST_PREFIX_BYTES, off + length), 0);
      this.#asmTotal = total;
      this.#asmLen = part;
      return false;
    }
    if (this.#asmTotal < 0) { this.#corrupt('a continuation fragment arrived with no message begun'); return false; }
    if (this.#asmLen + length > this.#asmTotal) { this.#corrupt('fragments exceed their message length'); return false; }
    this.#asm!.set(bytes.subarray(off, off + length), this.#asmLen);
    this.#asmLen += length;
    if (type === TYPE_FRAG_MIDDLE) return false;
    if (this.#asmLen !== this.#asmTotal) { this.#corrupt(`last fragment leaves the message at ${this.#asmLen} of ${this.#asmTotal} bytes`); return false; }
    return true;
  }

  #corrupt(reason: string): void {
    if (this.#fault === null) this.#fault = { code: 'ERR_KBYPASS_RING_CORRUPT', reason };
  }

  #tooLarge(length: number): void {
    if (this.#fault === null) {
      this.#fault = { code: 'ERR_KBYPASS_MESSAGE_TOO_LARGE', reason: `peer sent a ${length}-byte message; this side accepts at most ${this.#maxMessage}` };
    }
  }
}
