/**
 * The shapes verbs users pass and get back: libibverbs' structs in camelCase (ibv_sge → Sge, ibv_send_wr →
 * SendWr, ibv_wc → WorkCompletion, ibv_device_attr → DeviceAttr, …). Addresses, lengths and wr_id are JS numbers
 * (integers below 2^53); 64-bit atomic operands are bigints.
 */
import type { WcOpcode } from './constants';

/** ibv_sge: `length` bytes at `addr` inside the memory region whose local key is `lkey`. */
export interface Sge {
  addr: number;
  length: number;
  lkey: number;
}

/** ibv_send_wr (one work request; `next` is replaced by passing an array). */
export interface SendWr {
  /** Returned in the completion. Default 0. */
  wrId?: number;
  /** WrOpcode.* */
  opcode: number;
  /** SendFlags.* bits. Default 0 (unsignaled unless the QP was created with sqSigAll). */
  sendFlags?: number;
  /** Scatter/gather list (at most the QP's maxSendSge entries). Default [] (a zero-length message). */
  sgList?: readonly Sge[];
  /** Immediate data (u32) for SEND_WITH_IMM / RDMA_WRITE_WITH_IMM. */
  immData?: number;
  /** RDMA_WRITE*, RDMA_READ: the remote address and its rkey. */
  rdma?: { remoteAddr: number; rkey: number };
  /** ATOMIC_*: an 8-byte-aligned remote address, its rkey, the add value (FETCH_AND_ADD) or the compare and swap values. */
  atomic?: { remoteAddr: number; rkey: number; compareAdd: bigint; swap?: bigint };
  /** UD only: where to send. */
  ud?: { ah: AddressHandle; remoteQpn: number; remoteQkey: number };
  /** INLINE sends may carry their bytes here instead of in sgList (no lkey needed; copied at post time). */
  inlineData?: Uint8Array;
}

/** ibv_recv_wr */
export interface RecvWr {
  wrId?: number;
  sgList?: readonly Sge[];
}

/** An address handle (ibv_ah): the destination of UD sends. Created by ProtectionDomain.createAh. */
export interface AddressHandle {
  readonly dlid: number;
  readonly portNum: number;
}

/**
 * ibv_wc. `cq.poll()` fills objects of this class that the caller (or the CQ) owns and reuses: no allocation per
 * completion. On an error completion only wrId, status, qpNum and vendorErr are meaningful (as in libibverbs).
 */
export class WorkCompletion {
  wrId = 0;
  /** WcStatus.* (wcStatusName() names it). */
  status = 0;
  /** WcOpcode.* */
  opcode: number = 0 as (typeof WcOpcode)['SEND'];
  vendorErr = 0;
  byteLen = 0;
  immData = 0;
  qpNum = 0;
  srcQp = 0;
  /** WcFlags.* */
  wcFlags = 0;
  pkeyIndex = 0;
  slid = 0;
  sl = 0;
  dlidPathBits = 0;
}

/** struct ibv_qp_cap: the QP's queue sizes. */
export interface QpCap {
  /** Send queue depth, in work requests. */
  maxSendWr: number;
  /** Receive queue depth, in work requests. */
  maxRecvWr: number;
  /** Scatter/gather entries per send work request. */
  maxSendSge: number;
  /** Scatter/gather entries per receive work request. */
  maxRecvSge: number;
  /** Largest inline send, in bytes. */
  maxInlineData: number;
}

/** ibv_device_attr (the fields that mean something here). */
export interface DeviceAttr {
  fwVer: string;
  nodeGuid: bigint;
  sysImageGuid: bigint;
  maxMrSize: number;
  pageSizeCap: number;
  vendorId: number;
  vendorPartId: number;
  hwVer: number;
  maxQp: number;
  maxQpWr: number;
  maxSge: number;
  maxCq: number;
  maxCqe: number;
  maxMr: number;
  maxPd: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxSrq: number;
  maxSrqWr: number;
  maxSrqSge: number;
  maxInlineData: number;
  /** AtomicCap.* */
  atomicCap: number;
  maxPkeys: number;
  physPortCnt: number;
}

/** ibv_port_attr (subset). */
export interface PortAttr {
  /** 4 = ACTIVE */
  state: number;
  maxMtu: number;
  activeMtu: number;
  gidTblLen: number;
  pkeyTblLen: number;
  lid: number;
  /** 'InfiniBand' | 'Ethernet' */
  linkLayer: string;
}
