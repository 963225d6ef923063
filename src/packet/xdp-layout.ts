/**
 * AF_XDP: the memory a socket shares with the kernel, described once (include/uapi/linux/if_xdp.h).
 *
 * ```
 *  UMEM (our anonymous mapping, registered with XDP_UMEM_REG; frames of frameSize bytes, aligned mode)
 *  ┌──────────────┬──────────────┬──────────────┬─────┐
 *  │ frame 0      │ frame 1      │ frame 2      │ ... │   frame address = index × frameSize
 *  └──────────────┴──────────────┴──────────────┴─────┘
 *    within a frame: [headroom][XDP_PACKET_HEADROOM (copy mode)][packet bytes ...]
 *    an RX descriptor's addr points at the packet bytes; its frame is addr & ~(frameSize − 1)
 *
 *  Four rings, each mmap'd from the socket at its own page offset:
 *    FILL (0x100000000)  user → kernel  u64 frame addresses to receive into
 *    RX   (0x000000000)  kernel → user  xdp_desc of received packets
 *    TX   (0x080000000)  user → kernel  xdp_desc of packets to send
 *    COMP (0x180000000)  kernel → user  u64 addresses of frames the kernel has sent
 *
 *  One ring's mapping (offsets read with getsockopt(XDP_MMAP_OFFSETS), never assumed):
 *  ┌────────────────────┬────────────────────┬──────────────┬───────────────────────────────────┐
 *  │ producer u32       │ consumer u32       │ flags u32    │ entries[n] (xdp_desc or u64)      │
 *  │ @off.producer      │ @off.consumer      │ @off.flags   │ @off.desc                          │
 *  └────────────────────┴────────────────────┴──────────────┴───────────────────────────────────┘
 *  producer and consumer are free-running u32 indices; entry i lives at i & (n − 1).
 *  flags bit 0 (XDP_RING_NEED_WAKEUP): the kernel wants a syscall to make progress on this ring.
 *
 *  xdp_desc (16 bytes): addr u64 @0 | len u32 @8 | options u32 @12
 * ```
 *
 * The ABI version is the kernel's: there is no version field in these rings; XDP_MMAP_OFFSETS with the `flags`
 * member (Linux ≥ 5.4) is required, and its absence is refused with EOPNOTSUPP.
 */

/** bind() flags (struct sockaddr_xdp.sxdp_flags). */
export const XDP_SHARED_UMEM = 1 << 0;
export const XDP_COPY = 1 << 1;
export const XDP_ZEROCOPY = 1 << 2;
export const XDP_USE_NEED_WAKEUP = 1 << 3;

/** Ring flags word: the kernel needs a wake-up syscall. */
export const XDP_RING_NEED_WAKEUP = 1 << 0;
/** getsockopt(XDP_OPTIONS): zero-copy is in effect. */
export const XDP_OPTIONS_ZEROCOPY = 1 << 0;

/** XDP attach flags (BPF_LINK_CREATE). */
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;

/** Headroom the kernel keeps in front of a packet copied into a frame (XDP_PACKET_HEADROOM). */
export const XDP_PACKET_HEADROOM = 256;

/** mmap page offsets of the rings. */
export const XDP_PGOFF_RX_RING = 0;
export const XDP_PGOFF_TX_RING = 0x80000000;
export const XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
export const XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;

/** Entry sizes. */
export const XDP_DESC_BYTES = 16;
export const XDP_ADDR_BYTES = 8;

/** Field offsets inside xdp_desc, in u32 words. */
export const DESC_ADDR_LO = 0;
export const DESC_ADDR_HI = 1;
export const DESC_LEN = 2;
export const DESC_OPTIONS = 3;

/** Index of each ring's four offsets in the Float64Array filled by xskOffsets (×4: producer, consumer, desc, flags). */
export const OFFSETS_RX = 0;
export const OFFSETS_TX = 4;
export const OFFSETS_FILL = 8;
export const OFFSETS_COMP = 12;

/** Names of the six XDP_STATISTICS counters, in the kernel's order. */
export const XDP_STAT_NAMES = [
  'rxDropped', 'rxInvalidDescs', 'txInvalidDescs', 'rxRingFull', 'rxFillRingEmptyDescs', 'txRingEmptyDescs',
] as const;
