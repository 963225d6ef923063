/**
 * The opening exchange of a bypassed connection: the first message each way on a fresh channel.
 *
 * The channel's own rendezvous (src/channel/handshake.ts) has already checked credentials and mapped the
 * rings; this exchange says which TCP connection the channel stands for, so that the server can check the
 * address against its listener (as the kernel would) and both ends can report TCP addresses.
 *
 * ```
 *  byte 0        4       5      6        7        8          10         12       13       14 …
 *  +-------------+-------+------+--------+--------+----------+----------+--------+--------+--------------------+
 *  | magic 'KBNT'| ver=1 | kind | family | reason | dst port | src port | dstLen | srcLen | dst addr, src addr |
 *  |  u32 LE     |  u8   |  u8  | 4 or 6 |   u8   |  u16 LE  |  u16 LE  |   u8   |   u8   | ASCII, no NUL      |
 *  +-------------+-------+------+--------+--------+----------+----------+--------+--------+--------------------+
 * ```
 * - HELLO (client → server): dst = the address and port the program connected to; src = the client's local
 *   address and the port number it reports as its localPort.
 * - ACCEPT (server → client): the same addresses, as the server will report them.
 * - REFUSE (server → client): `reason` says why; the client then connects over TCP instead.
 *
 * Every connection's data follows as channel messages holding stream bytes; a zero-length message is FIN.
 */
import { isIP } from 'node:net';

export const HELLO_MAGIC = 0x544e424b; // 'KBNT' little-endian
export const HELLO_VERSION = 1;
export const HELLO_FIXED = 14;
export const HELLO_MAX = HELLO_FIXED + 2 * 45;

export const KIND_HELLO = 1;
export const KIND_ACCEPT = 2;
export const KIND_REFUSE = 3;

/** Why a server refused a bypassed connection (the client falls back to TCP). */
export const REFUSE_ADDRESS = 1; // the listener is not bound to the address asked for
export const REFUSE_NOT_LISTENING = 2; // closing
export const REFUSE_FULL = 3; // maxConnections reached
export const REFUSE_VERSION = 4;

export const REFUSE_NAMES: Readonly<Record<number, string>> = {
  [REFUSE_ADDRESS]: 'address not served',
  [REFUSE_NOT_LISTENING]: 'server not listening',
  [REFUSE_FULL]: 'server at maxConnections',
  [REFUSE_VERSION]: 'protocol version',
};

export interface Hello {
  kind: number;
  family: 4 | 6;
  reason: number;
  dstAddress: string;
  dstPort: number;
  srcAddress: string;
  srcPort: number;
}

export function encodeHello(h: Hello): Buffer {
  const dst = Buffer.from(h.dstAddress, 'latin1');
  const src = Buffer.from(h.srcAddress, 'latin1');
  const b = Buffer.alloc(HELLO_FIXED + dst.length + src.length);
  b.writeUInt32LE(HELLO_MAGIC, 0);
  b[4] = HELLO_VERSION;
  b[5] = h.kind;
  b[6] = h.family;
  b[7] = h.reason;
  b.writeUInt16LE(h.dstPort, 8);
  b.writeUInt16LE(h.srcPort, 10);
  b[12] = dst.length;
  b[13] = src.length;
  dst.copy(b, HELLO_FIXED);
  src.copy(b, HELLO_FIXED + dst.length);
  return b;
}

/** Decode and check a message; null when it is not a well-formed opening message of this version. */
export function decodeHello(m: Uint8Array): Hello | null {
  if (m.length < HELLO_FIXED || m.length > HELLO_MAX) return null;
  const b = Buffer.from(m.buffer, m.byteOffset, m.length);
  if (b.readUInt32LE(0) !== HELLO_MAGIC || b[4] !== HELLO_VERSION) return null;
  const kind = b[5]!;
  const family = b[6]!;
  const dl = b[12]!;
  const sl = b[13]!;
  if (kind < KIND_HELLO || kind > KIND_REFUSE || (family !== 4 && family !== 6) || HELLO_FIXED + dl + sl !== m.length) return null;
  const dstAddress = b.toString('latin1', HELLO_FIXED, HELLO_FIXED + dl);
  const srcAddress = b.toString('latin1', HELLO_FIXED + dl, HELLO_FIXED + dl + sl);
  if (kind !== KIND_REFUSE && (isIP(dstAddress) !== family || isIP(srcAddress) !== family)) return null;
  return { kind, family, reason: b[7]!, dstAddress, dstPort: b.readUInt16LE(8), srcAddress, srcPort: b.readUInt16LE(10) };
}

/** A magic/version check only, to tell an old peer's hello (refuse with REFUSE_VERSION) from garbage. */
export function helloVersion(m: Uint8Array): number {
  if (m.length < 5) return -1;
  const b = Buffer.from(m.buffer, m.byteOffset, m.length);
  return b.readUInt32LE(0) === HELLO_MAGIC ? b[4]! : -1;
}
