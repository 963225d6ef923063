/**
 * What `kbypass bench packet` measures and how its children report. Paths:
 * - `xdp-js`    kbypass/packet over AF_XDP (copy mode, native XDP on the veth), data path in TypeScript
 * - `packet-js` kbypass/packet over PACKET_MMAP (TPACKET_V3 RX blocks, TX ring with PACKET_QDISC_BYPASS)
 * - `dgram`     node:dgram, one datagram per 'message' event / send() call
 * - `xdp-c`     the C floor (native/floor/xdp-floor.c) on the same AF_XDP set-up code (native/xsk.c)
 * Each child prints one JSON line {ready:true} when set up and one {done:true, packets, seconds, pps} at the end.
 */
export const PATHS = ['xdp-js', 'packet-js', 'dgram', 'xdp-c'] as const;
export type PacketPath = (typeof PATHS)[number];

/** UDP payload bytes of every frame (the 64 B). */
export const PAYLOAD_BYTES = 64;
export const SRC_PORT = 9000;
export const DST_PORT = 9001;

/** A child's arguments (argv[2], JSON). */
export interface PeerArgs {
  path: PacketPath;
  ifname: string;
  /** Seconds to measure (RX: from the first packet). */
  seconds: number;
  /** RX: bind address (dgram). TX: the frame. */
  srcMac: string; dstMac: string; srcIp: string; dstIp: string;
  payload: number;
  batch: number;
}

export interface PeerDone { done: true; packets: number; seconds: number; pps: number; detail?: Record<string, unknown> }
