/**
 * The rendezvous wire format — described here once. Carried over the Unix domain socket that stays open for
 * the channel's life (its closing is how a peer's death is seen). Every message is exactly 64 bytes,
 * little-endian; file descriptors travel beside it as SCM_RIGHTS.
 *
 * ```
 *  0        4        6        8                12               16               20               24
 *  +--------+--------+--------+----------------+----------------+----------------+----------------+
 *  | magic  |version | kind   | ring capacity  | max message    | region bytes   | errno (REJECT) |
 *  | KBYH   |  u16 1 | u16    | u32            | u32            | u32            | i32            |
 *  +--------+--------+--------+----------------+----------------+----------------+----------------+
 *  24 .. 31  u32 sender pid, u32 reserved          32 .. 63  REJECT: error code, ASCII, NUL-padded
 *
 *  client → server  HELLO    capacity wanted (0: the server's choice), the largest message the client accepts;
 *                            fds: [client doorbell eventfd]
 *  server → client  WELCOME  capacity, the largest message the server accepts, region bytes;
 *                            fds: [region memfd (sealed), server doorbell eventfd]
 *  server → client  REJECT   errno and code (e.g. EACCES from an authorize() hook, EPROTO); no fds
 * ```
 * A version mismatch is answered with REJECT EPROTONOSUPPORT; anything malformed closes the socket.
 */
export const HANDSHAKE_MAGIC = 0x4859424b;
export const HANDSHAKE_VERSION = 1;
export const HANDSHAKE_BYTES = 64;

export const KIND_HELLO = 1;
export const KIND_WELCOME = 2;
export const KIND_REJECT = 3;

export interface HandshakeMessage {
  kind: number;
  version: number;
  capacity: number;
  maxMessage: number;
  regionBytes: number;
  errno: number;
  pid: number;
  code: string;
}

export function encodeHandshake(m: Omit<HandshakeMessage, 'version'>): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, HANDSHAKE_MAGIC, true);
  dv.setUint16(4, HANDSHAKE_VERSION, true);
  dv.setUint16(6, m.kind, true);
  dv.setUint32(8, m.capacity >>> 0, true);
  dv.setUint32(12, m.maxMessage >>> 0, true);
  dv.setUint32(16, m.regionBytes >>> 0, true);
  dv.setInt32(20, m.errno | 0, true);
  dv.setUint32(24, m.pid >>> 0, true);
  for (let i = 0; i < Math.min(m.code.length, 32); i++) out[32 + i] = m.code.charCodeAt(i) & 0x7f;
  return out;
}

/** Decode a 64-byte handshake message; a string says why it is malformed. */
export function decodeHandshake(b: Uint8Array): HandshakeMessage | string {
  if (b.length !== HANDSHAKE_BYTES) return `handshake message of ${b.length} bytes`;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (dv.getUint32(0, true) !== HANDSHAKE_MAGIC) return 'not a kbypass peer (bad handshake magic)';
  let code = '';
  for (let i = 32; i < 64 && b[i] !== 0; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e) return 'malformed error code in handshake';
    code += String.fromCharCode(c);
  }
  const kind = dv.getUint16(6, true);
  if (kind !== KIND_HELLO && kind !== KIND_WELCOME && kind !== KIND_REJECT) return `unknown handshake kind ${kind}`;
  return {
    kind,
    version: dv.getUint16(4, true),
    capacity: dv.getUint32(8, true),
    maxMessage: dv.getUint32(12, true),
    regionBytes: dv.getUint32(16, true),
    errno: dv.getInt32(20, true),
    pid: dv.getUint32(24, true),
    code,
  };
}
