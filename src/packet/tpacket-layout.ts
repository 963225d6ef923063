/**
 * PACKET_MMAP with TPACKET_V3: the memory an AF_PACKET socket shares with the kernel, described once
 * (include/uapi/linux/if_packet.h, Documentation/networking/packet_mmap.rst).
 *
 * ```
 *  One mapping: the RX ring's blocks, then the TX ring's.
 *  ┌─────────── RX: blockCount blocks of blockSize bytes ───────────┬──── TX: frames of txFrameSize ────┐
 *  │ block 0 │ block 1 │ ...                                         │ frame 0 │ frame 1 │ ...           │
 *  └────────────────────────────────────────────────────────────────┴───────────────────────────────────┘
 *
 *  RX block (tpacket_block_desc, 48 bytes, then packets):
 *  ┌ version u32 @0 ┬ offset_to_priv u32 @4 ┬ block_status u32 @8 ┬ num_pkts u32 @12 ┬ offset_to_first_pkt u32 @16 ┐
 *  └ blk_len u32 @20 ┴ seq_num u64 @24 ┴ ts_first_pkt {sec u32, nsec u32} @32 ┴ ts_last_pkt @40 ───────────────────┘
 *  block_status: TP_STATUS_KERNEL (0) = the kernel's to fill; TP_STATUS_USER (bit 0) = ours to read, handed back
 *  by storing TP_STATUS_KERNEL. The kernel fills blocks in order and hands one over when it is full or
 *  blockTimeoutMs after its first packet.
 *
 *  Packet (tpacket3_hdr, 48 bytes), at block + offset_to_first_pkt, then each at + tp_next_offset:
 *  ┌ next_offset u32 @0 ┬ sec u32 @4 ┬ nsec u32 @8 ┬ snaplen u32 @12 ┬ len u32 @16 ┬ status u32 @20 ┐
 *  └ mac u16 @24 ┴ net u16 @26 ┴ rxhash u32 @28 ┴ vlan_tci u32 @32 ┴ vlan_tpid u16 @36 ┴ padding ──┘
 *  The frame's bytes are at packet + mac, snaplen of them (len on the wire).
 *
 *  TX frame: tpacket3_hdr with status @20 and len @16; the frame's bytes at +48
 *  (TPACKET3_HDRLEN − sizeof(sockaddr_ll)). status: AVAILABLE (0) ours to write, SEND_REQUEST (1) given to the
 *  kernel, SENDING (2) in flight, WRONG_FORMAT (4) refused; the kernel sets AVAILABLE again once sent.
 * ```
 * The version is TPACKET_V3 (PACKET_VERSION = 2), set on the socket before the rings.
 */

export const ETH_P_ALL = 0x0003;

/** SOL_PACKET options. */
export const PACKET_RX_RING = 5;
export const PACKET_STATISTICS = 6;
export const PACKET_VERSION = 10;
export const PACKET_TX_RING = 13;
export const PACKET_LOSS = 14;
export const PACKET_FANOUT = 18;
export const PACKET_QDISC_BYPASS = 20;
export const TPACKET_V3 = 2;

/** PACKET_FANOUT types and flags. */
export const FANOUT_TYPES = { hash: 0, lb: 1, cpu: 2, rollover: 3, random: 4, qm: 5 } as const;
export const PACKET_FANOUT_FLAG_ROLLOVER = 0x1000;
export const PACKET_FANOUT_FLAG_DEFRAG = 0x8000;

/** Status words. */
export const TP_STATUS_KERNEL = 0;
export const TP_STATUS_USER = 1;
export const TP_STATUS_AVAILABLE = 0;
export const TP_STATUS_SEND_REQUEST = 1;
export const TP_STATUS_SENDING = 2;
export const TP_STATUS_WRONG_FORMAT = 4;

/** Block descriptor fields (byte offsets). */
export const BLOCK_STATUS = 8;
export const BLOCK_NUM_PKTS = 12;
export const BLOCK_FIRST_PKT = 16;
export const BLOCK_LEN = 20;
export const BLOCK_DESC_BYTES = 48;

/** tpacket3_hdr fields (byte offsets). */
export const PKT_NEXT = 0;
export const PKT_SEC = 4;
export const PKT_NSEC = 8;
export const PKT_SNAPLEN = 12;
export const PKT_LEN = 16;
export const PKT_STATUS = 20;
export const PKT_MAC = 24;
export const PKT_HDR_BYTES = 48;

/** Where a TX frame's bytes start in its slot. */
export const TX_DATA_OFFSET = 48;
/** The smallest frame the kernel accepts to send (an Ethernet header). */
export const MIN_TX_FRAME = 14;
/** RX frame size handed to the kernel (it only sizes its bookkeeping in V3; packets are packed in blocks). */
export const RX_FRAME_SIZE = 2048;
