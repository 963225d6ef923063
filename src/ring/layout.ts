/**
 * The shared-memory layout of a channel region — described here once, and only here.
 *
 * A channel is one memfd mapped by both processes: a header page, then two rings, one each way. Every number
 * below is little-endian (both peers run on the same host). All positions are byte counts modulo 2^32.
 *
 * ```
 *  region (one memfd, sealed against shrink/grow, size = REGION_HEADER_BYTES + 2 × (RING_CONTROL_BYTES + capacity))
 *  +--------------------------------------------------------------------------------------------+ 0
 *  | region header (4096 B)                                                                      |
 *  |   0  u32 magic 0x5059424b ("KBYP")    4  u16 version (1)     6  u16 header bytes (4096)     |
 *  |   8  u32 ring capacity (bytes, power of two)                 12 u32 region bytes            |
 *  |  16  u32 ring 0 offset (server → client)                     20 u32 ring 1 offset (c → s)   |
 *  |  24  u32 server pid                                          28 u32 reserved (0)            |
 *  +--------------------------------------------------------------------------------------------+ 4096
 *  | ring 0: control block (256 B = 4 cache lines) then `capacity` bytes of records              |
 *  +--------------------------------------------------------------------------------------------+
 *  | ring 1: the same, the other way                                                             |
 *  +--------------------------------------------------------------------------------------------+
 *
 *  ring control block: four cache lines, so the consumer's head never shares a line with what the producer
 *  writes, and the rarely written flags (read on every commit / poll) stay cache hits
 *  +0    line 0:           reserved (0)
 *  +64   line 1, consumer: i32 head   — position after the last consumed record (the producer reads it only
 *                                       when its cached copy says the ring is full)
 *  +128  line 2:           i32 consumer waiting — 1: the consumer is parked until data arrives
 *                                                 (set by the consumer, cleared by whoever wakes it)
 *  +192  line 3:           i32 producer waiting — 1: the producer is parked until space frees (likewise)
 *  +196                    i32 producer closed  — 1: the producer has committed its last record (orderly close)
 *
 *  record (8-byte aligned; never split by the wrap)
 *  +0  i32 type   — 0: nothing here yet; PAD 1, DATA 2, FRAG_FIRST 3, FRAG_MIDDLE 4, FRAG_LAST 5.
 *                   Written last: a non-zero type commits the record (there is no shared tail to read, so a
 *                   message costs the consumer the cache lines of the record itself and nothing more).
 *  +4  i32 length — payload bytes, not counting this header
 *  +8  payload …  — then zero to 7 bytes of padding to the next multiple of 8
 *  A FRAG_FIRST payload starts with u32 total message length, u32 0, then the first part of the message.
 *  A PAD record fills the space from its position to the end of the ring; the next record is at offset 0.
 *
 *  Before committing a record the producer zeroes the type word just after it (where the next record will
 *  go), so the consumer always stops at the producer's position; for that, 8 bytes of the ring are always
 *  kept free. A batch (cork/uncork) is committed at once by holding back the type word of its first record.
 *  The consumer sets a record's type word back to 0 as it consumes it (before publishing a head past it), so
 *  no record position is handed over twice, whatever a producer leaves behind.
 *
 *  The head is published after the handler of each record past it has returned: at the end of every poll,
 *  and within one poll each time an eighth of the ring (consumer.ts, PUBLISH_FRACTION) has been consumed since
 *  the last publish — so a producer waiting for room refills the consumed part while the rest is being read,
 *  instead of the two sides taking turns at whole ringfuls. One poll still goes at most once round the ring.
 * ```
 *
 * Writing ahead (RingProducer.writeAheadBytes, WRITE_AHEAD_BYTES by default, 0 turns it off): after each commit
 * (each batch, when corked) the producer writes a zero into each whole cache
 * line of free space from the line after the next type word's up to WRITE_AHEAD_BYTES past its tail: never into
 * the line holding the consumer's head as the producer last read it (the real head is never behind that), and
 * not while a reservation is open (a zero-copy claim's payload lies past the tail until its commit). Lines
 * already written ahead are not written again. Free space is the producer's: the consumer never reads past the
 * type word at its head, so what free space holds does not matter. The point is the cache: a ring walks
 * through memory, and each line the producer writes was last touched by the consumer a lap earlier (it reads
 * every record and writes each type word back to 0); written ahead,
 * it is already the producer's when the record lands there. It cut a 64 B ping-pong of the ring by a fifth to
 * a third, with the two processes on near or distant cores (bench/ring/layout-ab.ts; docs/BENCHMARKS.md,
 * "The ring writes ahead").
 *
 * Publishing: on x86-64 (total store order) the type word and the head are written with a plain store, which
 * keeps every earlier store (the record) ordered before it and costs no fence: an `xchg` (Atomics.store)
 * stalls the writer for a whole cache-line transfer and made a round trip 1.6× slower here. Elsewhere
 * Atomics.store is used.
 *
 * Wake-ups: a side that is about to park sets its waiting flag (Atomics.store, a full fence), then looks at
 * the ring once more. The other side commits, then reads the flag; if it is set, it clears it with
 * compare-and-swap and rings the parked side's doorbell (an eventfd). So a sender makes a system call only
 * when the receiver has said it is parked. Because a plain commit may still sit in the writer's store buffer
 * while it reads the flag, a parked side looks once more a millisecond after it parks (a store buffer drains
 * in nanoseconds), so no wake-up is lost for longer than that.
 *
 * A peer may be buggy or hostile: every index and header read from shared memory is checked before use, and a
 * bad one closes the channel with ERR_KBYPASS_RING_CORRUPT (see consumer.ts, producer.ts).
 */

/** Publish indices with a plain store (x86 TSO) instead of Atomics.store (a full fence). */
export const PLAIN_PUBLISH = process.arch === 'x64' || process.arch === 'ia32';
/** How long after parking a side looks at the ring once more (see "Publishing" above). */
export const PARK_RECHECK_MS = 1;

export const REGION_MAGIC = 0x5059424b;
export const REGION_VERSION = 1;
export const REGION_HEADER_BYTES = 4096;

/** Byte offsets in the region header. */
export const HDR_MAGIC = 0;
export const HDR_VERSION = 4; // u16
export const HDR_HEADER_BYTES = 6; // u16
export const HDR_CAPACITY = 8;
export const HDR_REGION_BYTES = 12;
export const HDR_RING0_OFFSET = 16;
export const HDR_RING1_OFFSET = 20;
export const HDR_SERVER_PID = 24;

export const RING_CONTROL_BYTES = 256;
/** Int32 indices into a ring's control block. */
export const CTRL_HEAD = 16;
export const CTRL_CONSUMER_WAITING = 32;
export const CTRL_PRODUCER_WAITING = 48;
export const CTRL_PRODUCER_CLOSED = 49;

export const RECORD_HEADER_BYTES = 8;
/** Cache line size assumed by the producer's writing ahead (64 B on x86-64 and most arm64). */
export const LINE_BYTES = 64;
/** How far past its tail the producer takes the cache lines of free space (see "Writing ahead" above;
 *  RingProducer.writeAheadBytes). */
export const WRITE_AHEAD_BYTES = 320;
/** Bytes of the ring always left free (the zeroed type word after the last record). */
export const RING_SLACK_BYTES = 8;
export const RECORD_ALIGN = 8;
export const FRAG_FIRST_PREFIX_BYTES = 8;

export const TYPE_PAD = 1;
export const TYPE_DATA = 2;
export const TYPE_FRAG_FIRST = 3;
export const TYPE_FRAG_MIDDLE = 4;
export const TYPE_FRAG_LAST = 5;

export const MIN_CAPACITY = 4096;
export const MAX_CAPACITY = 1 << 30;

/** Bytes a record of `payload` bytes occupies. */
export function recordBytes(payload: number): number {
  return (payload + RECORD_HEADER_BYTES + 7) & ~7;
}

/** Largest payload of one record in a ring of `capacity` bytes: a quarter of the ring, so a record plus the
 *  padding before it always fits once the consumer catches up. */
export function maxRecordPayload(capacity: number): number {
  return (capacity >>> 2) - RECORD_HEADER_BYTES;
}

/** Byte offset of ring `index` (0: server → client, 1: client → server) in a region of this capacity. */
export function ringOffset(capacity: number, index: 0 | 1): number {
  return REGION_HEADER_BYTES + index * (RING_CONTROL_BYTES + capacity);
}

/** Total region bytes for a ring capacity. */
export function regionBytes(capacity: number): number {
  return REGION_HEADER_BYTES + 2 * (RING_CONTROL_BYTES + capacity);
}

/** Write the region header (the creating side only). */
export function writeRegionHeader(buffer: ArrayBuffer, capacity: number, serverPid: number): void {
  const dv = new DataView(buffer);
  dv.setUint32(HDR_MAGIC, REGION_MAGIC, true);
  dv.setUint16(HDR_VERSION, REGION_VERSION, true);
  dv.setUint16(HDR_HEADER_BYTES, REGION_HEADER_BYTES, true);
  dv.setUint32(HDR_CAPACITY, capacity, true);
  dv.setUint32(HDR_REGION_BYTES, regionBytes(capacity), true);
  dv.setUint32(HDR_RING0_OFFSET, ringOffset(capacity, 0), true);
  dv.setUint32(HDR_RING1_OFFSET, ringOffset(capacity, 1), true);
  dv.setUint32(HDR_SERVER_PID, serverPid >>> 0, true);
}

/** Check a region header written by the peer; returns the ring capacity, or a reason it is not acceptable. */
export function checkRegionHeader(buffer: ArrayBuffer): { capacity: number } | { reason: string } {
  if (buffer.byteLength < REGION_HEADER_BYTES) return { reason: `region is ${buffer.byteLength} bytes, smaller than its header` };
  const dv = new DataView(buffer);
  const magic = dv.getUint32(HDR_MAGIC, true);
  if (magic !== REGION_MAGIC) return { reason: `bad magic 0x${magic.toString(16)} (expected 0x${REGION_MAGIC.toString(16)})` };
  const version = dv.getUint16(HDR_VERSION, true);
  if (version !== REGION_VERSION) return { reason: `layout version ${version}; this kbypass speaks version ${REGION_VERSION}` };
  if (dv.getUint16(HDR_HEADER_BYTES, true) !== REGION_HEADER_BYTES) return { reason: 'unexpected header size' };
  const capacity = dv.getUint32(HDR_CAPACITY, true);
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    return { reason: `ring capacity ${capacity} is not a power of two in [${MIN_CAPACITY}, ${MAX_CAPACITY}]` };
  }
  if (dv.getUint32(HDR_REGION_BYTES, true) !== regionBytes(capacity) || buffer.byteLength < regionBytes(capacity)) {
    return { reason: `region size ${buffer.byteLength} does not match capacity ${capacity}` };
  }
  if (dv.getUint32(HDR_RING0_OFFSET, true) !== ringOffset(capacity, 0) || dv.getUint32(HDR_RING1_OFFSET, true) !== ringOffset(capacity, 1)) {
    return { reason: 'ring offsets do not match the layout' };
  }
  return { capacity };
}
