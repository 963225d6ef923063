/**
 * The verbs' numbers, with libibverbs' values (rdma-core libibverbs/verbs.h), so that a value read off a
 * libibverbs program, a trace or a wire capture means the same thing here. Names drop the IBV_ prefix.
 */

/** enum ibv_access_flags */
export const Access = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 1 << 1,
  REMOTE_READ: 1 << 2,
  REMOTE_ATOMIC: 1 << 3,
} as const;
/** Every access bit this implementation knows. */
export const ACCESS_ALL = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;

/** enum ibv_qp_type */
export const QpType = { RC: 2, UC: 3, UD: 4 } as const;
export type QpTypeValue = (typeof QpType)[keyof typeof QpType];

/** enum ibv_qp_state */
export const QpState = { RESET: 0, INIT: 1, RTR: 2, RTS: 3, SQD: 4, SQE: 5, ERR: 6 } as const;
export type QpStateValue = (typeof QpState)[keyof typeof QpState];

/** enum ibv_qp_attr_mask */
export const QpAttrMask = {
  STATE: 1 << 0,
  CUR_STATE: 1 << 1,
  EN_SQD_ASYNC_NOTIFY: 1 << 2,
  ACCESS_FLAGS: 1 << 3,
  PKEY_INDEX: 1 << 4,
  PORT: 1 << 5,
  QKEY: 1 << 6,
  AV: 1 << 7,
  PATH_MTU: 1 << 8,
  TIMEOUT: 1 << 9,
  RETRY_CNT: 1 << 10,
  RNR_RETRY: 1 << 11,
  RQ_PSN: 1 << 12,
  MAX_QP_RD_ATOMIC: 1 << 13,
  ALT_PATH: 1 << 14,
  MIN_RNR_TIMER: 1 << 15,
  SQ_PSN: 1 << 16,
  MAX_DEST_RD_ATOMIC: 1 << 17,
  PATH_MIG_STATE: 1 << 18,
  CAP: 1 << 19,
  DEST_QPN: 1 << 20,
} as const;

/** enum ibv_mtu */
export const Mtu = { MTU_256: 1, MTU_512: 2, MTU_1024: 3, MTU_2048: 4, MTU_4096: 5 } as const;

/** enum ibv_wr_opcode */
export const WrOpcode = {
  RDMA_WRITE: 0,
  RDMA_WRITE_WITH_IMM: 1,
  SEND: 2,
  SEND_WITH_IMM: 3,
  RDMA_READ: 4,
  ATOMIC_CMP_AND_SWP: 5,
  ATOMIC_FETCH_AND_ADD: 6,
} as const;
export type WrOpcodeValue = (typeof WrOpcode)[keyof typeof WrOpcode];

/** enum ibv_send_flags */
export const SendFlags = { FENCE: 1, SIGNALED: 1 << 1, SOLICITED: 1 << 2, INLINE: 1 << 3 } as const;

/** enum ibv_wc_opcode */
export const WcOpcode = {
  SEND: 0,
  RDMA_WRITE: 1,
  RDMA_READ: 2,
  COMP_SWAP: 3,
  FETCH_ADD: 4,
  RECV: 1 << 7,
  RECV_RDMA_WITH_IMM: (1 << 7) + 1,
} as const;

/** enum ibv_wc_flags */
export const WcFlags = { GRH: 1, WITH_IMM: 1 << 1 } as const;

/** enum ibv_wc_status */
export const WcStatus = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_QP_OP_ERR: 2,
  LOC_EEC_OP_ERR: 3,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  MW_BIND_ERR: 6,
  BAD_RESP_ERR: 7,
  LOC_ACCESS_ERR: 8,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  REM_OP_ERR: 11,
  RETRY_EXC_ERR: 12,
  RNR_RETRY_EXC_ERR: 13,
  LOC_RDD_VIOL_ERR: 14,
  REM_INV_RD_REQ_ERR: 15,
  REM_ABORT_ERR: 16,
  INV_EECN_ERR: 17,
  INV_EEC_STATE_ERR: 18,
  FATAL_ERR: 19,
  RESP_TIMEOUT_ERR: 20,
  GENERAL_ERR: 21,
} as const;

const statusNames: string[] = [];
for (const [name, value] of Object.entries(WcStatus)) statusNames[value] = name;

/** The name of a completion status, as ibv_wc_status_str names it in code form (e.g. 'REM_ACCESS_ERR'). */
export function wcStatusName(status: number): string {
  return statusNames[status] ?? `UNKNOWN(${status})`;
}

/** enum ibv_atomic_cap */
export const AtomicCap = { NONE: 0, HCA: 1, GLOB: 2 } as const;

/** The 40-byte Global Routing Header that starts every UD receive buffer. */
export const GRH_BYTES = 40;

/** min_rnr_timer codes (0–31) in microseconds: the IB spec's table (as in rxe's rnrnak_usec[], except that rxe has
 * the typo 61410 for code 25, 61.44 ms). Code 0 is 655.36 ms. */
export const RNR_TIMER_US: readonly number[] = [
  655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840, 5120, 7680, 10240,
  15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
];
