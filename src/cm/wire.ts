/**
 * The connection manager's messages on the Unix socket between the two processes, described once. Every
 * message is 256 bytes; fds ride beside the message that names them (SCM_RIGHTS).
 *
 *    0        4        6        8        12       16       20       24       28       32       36            256
 *    +--------+--------+--------+--------+--------+--------+--------+--------+--------+--------+-------------+
 *    | magic  | version| type   | qpn    | qp type| psn    | lid    | flags  | value  | pdata  | private data|
 *    | 'KBCM' | u16 = 1| u16    | u32    | u32    | u32    | u32    | u32    | u32    | length | (≤ 220 B)   |
 *    +--------+--------+--------+--------+--------+--------+--------+--------+--------+--------+-------------+
 *
 * REQ (client → server) and REP (server → client) carry the sender's QP and these fds, in this order:
 *   QP region, SRQ region (if flags & HAS_SRQ), receive CQ region, receive CQ channel eventfd (if flags &
 *   HAS_EVENT), MR table region; then one MR_ADD per region registered in the QP's protection domain.
 * MR_ADD carries one region fd; `value` is its region id (sent again whenever a new region is registered).
 * REJ: `value` is the reason (CmRejectReason: 0 by the application, 1 the client is not authorized, 2 nobody
 * answered the request in time, 3 the request was invalid). RTU: the client is ready (the server's ESTABLISHED).
 * DREQ / DREP: disconnect and its answer. Private data limits are rdma_cm's: REQ 56, REP 196, REJ 148 bytes.
 */
export const CM_MAGIC = 0x4d43424b; // 'KBCM'
export const CM_VERSION = 1;
export const CM_MESSAGE_BYTES = 256;
export const CM_PDATA_OFFSET = 36;

export const CmType = { REQ: 1, REP: 2, REJ: 3, RTU: 4, DREQ: 5, DREP: 6, MR_ADD: 7 } as const;
export const CM_FLAG_HAS_SRQ = 1;
/** The `value` of a REJ. */
export const CmRejectReason = { APPLICATION: 0, UNAUTHORIZED: 1, TIMEOUT: 2, INVALID: 3 } as const;
/**
 * The receive CQ's completion-channel eventfd comes with the QP. Without it the peer takes the CQ to have no
 * channel, so never to be armed, and skips its armed word on every push (verbs/shm/cq-ring.ts, attach): a CQ
 * that can be armed must always be sent with its eventfd.
 */
export const CM_FLAG_HAS_EVENT = 2;

/** rdma_cm's private-data limits (rdma_connect, rdma_accept, rdma_reject). */
export const PDATA_LIMIT: Record<number, number> = { [CmType.REQ]: 56, [CmType.REP]: 196, [CmType.REJ]: 148 };

export interface CmMessage {
  type: number;
  qpn: number;
  qpType: number;
  psn: number;
  lid: number;
  flags: number;
  value: number;
  privateData: Uint8Array;
}

export function encodeCm(m: Partial<CmMessage> & { type: number }): Uint8Array {
  const b = new Uint8Array(CM_MESSAGE_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, CM_MAGIC, true);
  v.setUint16(4, CM_VERSION, true);
  v.setUint16(6, m.type, true);
  v.setUint32(8, m.qpn ?? 0, true);
  v.setUint32(12, m.qpType ?? 0, true);
  v.setUint32(16, m.psn ?? 0, true);
  v.setUint32(20, m.lid ?? 0, true);
  v.setUint32(24, m.flags ?? 0, true);
  v.setUint32(28, m.value ?? 0, true);
  const pd = m.privateData ?? new Uint8Array(0);
  v.setUint32(32, pd.length, true);
  b.set(pd, CM_PDATA_OFFSET);
  return b;
}

/** Decode and check a message; a string says what is wrong with it. */
export function decodeCm(b: Uint8Array): CmMessage | string {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (v.getUint32(0, true) !== CM_MAGIC) return 'not a kbypass connection-manager message (bad magic)';
  if (v.getUint16(4, true) !== CM_VERSION) return `connection-manager protocol version ${v.getUint16(4, true)}; this side speaks ${CM_VERSION}`;
  const type = v.getUint16(6, true);
  if (type < CmType.REQ || type > CmType.MR_ADD) return `unknown connection-manager message type ${type}`;
  const len = v.getUint32(32, true);
  if (len > CM_MESSAGE_BYTES - CM_PDATA_OFFSET || len > (PDATA_LIMIT[type] ?? 0)) return `private data of ${len} bytes in a type ${type} message`;
  return {
    type,
    qpn: v.getUint32(8, true),
    qpType: v.getUint32(12, true),
    psn: v.getUint32(16, true),
    lid: v.getUint32(20, true),
    flags: v.getUint32(24, true),
    value: v.getUint32(28, true),
    privateData: b.slice(CM_PDATA_OFFSET, CM_PDATA_OFFSET + len),
  };
}
