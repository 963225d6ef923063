/**
 * Writing whole messages into a ring: one DATA record when the message fits in a record, else a FRAG_FIRST
 * (with the total length), FRAG_MIDDLEs and a FRAG_LAST. Resumable: it writes what fits now and says how far it
 * got, so a sender can continue when the consumer frees space.
 */
import { FRAG_FIRST_PREFIX_BYTES, TYPE_DATA, TYPE_FRAG_FIRST, TYPE_FRAG_LAST, TYPE_FRAG_MIDDLE } from './layout';
import type { RingProducer } from './producer';

/**
 * Write as much of the message `src[offset, offset + length)` as fits, starting `done` bytes into it.
 * Returns the new `done`: `length` when the whole message is committed; -1 if nothing at all could be written
 * (no room yet, or the ring is faulted).
 */
export function writeMessage(p: RingProducer, src: Uint8Array, offset: number, length: number, done: number): number {
  const max = p.maxPayload;
  if (done === 0 && length <= max) return p.offer(TYPE_DATA, src, offset, length) ? length : -1;
  const start = done;
  p.cork();
  try {
    if (done === 0) {
      const part = max - FRAG_FIRST_PREFIX_BYTES;
      const at = p.reserve(max);
      if (at < 0) return -1;
      const b = p.bytes;
      b[at] = length & 0xff; b[at + 1] = (length >>> 8) & 0xff; b[at + 2] = (length >>> 16) & 0xff; b[at + 3] = length >>> 24;
      b[at + 4] = 0; b[at + 5] = 0; b[at + 6] = 0; b[at + 7] = 0;
      p.copyIn(at + FRAG_FIRST_PREFIX_BYTES, src, offset, part);
      p.commit(TYPE_FRAG_FIRST, max);
      done = part;
    }
    while (done < length) {
      const part = Math.min(max, length - done);
      const at = p.reserve(part);
      if (at < 0) break;
      p.copyIn(at, src, offset + done, part);
      done += part;
      p.commit(done === length ? TYPE_FRAG_LAST : TYPE_FRAG_MIDDLE, part);
    }
  } finally {
    p.uncork();
  }
  return done === start ? -1 : done;
}
