/**
 * The queue-pair state machine of ibv_modify_qp: which state transitions exist, which attributes each one
 * requires and allows for RC, UC and UD QPs, and which values those attributes may take.
 *
 * Sources read:
 * - the transition table: torvalds/linux drivers/infiniband/core/verbs.c, `qp_state_table` and
 *   `ib_modify_qp_is_ok()`, at commit f4d8f354d753 (5.13 or later, by its u32 port numbers; the table's RC/UC/UD
 *   part has not changed since RATE_LIMIT was added in 4.11);
 * - the user-facing statement: linux-rdma/rdma-core libibverbs/man/ibv_modify_qp.3 at commit 1a4d7e4cd0bb;
 * - value checks and what →RESET does: drivers/infiniband/sw/rxe/rxe_qp.c, `rxe_qp_chk_attr()`,
 *   `rxe_qp_from_attr()` and `rxe_qp_reset()` (at commit 02827b670851). rxe bounds max_rd_atomic by
 *   max_qp_rd_atom; here, as in mlx4, maxRdAtomic is bounded by maxQpInitRdAtom and maxDestRdAtomic by maxQpRdAtom.
 * XRC, RAW_PACKET, SMI/GSI and the kernel-only mask bits (RATE_LIMIT, …) are left out.
 */
import type { QpCap } from './types';
import { KbypassError, invalidArgType, invalidArgValue, outOfRange } from '../errors';
import { ACCESS_ALL, Access, Mtu, QpAttrMask, QpState, QpType, type QpStateValue, type QpTypeValue } from './constants';

/** struct ibv_ah_attr: an address vector (the path to the remote port). */
export interface AhAttr {
  /** Destination LID, 0–0xffff (InfiniBand; unused on RoCE). */
  dlid?: number;
  /** Service level, 0–15. */
  sl?: number;
  /** Source path bits (LMC), 0–127. */
  srcPathBits?: number;
  /** Static rate limit, an enum ibv_rate value (0 = the port's rate), 0–255. */
  staticRate?: number;
  /** A GRH is present: `grh` must then be given. RoCE always routes with a GRH. */
  isGlobal?: boolean;
  /** Local port, 1–physPortCnt. */
  portNum?: number;
  /** The Global Routing Header fields, used when `isGlobal`. */
  grh?: {
    /** Destination GID, exactly 16 bytes. */
    dgid: Uint8Array;
    /** Flow label, 0–0xfffff (20 bits). */
    flowLabel?: number;
    /** Index of the source GID in the port's GID table, 0–255. */
    sgidIndex?: number;
    /** Hop limit (IPv6) / TTL (IPv4), 0–255. */
    hopLimit?: number;
    /** Traffic class (IPv6) / TOS (IPv4), 0–255. */
    trafficClass?: number;
  };
}


/**
 * struct ibv_qp_attr. Each field is read only when its mask bit (named in brackets) is in the mask passed along
 * with it; "RC/UC" etc. say which QP types the kernel's table lets set it.
 */
export interface QpAttr {
  /** [STATE] The state to move to, a QpState value. */
  qpState?: QpStateValue;
  /** [CUR_STATE] The state the caller believes the QP is in (only on …→RTS); must match the QP's state. */
  curQpState?: QpStateValue;
  /** [PATH_MTU] Path MTU, an Mtu value 1–5 (256–4096 bytes). RC/UC. */
  pathMtu?: number;
  /** [PATH_MIG_STATE] Path migration state (enum ibv_mig_state): 0 MIGRATED, 1 REARM, 2 ARMED. RC/UC. */
  pathMigState?: number;
  /** [QKEY] Q_Key, 0–0xffffffff. UD. */
  qkey?: number;
  /** [RQ_PSN] First PSN expected on the receive queue, 0–0xffffff (24 bits). RC/UC. */
  rqPsn?: number;
  /** [SQ_PSN] First PSN sent on the send queue, 0–0xffffff (24 bits). */
  sqPsn?: number;
  /** [DEST_QPN] Remote QP number, 0–0xffffff (24 bits). RC/UC. */
  destQpNum?: number;
  /** [ACCESS_FLAGS] Remote operations allowed on this QP: Access bits, a subset of ACCESS_ALL. RC/UC. */
  qpAccessFlags?: number;
  /** [CAP] Queue sizes. The kernel's table allows CAP in no transition, so modify refuses it. */
  cap?: QpCap;
  /** [AV] Primary path address vector. RC/UC. */
  ahAttr?: AhAttr;
  /** [ALT_PATH] Alternate path address vector (with altPkeyIndex, altPortNum, altTimeout). RC/UC. */
  altAhAttr?: AhAttr;
  /** [PKEY_INDEX] Index into the port's P_Key table, 0–pkeyTableLen−1. */
  pkeyIndex?: number;
  /** [ALT_PATH] P_Key index of the alternate path, 0–pkeyTableLen−1. */
  altPkeyIndex?: number;
  /** [EN_SQD_ASYNC_NOTIFY] Raise IBV_EVENT_SQ_DRAINED once the send queue has drained (RTS→SQD). */
  enSqdAsyncNotify?: boolean;
  /** Whether the send queue is still draining: reported by query, ignored by modify (no mask bit). */
  sqDraining?: boolean;
  /** [MAX_QP_RD_ATOMIC] RDMA Reads and atomics this QP may have outstanding as initiator, 0–maxQpInitRdAtom. RC. */
  maxRdAtomic?: number;
  /** [MAX_DEST_RD_ATOMIC] Responder resources for incoming RDMA Reads and atomics, 0–maxQpRdAtom. RC. */
  maxDestRdAtomic?: number;
  /** [MIN_RNR_TIMER] RNR NAK timer code sent to the requester, 0–31 (see RNR_TIMER_US; 0 = 655.36 ms). RC. */
  minRnrTimer?: number;
  /** [PORT] Local port, 1–physPortCnt. */
  portNum?: number;
  /** [TIMEOUT] Local ACK timeout code, 0–31: 4.096 µs × 2^timeout, 0 = wait forever. RC. */
  timeout?: number;
  /** [RETRY_CNT] Transport retries on ACK timeout, 0–7. RC. */
  retryCnt?: number;
  /** [RNR_RETRY] Retries after an RNR NAK, 0–7; 7 = retry forever. RC. */
  rnrRetry?: number;
  /** [ALT_PATH] Local port of the alternate path, 1–physPortCnt. */
  altPortNum?: number;
  /** [ALT_PATH] Local ACK timeout code of the alternate path, 0–31. */
  altTimeout?: number;
}

/** The device limits (from ibv_query_device / ibv_query_port) that bound attribute values. */
export interface QpAttrLimits {
  /** Responder resources per QP: the bound of maxDestRdAtomic. */
  maxQpRdAtom: number;
  /** Outstanding initiator RDMA Reads/atomics per QP: the bound of maxRdAtomic. */
  maxQpInitRdAtom: number;
  /** P_Key table length: pkeyIndex and altPkeyIndex must be below it. */
  pkeyTableLen: number;
  /** Number of ports: portNum and altPortNum are 1–physPortCnt. */
  physPortCnt: number;
}

type AttrName = keyof typeof QpAttrMask;
type TypeName = keyof typeof QpType;
type StateName = keyof typeof QpState;

/**
 * ib_modify_qp_is_ok()'s qp_state_table, restricted to RC, UC and UD: every valid `from→to`, and per QP type the
 * attributes that transition requires (`req`) and the further ones it allows (`opt`). STATE is always allowed.
 * A type left out of an entry requires and allows nothing; a pair left out is not a valid transition (note
 * that RESET→ERR is one: the kernel refuses it). CUR_STATE appears only on …→RTS from RTR, RTS, SQD and SQE, which
 * is also what ib_modify_qp_is_ok()'s separate CUR_STATE test enforces.
 */
const TRANSITIONS: Record<string, Partial<Record<TypeName, { req?: string; opt?: string }>>> = {
  'RESET→RESET': {},
  'RESET→INIT': {
    RC: { req: 'PKEY_INDEX PORT ACCESS_FLAGS' },
    UC: { req: 'PKEY_INDEX PORT ACCESS_FLAGS' },
    UD: { req: 'PKEY_INDEX PORT QKEY' },
  },

  'INIT→RESET': {},
  'INIT→ERR': {},
  'INIT→INIT': {
    RC: { opt: 'PKEY_INDEX PORT ACCESS_FLAGS' },
    UC: { opt: 'PKEY_INDEX PORT ACCESS_FLAGS' },
    UD: { opt: 'PKEY_INDEX PORT QKEY' },
  },
  'INIT→RTR': {
    RC: { req: 'AV PATH_MTU DEST_QPN RQ_PSN MAX_DEST_RD_ATOMIC MIN_RNR_TIMER', opt: 'ALT_PATH ACCESS_FLAGS PKEY_INDEX' },
    UC: { req: 'AV PATH_MTU DEST_QPN RQ_PSN', opt: 'ALT_PATH ACCESS_FLAGS PKEY_INDEX' },
    UD: { opt: 'PKEY_INDEX QKEY' },
  },

  'RTR→RESET': {},
  'RTR→ERR': {},
  'RTR→RTS': {
    RC: {
      req: 'TIMEOUT RETRY_CNT RNR_RETRY SQ_PSN MAX_QP_RD_ATOMIC',
      opt: 'CUR_STATE ALT_PATH ACCESS_FLAGS MIN_RNR_TIMER PATH_MIG_STATE',
    },
    UC: { req: 'SQ_PSN', opt: 'CUR_STATE ALT_PATH ACCESS_FLAGS PATH_MIG_STATE' },
    UD: { req: 'SQ_PSN', opt: 'CUR_STATE QKEY' },
  },

  'RTS→RESET': {},
  'RTS→ERR': {},
  'RTS→RTS': {
    RC: { opt: 'CUR_STATE ACCESS_FLAGS ALT_PATH PATH_MIG_STATE MIN_RNR_TIMER' },
    UC: { opt: 'CUR_STATE ACCESS_FLAGS ALT_PATH PATH_MIG_STATE' },
    UD: { opt: 'CUR_STATE QKEY' },
  },
  'RTS→SQD': {
    RC: { opt: 'EN_SQD_ASYNC_NOTIFY' },
    UC: { opt: 'EN_SQD_ASYNC_NOTIFY' },
    UD: { opt: 'EN_SQD_ASYNC_NOTIFY' },
  },

  'SQD→RESET': {},
  'SQD→ERR': {},
  'SQD→RTS': {
    RC: { opt: 'CUR_STATE ALT_PATH ACCESS_FLAGS MIN_RNR_TIMER PATH_MIG_STATE' },
    UC: { opt: 'CUR_STATE ALT_PATH ACCESS_FLAGS PATH_MIG_STATE' },
    UD: { opt: 'CUR_STATE QKEY' },
  },
  'SQD→SQD': {
    RC: {
      opt: 'PORT AV TIMEOUT RETRY_CNT RNR_RETRY MAX_QP_RD_ATOMIC MAX_DEST_RD_ATOMIC ALT_PATH ACCESS_FLAGS PKEY_INDEX '
        + 'MIN_RNR_TIMER PATH_MIG_STATE',
    },
    UC: { opt: 'AV ALT_PATH ACCESS_FLAGS PKEY_INDEX PATH_MIG_STATE' },
    UD: { opt: 'PKEY_INDEX QKEY' },
  },

  'SQE→RESET': {},
  'SQE→ERR': {},
  'SQE→RTS': {
    // RC has no SQE state (a send error takes it to ERR); the kernel lists nothing for it here.
    UC: { opt: 'CUR_STATE ACCESS_FLAGS' },
    UD: { opt: 'CUR_STATE QKEY' },
  },

  'ERR→RESET': {},
  'ERR→ERR': {},
};

/** The qpAttr fields each mask bit sets (CUR_STATE sets nothing: it is a claim that checkModify verifies). */
const FIELDS: Record<AttrName, readonly (keyof QpAttr)[]> = {
  STATE: ['qpState'],
  CUR_STATE: [],
  EN_SQD_ASYNC_NOTIFY: ['enSqdAsyncNotify'],
  ACCESS_FLAGS: ['qpAccessFlags'],
  PKEY_INDEX: ['pkeyIndex'],
  PORT: ['portNum'],
  QKEY: ['qkey'],
  AV: ['ahAttr'],
  PATH_MTU: ['pathMtu'],
  TIMEOUT: ['timeout'],
  RETRY_CNT: ['retryCnt'],
  RNR_RETRY: ['rnrRetry'],
  RQ_PSN: ['rqPsn'],
  MAX_QP_RD_ATOMIC: ['maxRdAtomic'],
  ALT_PATH: ['altAhAttr', 'altPkeyIndex', 'altPortNum', 'altTimeout'],
  MIN_RNR_TIMER: ['minRnrTimer'],
  SQ_PSN: ['sqPsn'],
  MAX_DEST_RD_ATOMIC: ['maxDestRdAtomic'],
  PATH_MIG_STATE: ['pathMigState'],
  CAP: ['cap'],
  DEST_QPN: ['destQpNum'],
};

const ATTR_NAMES = Object.keys(QpAttrMask) as AttrName[];
const KNOWN_MASK = ATTR_NAMES.reduce((m, name) => m | QpAttrMask[name], 0);
const STATE_NAMES: string[] = [];
for (const [name, value] of Object.entries(QpState)) STATE_NAMES[value] = name;
const TYPE_NAMES: Record<number, TypeName> = { [QpType.RC]: 'RC', [QpType.UC]: 'UC', [QpType.UD]: 'UD' };

interface Rule { req: number; opt: number }

/** TRANSITIONS compiled: RULES[from][to][type] is the rule, or the transition is invalid. */
const RULES: (Record<TypeName, Rule> | undefined)[][] = STATE_NAMES.map(() => []);
for (const [key, perType] of Object.entries(TRANSITIONS)) {
  const [from, to] = key.split('→') as [StateName, StateName];
  const compiled = {} as Record<TypeName, Rule>;
  for (const type of Object.values(TYPE_NAMES)) {
    compiled[type] = { req: maskOf(perType[type]?.req), opt: maskOf(perType[type]?.opt) };
  }
  RULES[QpState[from]]![QpState[to]] = compiled;
}

function maskOf(names: string | undefined): number {
  let mask = 0;
  for (const name of (names ?? '').split(' ').filter(Boolean)) {
    const bit = (QpAttrMask as Record<string, number>)[name];
    if (bit === undefined) throw new Error(`qp-attr: unknown attribute ${name} in TRANSITIONS`);
    mask |= bit;
  }
  return mask;
}

/**
 * The names of a mask's bits, lowest first (`['STATE', 'PKEY_INDEX']`); a bit libibverbs' enum does not define
 * here is shown in hex (`'0x2000000'`).
 */
export function maskNames(mask: number): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const value = 2 ** bit;
    if (Math.floor(mask / value) % 2 === 0) continue;
    names.push(ATTR_NAMES.find((name) => QpAttrMask[name] === value) ?? `0x${value.toString(16)}`);
  }
  return names;
}

function einval(message: string): KbypassError {
  return new KbypassError('EINVAL', message);
}

function stateName(state: number): string {
  return STATE_NAMES[state] ?? String(state);
}

function isState(value: unknown): value is QpStateValue {
  return typeof value === 'number' && STATE_NAMES[value] !== undefined;
}

/** A number field: the wrong JS type is a TypeError, a number outside min..max (or not an integer) is EINVAL. */
function checkInt(name: string, value: unknown, min: number, max: number, bound = ''): void {
  if (typeof value !== 'number') throw invalidArgType(`attr.${name}`, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw einval(`${name} ${value} is out of range ${min}..${max}${bound}`);
  }
}

function checkOptionalInt(name: string, value: unknown, min: number, max: number, bound = ''): void {
  if (value !== undefined) checkInt(name, value, min, max, bound);
}

function checkAh(name: string, ah: unknown, limits: QpAttrLimits): void {
  if (typeof ah !== 'object' || ah === null) throw invalidArgType(`attr.${name}`, 'of type object', ah);
  const a = ah as AhAttr;
  checkOptionalInt(`${name}.dlid`, a.dlid, 0, 0xffff);
  checkOptionalInt(`${name}.sl`, a.sl, 0, 15);
  checkOptionalInt(`${name}.srcPathBits`, a.srcPathBits, 0, 127);
  checkOptionalInt(`${name}.staticRate`, a.staticRate, 0, 255);
  checkOptionalInt(`${name}.portNum`, a.portNum, 1, limits.physPortCnt, ' (device physPortCnt)');
  if (a.isGlobal !== undefined && typeof a.isGlobal !== 'boolean') {
    throw invalidArgType(`attr.${name}.isGlobal`, 'of type boolean', a.isGlobal);
  }
  if (!a.isGlobal) return;
  const grh = a.grh;
  if (grh === undefined) throw einval(`${name}.isGlobal is set but ${name}.grh is missing`);
  if (typeof grh !== 'object' || grh === null) throw invalidArgType(`attr.${name}.grh`, 'of type object', grh);
  if (!(grh.dgid instanceof Uint8Array)) {
    throw invalidArgType(`attr.${name}.grh.dgid`, 'an instance of Uint8Array', grh.dgid);
  }
  if (grh.dgid.length !== 16) throw einval(`${name}.grh.dgid must be 16 bytes, not ${grh.dgid.length}`);
  checkOptionalInt(`${name}.grh.flowLabel`, grh.flowLabel, 0, 0xfffff);
  checkOptionalInt(`${name}.grh.sgidIndex`, grh.sgidIndex, 0, 255);
  checkOptionalInt(`${name}.grh.hopLimit`, grh.hopLimit, 0, 255);
  checkOptionalInt(`${name}.grh.trafficClass`, grh.trafficClass, 0, 255);
}

/** The value checks, per mask bit (STATE and CUR_STATE are checked with the transition). */
const VALUE_CHECKS: Partial<Record<AttrName, (attr: QpAttr, limits: QpAttrLimits) => void>> = {
  EN_SQD_ASYNC_NOTIFY: (a) => {
    if (typeof a.enSqdAsyncNotify !== 'boolean') {
      throw invalidArgType('attr.enSqdAsyncNotify', 'of type boolean', a.enSqdAsyncNotify);
    }
  },
  ACCESS_FLAGS: (a) => {
    checkInt('qpAccessFlags', a.qpAccessFlags, 0, 0xffffffff);
    const unknown = (a.qpAccessFlags as number) & ~ACCESS_ALL;
    if (unknown !== 0) {
      const known = Object.keys(Access).join('|');
      throw einval(`qpAccessFlags 0x${(a.qpAccessFlags as number).toString(16)} has bits outside ${known}: 0x${(unknown >>> 0).toString(16)}`);
    }
  },
  PKEY_INDEX: (a, l) => checkInt('pkeyIndex', a.pkeyIndex, 0, l.pkeyTableLen - 1, ' (device pkeyTableLen - 1)'),
  PORT: (a, l) => checkInt('portNum', a.portNum, 1, l.physPortCnt, ' (device physPortCnt)'),
  QKEY: (a) => checkInt('qkey', a.qkey, 0, 0xffffffff),
  AV: (a, l) => checkAh('ahAttr', a.ahAttr, l),
  PATH_MTU: (a) => checkInt('pathMtu', a.pathMtu, Mtu.MTU_256, Mtu.MTU_4096),
  TIMEOUT: (a) => checkInt('timeout', a.timeout, 0, 31),
  RETRY_CNT: (a) => checkInt('retryCnt', a.retryCnt, 0, 7),
  RNR_RETRY: (a) => checkInt('rnrRetry', a.rnrRetry, 0, 7),
  // The kernel masks an over-wide PSN to 24 bits with a warning; here it is an error.
  RQ_PSN: (a) => checkInt('rqPsn', a.rqPsn, 0, 0xffffff),
  MAX_QP_RD_ATOMIC: (a, l) => checkInt('maxRdAtomic', a.maxRdAtomic, 0, l.maxQpInitRdAtom, ' (device maxQpInitRdAtom)'),
  ALT_PATH: (a, l) => {
    checkAh('altAhAttr', a.altAhAttr, l);
    checkInt('altPkeyIndex', a.altPkeyIndex, 0, l.pkeyTableLen - 1, ' (device pkeyTableLen - 1)');
    checkInt('altPortNum', a.altPortNum, 1, l.physPortCnt, ' (device physPortCnt)');
    checkInt('altTimeout', a.altTimeout, 0, 31);
  },
  MIN_RNR_TIMER: (a) => checkInt('minRnrTimer', a.minRnrTimer, 0, 31),
  SQ_PSN: (a) => checkInt('sqPsn', a.sqPsn, 0, 0xffffff),
  MAX_DEST_RD_ATOMIC: (a, l) => checkInt('maxDestRdAtomic', a.maxDestRdAtomic, 0, l.maxQpRdAtom, ' (device maxQpRdAtom)'),
  PATH_MIG_STATE: (a) => checkInt('pathMigState', a.pathMigState, 0, 2),
  DEST_QPN: (a) => checkInt('destQpNum', a.destQpNum, 0, 0xffffff),
  // CAP: no transition allows it, so it never gets this far.
};

/**
 * Checks an ibv_modify_qp call on a QP of `type` in state `current`, as the kernel would, and returns the state
 * the QP would move to. Pure: nothing is applied (see applyAttrs).
 *
 * The checks, in order: the mask has only known bits; the transition current→next is valid (next is
 * attr.qpState with STATE, else current; with CUR_STATE, attr.curQpState must equal current: the kernel looks the
 * transition up from cur_qp_state, and we know the QP's state, so a different claim is an error); every
 * attribute the transition requires for this QP type is in the mask; no attribute outside required ∪ optional
 * is; and every masked value is in range.
 *
 * @throws KbypassError with code 'EINVAL' (what ibv_modify_qp returns) naming the problem; TypeError
 *   ERR_INVALID_ARG_TYPE for arguments or attributes of the wrong JS type, ERR_INVALID_ARG_VALUE for an unknown
 *   `type` or `current`; RangeError ERR_OUT_OF_RANGE for a mask that is not a 32-bit unsigned integer.
 */
export function checkModify(
  type: QpTypeValue,
  current: QpStateValue,
  attr: QpAttr,
  mask: number,
  limits: QpAttrLimits,
): QpStateValue {
  const typeName = TYPE_NAMES[type];
  if (typeName === undefined) throw invalidArgValue('type', type, 'must be QpType.RC, QpType.UC or QpType.UD');
  if (!isState(current)) throw invalidArgValue('current', current, 'must be a QpState value');
  if (typeof attr !== 'object' || attr === null) throw invalidArgType('attr', 'of type object', attr);
  if (typeof mask !== 'number') throw invalidArgType('mask', 'of type number', mask);
  if (!Number.isInteger(mask) || mask < 0 || mask > 0xffffffff) {
    throw outOfRange('mask', 'an integer >= 0 and <= 4294967295', mask);
  }
  if (typeof limits !== 'object' || limits === null) throw invalidArgType('limits', 'of type object', limits);

  // 1. Only known bits.
  const unknown = maskNames((mask & ~KNOWN_MASK) >>> 0);
  if (unknown.length > 0) throw einval(`unknown attribute mask bit${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);

  // 2. A valid transition.
  let next: QpStateValue = current;
  if (mask & QpAttrMask.STATE) {
    if (typeof attr.qpState !== 'number') throw invalidArgType('attr.qpState', 'of type number', attr.qpState);
    if (!isState(attr.qpState)) throw einval(`qpState ${attr.qpState} is not a QP state (0..6)`);
    next = attr.qpState;
  }
  if (mask & QpAttrMask.CUR_STATE) {
    if (typeof attr.curQpState !== 'number') throw invalidArgType('attr.curQpState', 'of type number', attr.curQpState);
    if (!isState(attr.curQpState)) throw einval(`curQpState ${attr.curQpState} is not a QP state (0..6)`);
    if (attr.curQpState !== current) {
      throw einval(`curQpState ${stateName(attr.curQpState)} does not match the QP's state ${stateName(current)}`);
    }
  }
  const transition = `${stateName(current)}→${stateName(next)}`;
  const rule = RULES[current]?.[next]?.[typeName];
  if (rule === undefined) throw einval(`${transition} is not a valid transition`);

  // 3. Every required attribute.
  const missing = rule.req & ~mask;
  if (missing !== 0) {
    throw einval(`${typeName} ${transition} needs ${maskNames(rule.req).join(', ')} (missing: ${maskNames(missing).join(', ')})`);
  }

  // 4. Nothing else than required and optional ones.
  const allowed = rule.req | rule.opt | QpAttrMask.STATE;
  const extra = mask & ~allowed;
  if (extra !== 0) {
    const names = maskNames(extra);
    throw einval(`attribute${names.length > 1 ? 's' : ''} ${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} not `
      + `allowed for ${typeName} ${transition} (allowed: ${maskNames(allowed).join(', ')})`);
  }

  // 5. Every value in range.
  for (const name of maskNames(mask) as AttrName[]) VALUE_CHECKS[name]?.(attr, limits);
  return next;
}

function copyAh(ah: AhAttr): AhAttr {
  const copy: AhAttr = { ...ah };
  if (ah.grh) copy.grh = { ...ah.grh, dgid: ah.grh.dgid.slice() };
  return copy;
}

/**
 * Applies a modify that checkModify accepted: copies the masked attributes from `attr` into `stored` (the address
 * vectors and `cap` as copies, so later changes to `attr` do not reach `stored`) and sets stored.qpState.
 *
 * A move to RESET first clears `stored` back to a new QP's attributes: everything but `cap` (the queue sizes
 * given at creation) is removed. This follows the IB model of RESET as the state a QP is created in; note that
 * rxe (rxe_qp_reset) resets only the transport state (SSN, MSN, queues, read/atomic resources) and leaves
 * qp->attr as it was, which only shows in what ibv_query_qp reports for attributes that are not required again
 * on the way back to RTS (ALT_PATH, PATH_MIG_STATE, EN_SQD_ASYNC_NOTIFY, …).
 */
export function applyAttrs(stored: QpAttr, attr: QpAttr, mask: number): void {
  if (mask & QpAttrMask.STATE && attr.qpState === QpState.RESET) {
    for (const key of Object.keys(stored) as (keyof QpAttr)[]) if (key !== 'cap') delete stored[key];
  }
  const target = stored as Record<keyof QpAttr, unknown>;
  for (const name of maskNames(mask)) {
    for (const field of FIELDS[name as AttrName] ?? []) {
      const value = attr[field];
      if (field === 'ahAttr' || field === 'altAhAttr') target[field] = value === undefined ? undefined : copyAh(value as AhAttr);
      else if (field === 'cap') target[field] = value === undefined ? undefined : { ...(value as QpCap) };
      else target[field] = value;
    }
  }
}

export type { QpCap };
