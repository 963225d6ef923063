/**
 * THE shared-memory layouts of the shm0 verbs provider, described once. Every structure a peer process maps is
 * here: its offsets, a diagram, and a magic/version word checked when a peer attaches. All integers are
 * little-endian (x86-64, aarch64); `f64` fields hold integers below 2^53 (wr_id, addresses, lengths).
 *
 * A peer maps four kinds of region of ours (all memfds passed over the connection's Unix socket):
 *
 * 1. Completion queue (one memfd per CQ). Many producers (our own send queues, and peers' requesters posting
 *    receive completions into it), one consumer (us). Its entries lie in two lanes of `cap` entries each: the
 *    shared lane, where every producer claims a slot with a CAS, and the private lane, which one producer at a
 *    time claims for its own and fills with plain stores (no locked instruction per completion):
 *
 *      0        8        12       64            128           192           256           320           384
 *      +--------+--------+--------+-------------+-------------+-------------+-------------+-------------+----
 *      | magic  | cap    | flags  | head (i32)  | tail (i32)  | armed (i32) | head (i32)  | owner (i32) |
 *      | +4 ver,| (i32)  | (i32)  | shared lane | shared lane | 0 off,      | private lane| +4 tail     |
 *      | CQE sz |        |        |             |             |             |             |             |
 *      |        |        |        | consumer    | producers'  | 1 next, 2 SE| consumer    | private lane|
 *      |        |        |        | line        | CAS line    | +4: events  | line        | producer's  |
 *      +--------+--------+--------+-------------+-------------+-------------+-------------+-------------+----
 *      384: shared lane, CQE 0 … CQE cap−1 (64 B each) | 384 + 64 × cap: private lane, CQE 0 … CQE cap−1
 *
 *    Shared lane: a producer claims ticket t with a CAS on its tail (refused when t − head ≥ cap: overrun),
 *    writes the CQE at slot t mod cap, then stores seq = t + 1 (the commit). The consumer takes slot head when
 *    seq = head + 1.
 *    Private lane: a peer's requester claims it by a CAS of owner 0 → 1 when it attaches the CQ as an RC or UC
 *    QP's receive CQ, where it is the one taker of that queue's receives; the loser (or a second peer, a sender
 *    to a UD QP or through an SRQ, or the owner itself) uses the shared lane. The lane's owner alone moves its
 *    tail, keeping it to itself, so it writes slot t and commits seq = t + 1 with plain stores, refused as above
 *    when t − head ≥ cap. It gives the lane back on an orderly detach: it stores the tail at +324, then owner = 0,
 *    and the next claimer starts at that tail. A peer that dies keeps the lane for good, and later peers use the
 *    shared lane.
 *    The consumer polls both lanes, starting with each in turn. A receive queue's completions then come from one
 *    producer, so from one lane, in order, except its flush: the owner pushes WR_FLUSH_ERR into the shared lane,
 *    so it first moves what the private lane holds out of it (spillLane), to be handed out before anything else.
 *    Verbs promise no order between work queues.
 *    After a commit, in either lane, the producer reads armed (a peer: with a locked instruction, cq-ring.ts
 *    says why), unless the CQ was shared without its completion channel's eventfd: such a CQ is never armed,
 *    and its peers skip the word.
 *
 *    CQE (64 B, one cache line, so two CQEs never share a line):
 *      +0 i32 seq | +4 u32 status (bits 0–7), opcode (8–15), wc_flags (16–23), solicited (bit 24) | +8 byte_len
 *      +12 imm_data | +16 f64 wr_id | +24 qp_num | +28 src_qp | +32 slid | +36..63 reserved (vendor_err is 0)
 *    Status 0xff marks a SKIP entry: a shared-lane slot whose producer died between claiming and committing it,
 *    filled in by the owner after that peer disconnected (poll() passes over it). The private lane has no such
 *    holes: its one producer commits its slots in order.
 *
 * 2. Receive queue (in each QP's region, or a shared receive queue's own region). One producer (the owner
 *    posting receives), consumers that CAS the head (the peers' requesters; several for an SRQ):
 *
 *      0        64          128         192         256
 *      +--------+-----------+-----------+-----------+--------------------------------------------
 *      | magic, | head (i32)| tail (i32)| reserved  | WQE 0 | WQE 1 | ...  (stride 16 + 16 × max_sge)
 *      | cap,   | consumers | owner     |           |
 *      | maxSge | CAS line  | line      |           |
 *      +--------+-----------+-----------+-----------+--------------------------------------------
 *    WQE: +0 f64 wr_id | +8 i32 num_sge | +12 reserved | +16 + 16i: f64 addr, u32 length, u32 lkey
 *    A consumer reads WQE h, then CASes head h → h + 1; if the CAS fails someone else took it and it retries.
 *
 * 3. Queue pair (one memfd per QP): a 256-byte QP block followed by its receive queue (layout 2):
 *      +0 magic | +4 version | +8 qp_type | +12 qpn | +16 i32 state (QpState; owner writes, peers read)
 *      +20 min_rnr_timer | +24 qp_access_flags | +28 qkey | +32 i32 srq (1: receives come from the SRQ region)
 *      +36 pd id | +40 port | +44 reserved .. 256
 *
 * 4. Memory-region table (one memfd per protection domain): which keys are valid, for what:
 *      0: magic | +4 version | +8 capacity | +12 reserved .. 64, then entries of 32 B:
 *      +0 i32 key (0: empty; written last on register, cleared first on deregister) | +4 access flags
 *      +8 region id | +12 reserved | +16 f64 addr (iova) | +24 f64 length
 *    A key is (table index << 8) | generation (1–255), so a stale key never matches a reused slot. Readers load
 *    the key, the fields, then the key again: a change in between means the MR went away (treated as invalid).
 *    Addresses are I/O virtual addresses: region id × 2^36 + the offset in that region, so an address names
 *    its region (ids 1 … 2^17 − 1; a region is at most 64 GiB).
 */

/** 2: CQEs with packed fields (status, opcode, flags, solicited in one word) and the source LID. 3: the CQ's
 *  private lane. */
export const LAYOUT_VERSION = 3;

// --- 1. completion queue -------------------------------------------------------------------------------------
export const CQ_MAGIC = 0x5143424b; // 'KBCQ'
export const CQ_HEADER_BYTES = 384;
export const CQE_BYTES = 64;
/** i32 indices into the region. */
export const CQ_I_MAGIC = 0;
export const CQ_I_VERSION = 1;
export const CQ_I_CAPACITY = 2;
export const CQ_I_FLAGS = 3;
export const CQ_I_HEAD = 64 >> 2;
export const CQ_I_TAIL = 128 >> 2;
export const CQ_I_ARMED = 192 >> 2;
/** Count of notifications sent (the channel compares it with what it has reported). */
export const CQ_I_EVENTS = (192 >> 2) + 1;
/** The private lane's head (its consumer's line). */
export const CQ_I_HEAD1 = 256 >> 2;
/** The private lane's owner: 0 free, 1 claimed (its producer's line, with the tail). */
export const CQ_I_OWNER1 = 320 >> 2;
/** The private lane's tail as its last owner left it (stored when it gives the lane back). */
export const CQ_I_TAIL1 = (320 >> 2) + 1;
export const CQ_FLAG_OVERRUN = 1;
export const CQ_ARM_NONE = 0;
export const CQ_ARM_NEXT = 1;
export const CQ_ARM_SOLICITED = 2;
/** i32 offsets within a CQE. */
export const CQE_SEQ = 0;
export const CQE_INFO = 1;
export const CQE_BYTE_LEN = 2;
export const CQE_IMM = 3;
/** f64 index within a CQE (byte 16). */
export const CQE_F64_WR_ID = 2;
export const CQE_QP_NUM = 6;
export const CQE_SRC_QP = 7;
export const CQE_SLID = 8;
/** Status byte of a SKIP entry. */
export const CQE_SKIP = 0xff;
/** CQE_INFO packs four small fields into one word: one store and one load instead of four. */
export const packInfo = (status: number, opcode: number, wcFlags: number, solicited: boolean): number =>
  (status & 0xff) | ((opcode & 0xff) << 8) | ((wcFlags & 0xff) << 16) | (solicited ? 1 << 24 : 0);

/** A CQ's region: the header, then the shared lane's entries, then the private lane's. */
export const cqRegionBytes = (capacity: number): number => CQ_HEADER_BYTES + 2 * capacity * CQE_BYTES;
/** Byte offset of lane `lane`'s entry `slot` (0 ≤ slot < capacity). */
export const cqeOffset = (capacity: number, lane: number, slot: number): number => CQ_HEADER_BYTES + (lane * capacity + slot) * CQE_BYTES;

// --- 2. receive queue ----------------------------------------------------------------------------------------
export const RQ_MAGIC = 0x5152424b; // 'KBRQ'
export const RQ_HEADER_BYTES = 256;
export const RQ_I_MAGIC = 0;
export const RQ_I_VERSION = 1;
export const RQ_I_CAPACITY = 2;
export const RQ_I_MAX_SGE = 3;
export const RQ_I_HEAD = 64 >> 2;
export const RQ_I_TAIL = 128 >> 2;
export const SGE_BYTES = 16;
export const WQE_HEADER_BYTES = 16;
export const rqStride = (maxSge: number): number => WQE_HEADER_BYTES + SGE_BYTES * maxSge;
export const rqBytes = (capacity: number, maxSge: number): number => RQ_HEADER_BYTES + capacity * rqStride(maxSge);

// --- 3. queue pair -------------------------------------------------------------------------------------------
export const QP_MAGIC = 0x5051424b; // 'KBQP'
export const QP_BLOCK_BYTES = 256;
export const QP_I_MAGIC = 0;
export const QP_I_VERSION = 1;
export const QP_I_TYPE = 2;
export const QP_I_QPN = 3;
export const QP_I_STATE = 4;
export const QP_I_MIN_RNR_TIMER = 5;
export const QP_I_ACCESS = 6;
export const QP_I_QKEY = 7;
export const QP_I_SRQ = 8;
export const QP_I_PD = 9;
export const QP_I_PORT = 10;
export const qpRegionBytes = (rqCapacity: number, maxSge: number): number => QP_BLOCK_BYTES + rqBytes(rqCapacity, maxSge);

// --- 4. memory-region table ----------------------------------------------------------------------------------
export const MRT_MAGIC = 0x544d424b; // 'KBMT'
export const MRT_HEADER_BYTES = 64;
export const MRT_ENTRY_BYTES = 32;
export const MRT_I_MAGIC = 0;
export const MRT_I_VERSION = 1;
export const MRT_I_CAPACITY = 2;
/** i32 offsets within an entry. */
export const MRE_KEY = 0;
export const MRE_ACCESS = 1;
export const MRE_REGION = 2;
/** f64 offsets within an entry. */
export const MRE_F64_ADDR = 2;
export const MRE_F64_LENGTH = 3;
/** MR table slots per protection domain (keys use 24 bits for the index). */
export const MRT_CAPACITY = 4096;
export const mrtBytes = (capacity: number): number => MRT_HEADER_BYTES + capacity * MRT_ENTRY_BYTES;

/** Address space: region id × 2^36 + offset. */
export const IOVA_REGION_SHIFT = 2 ** 36;
export const MAX_REGION_ID = 2 ** 17 - 1;
export const regionOfIova = (iova: number): number => Math.floor(iova / IOVA_REGION_SHIFT);
export const offsetOfIova = (iova: number): number => iova % IOVA_REGION_SHIFT;
export const iovaOf = (regionId: number, offset: number): number => regionId * IOVA_REGION_SHIFT + offset;

/** Key ↔ table slot. */
export const keyIndex = (key: number): number => key >>> 8;
export const makeKey = (index: number, generation: number): number => ((index << 8) | (generation & 0xff)) >>> 0;
