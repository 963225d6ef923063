/**
 * Ethernet II + IPv4 + UDP frames, written straight into caller-owned memory (a UMEM frame, a PACKET_MMAP
 * slot, any Uint8Array) and parsed in place. The data path allocates nothing per frame.
 *
 * The layout, in one place (byte offsets from the start of the frame; every field big-endian):
 * ```
 *  Ethernet II, 14 bytes            0            6            12     14
 *                                   +------------+------------+------+
 *                                   | dst MAC    | src MAC    | type |  type 0x0800 = IPv4
 *                                   +------------+------------+------+
 *  IPv4, 20 bytes (no options)      14     15    16        18    20          22    23     24     26       30       34
 *                                   +------+-----+---------+-----+-----------+-----+------+------+--------+--------+
 *                                   |ver/  | tos | total   | id  | flags/    | ttl |proto | hdr  | src IP | dst IP |
 *                                   | ihl  |     | length  |     | frag off  |     | = 17 | csum |        |        |
 *                                   +------+-----+---------+-----+-----------+-----+------+------+--------+--------+
 *  UDP, 8 bytes + payload           34         36         38       40     42         46
 *                                   +----------+----------+--------+------+----------+---------------------+
 *                                   | src port | dst port | length | csum | seq, u32 | pattern: i & 0xff   |
 *                                   +----------+----------+--------+------+----------+---------------------+
 * ```
 * The `IP_*` and `UDP_*` offsets below are relative to the start of their header; `IP_OFF`, `UDP_OFF` and
 * `PAYLOAD_OFF` place the headers in an untagged frame. parseUdp also accepts one 802.1Q VLAN tag (4 bytes,
 * TPID 0x8100 then TCI, between the source MAC and the type), which moves everything after it 4 bytes on.
 *
 * Frames are not padded to Ethernet's 60-byte minimum (64 with the FCS): a frame under 60 bytes (a payload
 * under 18) is written at its own length and the NIC pads it on the wire. A received frame may carry that
 * padding: parseUdp goes by the IPv4 total length and the UDP length, never by the frame length.
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';

export const ETH_ALEN = 6;
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const ETH_HLEN = 14;
/** The shortest Ethernet frame on the wire, without the 4-byte FCS; the NIC pads shorter ones. */
export const ETH_MIN_FRAME = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_VLAN = 0x8100;
/** An 802.1Q tag: TPID (0x8100, in the type's place) and TCI (priority, DEI, 12-bit VLAN ID). */
export const VLAN_HLEN = 4;

export const IP_VER_IHL = 0;
export const IP_TOS = 1;
export const IP_TOTAL_LEN = 2;
export const IP_ID = 4;
export const IP_FRAG = 6;
export const IP_TTL = 8;
export const IP_PROTO = 9;
export const IP_CSUM = 10;
export const IP_SRC = 12;
export const IP_DST = 16;
export const IP_HLEN = 20;
export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;
export const IP_FRAG_OFFSET_MASK = 0x1fff;
export const IPPROTO_UDP = 17;

export const UDP_SPORT = 0;
export const UDP_DPORT = 2;
export const UDP_LEN = 4;
export const UDP_CSUM = 6;
export const UDP_HLEN = 8;

/** Where the headers sit in an untagged frame. */
export const IP_OFF = ETH_HLEN;
export const UDP_OFF = IP_OFF + IP_HLEN;
export const PAYLOAD_OFF = UDP_OFF + UDP_HLEN;
/** The sequence number: the first payload bytes, u32 big-endian. */
export const SEQ_LEN = 4;
export const MIN_PAYLOAD = SEQ_LEN;
/** The IPv4 total length is a u16: 65535 - 20 - 8. */
export const MAX_PAYLOAD = 0xffff - IP_HLEN - UDP_HLEN;

const DEFAULT_TTL = 64;

// ---------------------------------------------------------------------------------------------- addresses

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** 'aa:bb:cc:dd:ee:ff' → 6 bytes. Anything else throws ERR_INVALID_ARG_VALUE. */
export function parseMac(s: string, name = 's'): Uint8Array {
  if (typeof s !== 'string' || !MAC_RE.test(s)) throw invalidArgValue(name, s, "must be a MAC address 'aa:bb:cc:dd:ee:ff'");
  const out = new Uint8Array(ETH_ALEN);
  for (let i = 0; i < ETH_ALEN; i++) out[i] = parseInt(s.slice(i * 3, i * 3 + 2), 16);
  return out;
}

/** The 6 bytes at `off` as 'aa:bb:cc:dd:ee:ff' (lower case). */
export function formatMac(b: Uint8Array, off = 0): string {
  if (!Number.isInteger(off) || off < 0 || off + ETH_ALEN > b.length) throw outOfRange('off', `an integer from 0 to ${b.length - ETH_ALEN}`, off);
  const parts: string[] = [];
  for (let i = 0; i < ETH_ALEN; i++) parts.push(b[off + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** A dotted quad ('192.0.2.1', no leading zeros) → its u32 value (192.0.2.1 → 0xc0000201). Bad input throws ERR_INVALID_ARG_VALUE. */
export function parseIpv4(s: string, name = 's'): number {
  const m = typeof s === 'string' ? IPV4_RE.exec(s) : null;
  if (m !== null) {
    let n = 0;
    for (let i = 1; i <= 4; i++) {
      const part = m[i]!;
      const v = Number(part);
      if (v > 255 || (part.length > 1 && part[0] === '0')) break;
      n = n * 256 + v;
      if (i === 4) return n;
    }
  }
  throw invalidArgValue(name, s, "must be an IPv4 address in dotted-quad form ('192.0.2.1')");
}

/** A u32 → dotted quad. Anything but an integer from 0 to 0xffffffff throws ERR_INVALID_ARG_VALUE. */
export function formatIpv4(n: number): string {
  if (!isU32(n)) throw invalidArgValue('n', n, 'must be an integer from 0 to 0xffffffff');
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

function isU32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

// ---------------------------------------------------------------------------------------------- checksums

/** Adds the 16-bit big-endian words of b[start, end) to `acc` (an odd last byte is padded with zero). */
function sum16(b: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

/** Folds a sum (below 2^32: at most one IPv4 datagram's words) to 16 bits with end-around carry. */
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The UDP pseudo-header's sum: source and destination address, protocol, UDP length. */
function pseudoSum(srcIp: number, dstIp: number, udpLength: number): number {
  return (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + IPPROTO_UDP + udpLength;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

function get16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

// ---------------------------------------------------------------------------------------------- building

/** What a UdpFrameTemplate sends: addresses, ports and the few header choices. */
export interface UdpFrameSpec {
  /** Source MAC: 'aa:bb:cc:dd:ee:ff' or 6 bytes. */
  srcMac: string | Uint8Array;
  /** Destination MAC: 'aa:bb:cc:dd:ee:ff' or 6 bytes. */
  dstMac: string | Uint8Array;
  /** Source IPv4 address: dotted quad or u32. */
  srcIp: string | number;
  /** Destination IPv4 address: dotted quad or u32. */
  dstIp: string | number;
  /** UDP source port, 0–65535. */
  srcPort: number;
  /** UDP destination port, 0–65535. */
  dstPort: number;
  /**
   * IPv4 time to live, 1–255.
   * @defaultValue 64
   */
  ttl?: number;
  /**
   * Compute the UDP checksum. `false` writes 0 ("no checksum", allowed over IPv4) and saves the update.
   * @defaultValue true
   */
  udpChecksum?: boolean;
}

/**
 * One UDP flow's frames, with the headers computed once. Each frame carries a 32-bit sequence number
 * (big-endian, the first 4 payload bytes); the rest of the payload is a fixed pattern, byte i = i & 0xff
 * (i counted from the start of the payload). The IPv4 identification is the sequence number's low 16 bits
 * and the DF flag is set. See the file header for the layout and for padding (none: the NIC pads).
 */
export class UdpFrameTemplate {
  /** Bytes per frame: 42 + payloadLength (not padded to 60). */
  readonly frameLength: number;
  /** Bytes of UDP payload, sequence number included. */
  readonly payloadLength: number;
  /** The frame with the sequence number, identification and both checksums at zero. */
  readonly #frame: Uint8Array;
  /** The IPv4 header's word sum with identification and checksum at zero. */
  readonly #ipSum: number;
  /** The UDP checksum's word sum (pseudo-header, header, payload) with seq and checksum at zero; -1: no checksum. */
  readonly #udpSum: number;

  /**
   * @param spec addresses, ports, ttl, udpChecksum.
   * @param payloadLength UDP payload bytes, from 4 (the sequence number) to 65507.
   */
  constructor(spec: UdpFrameSpec, payloadLength: number) {
    if (spec === null || typeof spec !== 'object') throw invalidArgType('spec', 'an object', spec);
    if (!Number.isInteger(payloadLength) || payloadLength < MIN_PAYLOAD || payloadLength > MAX_PAYLOAD) {
      throw outOfRange('payloadLength', `an integer from ${MIN_PAYLOAD} to ${MAX_PAYLOAD}`, payloadLength);
    }
    const srcMac = macArg(spec.srcMac, 'spec.srcMac');
    const dstMac = macArg(spec.dstMac, 'spec.dstMac');
    const srcIp = ipArg(spec.srcIp, 'spec.srcIp');
    const dstIp = ipArg(spec.dstIp, 'spec.dstIp');
    const srcPort = intArg(spec.srcPort, 'spec.srcPort', 0, 0xffff);
    const dstPort = intArg(spec.dstPort, 'spec.dstPort', 0, 0xffff);
    const ttl = intArg(spec.ttl ?? DEFAULT_TTL, 'spec.ttl', 1, 255);
    const udpChecksum = spec.udpChecksum ?? true;
    if (typeof udpChecksum !== 'boolean') throw invalidArgType('spec.udpChecksum', 'of type boolean', udpChecksum);

    this.payloadLength = payloadLength;
    this.frameLength = PAYLOAD_OFF + payloadLength;
    const f = new Uint8Array(this.frameLength);
    f.set(dstMac, ETH_DST);
    f.set(srcMac, ETH_SRC);
    put16(f, ETH_TYPE, ETHERTYPE_IPV4);

    f[IP_OFF + IP_VER_IHL] = 0x40 | (IP_HLEN >> 2);
    put16(f, IP_OFF + IP_TOTAL_LEN, IP_HLEN + UDP_HLEN + payloadLength);
    put16(f, IP_OFF + IP_FRAG, IP_FLAG_DF);
    f[IP_OFF + IP_TTL] = ttl;
    f[IP_OFF + IP_PROTO] = IPPROTO_UDP;
    put16(f, IP_OFF + IP_SRC, srcIp >>> 16);
    put16(f, IP_OFF + IP_SRC + 2, srcIp & 0xffff);
    put16(f, IP_OFF + IP_DST, dstIp >>> 16);
    put16(f, IP_OFF + IP_DST + 2, dstIp & 0xffff);

    put16(f, UDP_OFF + UDP_SPORT, srcPort);
    put16(f, UDP_OFF + UDP_DPORT, dstPort);
    put16(f, UDP_OFF + UDP_LEN, UDP_HLEN + payloadLength);
    for (let i = SEQ_LEN; i < payloadLength; i++) f[PAYLOAD_OFF + i] = i & 0xff;

    this.#frame = f;
    this.#ipSum = fold(sum16(f, IP_OFF, UDP_OFF, 0));
    this.#udpSum = udpChecksum ? fold(sum16(f, UDP_OFF, this.frameLength, pseudoSum(srcIp, dstIp, UDP_HLEN + payloadLength))) : -1;
  }

  /**
   * Writes the whole frame at `buf[offset]` with sequence number `seq` (a u32) and returns its length
   * (`frameLength`). Allocates nothing. The checksums are updated from the precomputed sums (RFC 1624,
   * eqn. 3, from a base whose variable fields are 0: HC' = ~(~HC + m')), not summed over the frame.
   */
  writeTo(buf: Uint8Array, offset: number, seq: number): number {
    const len = this.frameLength;
    if (!Number.isInteger(offset) || offset < 0 || offset + len > buf.length) {
      throw outOfRange('offset', `an integer >= 0 with offset + ${len} <= buf.length (${buf.length})`, offset);
    }
    if (seq !== seq >>> 0) throw outOfRange('seq', 'an integer from 0 to 4294967295', seq);
    buf.set(this.#frame, offset);
    const id = seq & 0xffff;
    put16(buf, offset + IP_OFF + IP_ID, id);
    // The base sum is never 0 (the header holds 0x45..), so neither is the new one: the checksum is never 0xffff.
    put16(buf, offset + IP_OFF + IP_CSUM, ~fold(this.#ipSum + id) & 0xffff);
    const hi = seq >>> 16;
    put16(buf, offset + PAYLOAD_OFF, hi);
    put16(buf, offset + PAYLOAD_OFF + 2, id);
    if (this.#udpSum >= 0) {
      const c = ~fold(this.#udpSum + hi + id) & 0xffff;
      put16(buf, offset + UDP_OFF + UDP_CSUM, c === 0 ? 0xffff : c); // RFC 768: a computed 0 is sent as 0xffff
    }
    return len;
  }
}

function macArg(v: unknown, name: string): Uint8Array {
  if (typeof v === 'string') return parseMac(v, name);
  if (v instanceof Uint8Array && v.length === ETH_ALEN) return Uint8Array.from(v);
  throw invalidArgValue(name, v, "must be a MAC address 'aa:bb:cc:dd:ee:ff' or 6 bytes");
}

function ipArg(v: unknown, name: string): number {
  if (typeof v === 'string') return parseIpv4(v, name);
  if (isU32(v)) return v;
  throw invalidArgValue(name, v, 'must be an IPv4 address (dotted quad or u32)');
}

function intArg(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer from ${min} to ${max}`, v);
  return v;
}

// ---------------------------------------------------------------------------------------------- parsing

/** What parseUdp found; one object, reused from frame to frame (make it with createUdpInfo()). */
export interface UdpInfo {
  /** u32 (formatIpv4 shows it). */
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  /** Index in `buf` of the first payload byte (the sequence number, for our frames: readSeq). */
  payloadOffset: number;
  /** From the UDP length field: Ethernet padding after the datagram is not payload. */
  payloadLength: number;
  /** The IPv4 header (options included) sums to 0xffff. */
  ipChecksumOk: boolean;
  /** The UDP checksum verifies, or is 0 (none sent, allowed over IPv4). */
  udpChecksumOk: boolean;
  /** The 802.1Q VLAN ID, or -1 for an untagged frame. */
  vlanId: number;
}

/** A UdpInfo to hand to parseUdp again and again. */
export function createUdpInfo(): UdpInfo {
  return { srcIp: 0, dstIp: 0, srcPort: 0, dstPort: 0, payloadOffset: 0, payloadLength: 0, ipChecksumOk: false, udpChecksumOk: false, vlanId: -1 };
}

/**
 * Parses the frame in `buf[offset, offset + length)` into `out` and returns true when it is a well-formed
 * IPv4/UDP frame: Ethernet II, untagged or with one 802.1Q tag (stacked tags / 802.1ad are refused), IPv4
 * (options allowed), not a fragment, protocol 17, and lengths that agree (IPv4 total length within the frame,
 * UDP length from 8 to what the IPv4 total length leaves). Bad checksums do not make it false: they are
 * reported in `ipChecksumOk` / `udpChecksumOk`. Anything else returns false (`out` is then partly written),
 * including a window that is not inside `buf`. Never throws and never reads outside the window, whatever
 * the bytes say. Allocates nothing.
 */
export function parseUdp(buf: Uint8Array, offset: number, length: number, out: UdpInfo): boolean {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < ETH_HLEN || offset + length > buf.length) return false;
  const end = offset + length;
  let ip = offset + ETH_HLEN;
  let type = get16(buf, offset + ETH_TYPE);
  let vlanId = -1;
  if (type === ETHERTYPE_VLAN) {
    if (ip + VLAN_HLEN > end) return false;
    vlanId = get16(buf, ip) & 0x0fff;
    type = get16(buf, ip + 2);
    ip += VLAN_HLEN;
  }
  if (type !== ETHERTYPE_IPV4 || ip + IP_HLEN > end) return false;
  const verIhl = buf[ip + IP_VER_IHL]!;
  const ihl = (verIhl & 0x0f) << 2;
  if (verIhl >> 4 !== 4 || ihl < IP_HLEN) return false;
  const total = get16(buf, ip + IP_TOTAL_LEN);
  if (total < ihl + UDP_HLEN || ip + total > end) return false;
  if (buf[ip + IP_PROTO] !== IPPROTO_UDP || (get16(buf, ip + IP_FRAG) & (IP_FLAG_MF | IP_FRAG_OFFSET_MASK)) !== 0) return false;
  const udp = ip + ihl;
  const udpLength = get16(buf, udp + UDP_LEN);
  if (udpLength < UDP_HLEN || udpLength > total - ihl) return false;

  const srcIp = ((get16(buf, ip + IP_SRC) << 16) | get16(buf, ip + IP_SRC + 2)) >>> 0;
  const dstIp = ((get16(buf, ip + IP_DST) << 16) | get16(buf, ip + IP_DST + 2)) >>> 0;
  out.srcIp = srcIp;
  out.dstIp = dstIp;
  out.srcPort = get16(buf, udp + UDP_SPORT);
  out.dstPort = get16(buf, udp + UDP_DPORT);
  out.payloadOffset = udp + UDP_HLEN;
  out.payloadLength = udpLength - UDP_HLEN;
  out.vlanId = vlanId;
  out.ipChecksumOk = fold(sum16(buf, ip, udp, 0)) === 0xffff;
  out.udpChecksumOk = get16(buf, udp + UDP_CSUM) === 0 || fold(sum16(buf, udp, udp + udpLength, pseudoSum(srcIp, dstIp, udpLength))) === 0xffff;
  return true;
}

/** The u32 sequence number (big-endian) at `payloadOffset`. */
export function readSeq(buf: Uint8Array, payloadOffset: number): number {
  if (!Number.isInteger(payloadOffset) || payloadOffset < 0 || payloadOffset + SEQ_LEN > buf.length) {
    throw outOfRange('payloadOffset', `an integer from 0 to ${buf.length - SEQ_LEN}`, payloadOffset);
  }
  return ((get16(buf, payloadOffset) << 16) | get16(buf, payloadOffset + 2)) >>> 0;
}
