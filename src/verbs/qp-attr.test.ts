import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KbypassError } from '../errors';
import { ACCESS_ALL, Mtu, QpAttrMask, QpState, QpType, type QpStateValue, type QpTypeValue } from './constants';
import { applyAttrs, checkModify, maskNames, type QpAttr, type QpAttrLimits } from './qp-attr';

// The expected state machine, written out again here from the kernel's qp_state_table (drivers/infiniband/core/
// verbs.c) and ibv_modify_qp(3), one block per QP type, so that the module is checked against an independent copy.
// Each line: from to | required attributes | optional attributes. A pair not listed must be refused.
const EXPECTED: Record<'RC' | 'UC' | 'UD', string> = {
  RC: `
    RESET RESET |                                                          |
    RESET INIT  | PKEY_INDEX PORT ACCESS_FLAGS                             |
    INIT  RESET |                                                          |
    INIT  ERR   |                                                          |
    INIT  INIT  |                                                          | PKEY_INDEX PORT ACCESS_FLAGS
    INIT  RTR   | AV PATH_MTU DEST_QPN RQ_PSN MAX_DEST_RD_ATOMIC MIN_RNR_TIMER | ALT_PATH ACCESS_FLAGS PKEY_INDEX
    RTR   RESET |                                                          |
    RTR   ERR   |                                                          |
    RTR   RTS   | TIMEOUT RETRY_CNT RNR_RETRY SQ_PSN MAX_QP_RD_ATOMIC      | CUR_STATE ALT_PATH ACCESS_FLAGS MIN_RNR_TIMER PATH_MIG_STATE
    RTS   RESET |                                                          |
    RTS   ERR   |                                                          |
    RTS   RTS   |                                                          | CUR_STATE ACCESS_FLAGS ALT_PATH PATH_MIG_STATE MIN_RNR_TIMER
    RTS   SQD   |                                                          | EN_SQD_ASYNC_NOTIFY
    SQD   RESET |                                                          |
    SQD   ERR   |                                                          |
    SQD   RTS   |                                                          | CUR_STATE ALT_PATH ACCESS_FLAGS MIN_RNR_TIMER PATH_MIG_STATE
    SQD   SQD   |                                                          | PORT AV TIMEOUT RETRY_CNT RNR_RETRY MAX_QP_RD_ATOMIC MAX_DEST_RD_ATOMIC ALT_PATH ACCESS_FLAGS PKEY_INDEX MIN_RNR_TIMER PATH_MIG_STATE
    SQE   RESET |                                                          |
    SQE   ERR   |                                                          |
    SQE   RTS   |                                                          |
    ERR   RESET |                                                          |
    ERR   ERR   |                                                          |
  `,
  UC: `
    RESET RESET |                                         |
    RESET INIT  | PKEY_INDEX PORT ACCESS_FLAGS            |
    INIT  RESET |                                         |
    INIT  ERR   |                                         |
    INIT  INIT  |                                         | PKEY_INDEX PORT ACCESS_FLAGS
    INIT  RTR   | AV PATH_MTU DEST_QPN RQ_PSN             | ALT_PATH ACCESS_FLAGS PKEY_INDEX
    RTR   RESET |                                         |
    RTR   ERR   |                                         |
    RTR   RTS   | SQ_PSN                                  | CUR_STATE ALT_PATH ACCESS_FLAGS PATH_MIG_STATE
    RTS   RESET |                                         |
    RTS   ERR   |                                         |
    RTS   RTS   |                                         | CUR_STATE ACCESS_FLAGS ALT_PATH PATH_MIG_STATE
    RTS   SQD   |                                         | EN_SQD_ASYNC_NOTIFY
    SQD   RESET |                                         |
    SQD   ERR   |                                         |
    SQD   RTS   |                                         | CUR_STATE ALT_PATH ACCESS_FLAGS PATH_MIG_STATE
    SQD   SQD   |                                         | AV ALT_PATH ACCESS_FLAGS PKEY_INDEX PATH_MIG_STATE
    SQE   RESET |                                         |
    SQE   ERR   |                                         |
    SQE   RTS   |                                         | CUR_STATE ACCESS_FLAGS
    ERR   RESET |                                         |
    ERR   ERR   |                                         |
  `,
  UD: `
    RESET RESET |                       |
    RESET INIT  | PKEY_INDEX PORT QKEY  |
    INIT  RESET |                       |
    INIT  ERR   |                       |
    INIT  INIT  |                       | PKEY_INDEX PORT QKEY
    INIT  RTR   |                       | PKEY_INDEX QKEY
    RTR   RESET |                       |
    RTR   ERR   |                       |
    RTR   RTS   | SQ_PSN                | CUR_STATE QKEY
    RTS   RESET |                       |
    RTS   ERR   |                       |
    RTS   RTS   |                       | CUR_STATE QKEY
    RTS   SQD   |                       | EN_SQD_ASYNC_NOTIFY
    SQD   RESET |                       |
    SQD   ERR   |                       |
    SQD   RTS   |                       | CUR_STATE QKEY
    SQD   SQD   |                       | PKEY_INDEX QKEY
    SQE   RESET |                       |
    SQE   ERR   |                       |
    SQE   RTS   |                       | CUR_STATE QKEY
    ERR   RESET |                       |
    ERR   ERR   |                       |
  `,
};

type MaskName = keyof typeof QpAttrMask;
type StateName = keyof typeof QpState;
interface Row { from: StateName; to: StateName; req: MaskName[]; opt: MaskName[] }

function words(text: string | undefined): string[] {
  return (text ?? '').trim().split(/\s+/).filter(Boolean);
}

function parse(block: string): Row[] {
  return block.trim().split('\n').map((line) => {
    const [states, req, opt] = line.split('|');
    const [from, to] = words(states) as [StateName, StateName];
    for (const name of [...words(req), ...words(opt)]) assert.ok(name in QpAttrMask, `test table: ${name}`);
    return { from, to, req: words(req) as MaskName[], opt: words(opt) as MaskName[] };
  });
}

const TYPES = Object.keys(EXPECTED) as (keyof typeof EXPECTED)[];
const STATES = Object.keys(QpState) as StateName[];
const ALL_NAMES = Object.keys(QpAttrMask) as MaskName[];
const { STATE } = QpAttrMask;
const LIMITS: QpAttrLimits = { maxQpRdAtom: 16, maxQpInitRdAtom: 8, pkeyTableLen: 128, physPortCnt: 2 };

function maskOf(names: readonly MaskName[]): number {
  return names.reduce((m, name) => m | QpAttrMask[name], 0);
}

const dgid = (): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (i === 10 || i === 11 ? 0xff : i === 15 ? 7 : 0));

/** Every attribute set to a valid value, so that only the mask decides what is checked. */
function fullAttr(from: StateName, to: StateName): QpAttr {
  return {
    qpState: QpState[to],
    curQpState: QpState[from],
    pathMtu: Mtu.MTU_1024,
    pathMigState: 2,
    qkey: 0x11111111,
    rqPsn: 0x123456,
    sqPsn: 0xabcdef,
    destQpNum: 0x11,
    qpAccessFlags: ACCESS_ALL,
    cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 64 },
    ahAttr: { dlid: 0, sl: 0, srcPathBits: 0, staticRate: 0, isGlobal: true, portNum: 1, grh: { dgid: dgid(), flowLabel: 0, sgidIndex: 1, hopLimit: 64, trafficClass: 0 } },
    altAhAttr: { dlid: 5, sl: 1, isGlobal: false, portNum: 2 },
    pkeyIndex: 0,
    altPkeyIndex: 1,
    enSqdAsyncNotify: true,
    maxRdAtomic: 8,
    maxDestRdAtomic: 16,
    minRnrTimer: 12,
    portNum: 1,
    timeout: 14,
    retryCnt: 7,
    rnrRetry: 7,
    altPortNum: 2,
    altTimeout: 31,
  };
}

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KbypassError, `a KbypassError, got ${String(e)}`);
    assert.equal(e.code, 'EINVAL');
    assert.match(e.message, pattern);
    return true;
  });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const type of TYPES) {
  const T: QpTypeValue = QpType[type];
  const rows = parse(EXPECTED[type]);

  for (const { from, to, req, opt } of rows) {
    const S = QpState[from];
    const transition = `${type} ${from}→${to}`;

    test(`${transition}: exactly the required attributes are enough`, () => {
      assert.equal(checkModify(T, S, fullAttr(from, to), STATE | maskOf(req), LIMITS), QpState[to]);
      // With STATE left out, the next state is the current one.
      if (from === to) assert.equal(checkModify(T, S, fullAttr(from, to), maskOf(req), LIMITS), QpState[to]);
    });

    test(`${transition}: leaving out any one required attribute is EINVAL`, () => {
      for (const name of req) {
        const mask = STATE | (maskOf(req) & ~QpAttrMask[name]);
        refused(() => checkModify(T, S, fullAttr(from, to), mask, LIMITS),
          new RegExp(`^${esc(transition)} needs [A-Z_, ]+ \\(missing: ${name}\\)$`));
      }
      if (req.length > 1) {
        refused(() => checkModify(T, S, fullAttr(from, to), STATE, LIMITS),
          new RegExp(`^${esc(transition)} needs [A-Z_, ]+ \\(missing: (${req.join('|')})(, (${req.join('|')}))*\\)$`));
      }
    });

    test(`${transition}: each optional attribute is accepted, and all of them together`, () => {
      for (const name of opt) {
        assert.equal(checkModify(T, S, fullAttr(from, to), STATE | maskOf(req) | QpAttrMask[name], LIMITS), QpState[to], name);
      }
      assert.equal(checkModify(T, S, fullAttr(from, to), STATE | maskOf(req) | maskOf(opt), LIMITS), QpState[to]);
    });

    test(`${transition}: any other attribute is EINVAL`, () => {
      const others = ALL_NAMES.filter((name) => name !== 'STATE' && !req.includes(name) && !opt.includes(name));
      for (const name of others) {
        refused(() => checkModify(T, S, fullAttr(from, to), STATE | maskOf(req) | QpAttrMask[name], LIMITS),
          new RegExp(`^attribute ${name} is not allowed for ${esc(transition)} `));
      }
    });
  }

  test(`${type}: every transition not in the table is EINVAL`, () => {
    const valid = new Set(rows.map((r) => `${r.from}→${r.to}`));
    let refusedCount = 0;
    for (const from of STATES) {
      for (const to of STATES) {
        if (valid.has(`${from}→${to}`)) continue;
        refusedCount++;
        const pattern = new RegExp(`^${from}→${to} is not a valid transition$`);
        refused(() => checkModify(T, QpState[from], fullAttr(from, to), STATE, LIMITS), pattern);
        // Even with every attribute: the transition is checked first.
        refused(() => checkModify(T, QpState[from], fullAttr(from, to), maskOf(ALL_NAMES), LIMITS), pattern);
        if (from === to) refused(() => checkModify(T, QpState[from], fullAttr(from, to), 0, LIMITS), pattern);
      }
    }
    assert.equal(refusedCount, 49 - 22);
    for (const [from, to] of [['RESET', 'RTR'], ['INIT', 'RTS'], ['RTR', 'INIT'], ['RESET', 'ERR'], ['RTS', 'SQE']] as const) {
      assert.ok(!valid.has(`${from}→${to}`), `${from}→${to} is among the refused`);
    }
  });

  test(`${type}: the bring-up of ibv_modify_qp(3) (RESET→INIT→RTR→RTS), applied step by step`, () => {
    const stored: QpAttr = {};
    let state: QpStateValue = QpState.RESET;
    for (const to of ['INIT', 'RTR', 'RTS'] as const) {
      const row = rows.find((r) => r.from === STATES[state] && r.to === to);
      assert.ok(row);
      const attr = fullAttr(row.from, to);
      const mask = STATE | maskOf(row.req);
      state = checkModify(T, state, attr, mask, LIMITS);
      applyAttrs(stored, attr, mask);
      assert.equal(state, QpState[to]);
      assert.equal(stored.qpState, QpState[to]);
    }
    assert.equal(stored.sqPsn, 0xabcdef);
    assert.equal(stored.qkey, type === 'UD' ? 0x11111111 : undefined);
    assert.equal(stored.destQpNum, type === 'UD' ? undefined : 0x11);
  });
}

test('the manual and the table agree on the bring-up requirements', () => {
  // ibv_modify_qp(3) lists these (plus IBV_QP_STATE) for Reset --> Init --> RTR --> RTS.
  const manual: Record<string, [string, string, string]> = {
    UD: ['PKEY_INDEX PORT QKEY', '', 'SQ_PSN'],
    UC: ['PKEY_INDEX PORT ACCESS_FLAGS', 'AV PATH_MTU DEST_QPN RQ_PSN', 'SQ_PSN'],
    RC: ['PKEY_INDEX PORT ACCESS_FLAGS', 'AV PATH_MTU DEST_QPN RQ_PSN MAX_DEST_RD_ATOMIC MIN_RNR_TIMER',
      'SQ_PSN MAX_QP_RD_ATOMIC RETRY_CNT RNR_RETRY TIMEOUT'],
  };
  for (const type of TYPES) {
    const [init, rtr, rts] = manual[type]!;
    const steps: [StateName, StateName, string][] = [['RESET', 'INIT', init], ['INIT', 'RTR', rtr], ['RTR', 'RTS', rts]];
    for (const [from, to, names] of steps) {
      const mask = STATE | maskOf(words(names) as MaskName[]);
      assert.equal(checkModify(QpType[type], QpState[from], fullAttr(from, to), mask, LIMITS), QpState[to], `${type} ${from}→${to}`);
    }
  }
});

// Value checks. Each case: a transition that lets the attribute through, the attribute, values that must pass
// (the edges of the range), values that must fail and the message they give.
interface ValueCase { type: keyof typeof QpType; from: StateName; to: StateName; bit: MaskName; set: (a: QpAttr, v: number) => void; ok: number[]; bad: number[]; message: (v: number) => string }

const V = (type: ValueCase['type'], from: StateName, to: StateName, bit: MaskName, field: keyof QpAttr, ok: number[], bad: number[], range: string): ValueCase =>
  ({ type, from, to, bit, set: (a, v) => { (a as Record<string, unknown>)[field] = v; }, ok, bad, message: (v) => `${field} ${v} is out of range ${range}` });

const VALUE_CASES: ValueCase[] = [
  V('RC', 'INIT', 'RTR', 'PATH_MTU', 'pathMtu', [1, 5], [0, 6, 7, 2.5], '1..5'),
  V('RC', 'INIT', 'RTR', 'DEST_QPN', 'destQpNum', [0, 0xffffff], [0x1000000, -1], '0..16777215'),
  V('UC', 'INIT', 'RTR', 'RQ_PSN', 'rqPsn', [0, 0xffffff], [0x1000000], '0..16777215'),
  V('UC', 'RTR', 'RTS', 'SQ_PSN', 'sqPsn', [0, 0xffffff], [0x1000000, 2 ** 32], '0..16777215'),
  V('UD', 'RTS', 'RTS', 'QKEY', 'qkey', [0, 0xffffffff], [2 ** 32, -1], '0..4294967295'),
  V('RC', 'SQD', 'SQD', 'TIMEOUT', 'timeout', [0, 31], [32, -1], '0..31'),
  V('RC', 'SQD', 'SQD', 'RETRY_CNT', 'retryCnt', [0, 7], [8], '0..7'),
  V('RC', 'SQD', 'SQD', 'RNR_RETRY', 'rnrRetry', [0, 7], [8], '0..7'),
  V('RC', 'RTS', 'RTS', 'MIN_RNR_TIMER', 'minRnrTimer', [0, 31], [32], '0..31'),
  V('RC', 'SQD', 'SQD', 'PORT', 'portNum', [1, 2], [0, 3], '1..2 (device physPortCnt)'),
  V('UD', 'INIT', 'INIT', 'PKEY_INDEX', 'pkeyIndex', [0, 127], [128, -1], '0..127 (device pkeyTableLen - 1)'),
  V('RC', 'SQD', 'SQD', 'MAX_QP_RD_ATOMIC', 'maxRdAtomic', [0, 8], [9], '0..8 (device maxQpInitRdAtom)'),
  V('RC', 'SQD', 'SQD', 'MAX_DEST_RD_ATOMIC', 'maxDestRdAtomic', [0, 16], [17], '0..16 (device maxQpRdAtom)'),
  V('UC', 'RTS', 'RTS', 'PATH_MIG_STATE', 'pathMigState', [0, 2], [3], '0..2'),
  V('RC', 'SQD', 'SQD', 'ALT_PATH', 'altTimeout', [0, 31], [32], '0..31'),
  V('RC', 'SQD', 'SQD', 'ALT_PATH', 'altPortNum', [1, 2], [0, 3], '1..2 (device physPortCnt)'),
  V('UC', 'RTS', 'RTS', 'ALT_PATH', 'altPkeyIndex', [0, 127], [128], '0..127 (device pkeyTableLen - 1)'),
];

const AH = (path: string, set: (ah: NonNullable<QpAttr['ahAttr']>, v: number) => void, ok: number[], bad: number[], range: string): ValueCase[] =>
  [['ahAttr', 'AV'], ['altAhAttr', 'ALT_PATH']].map(([field, bit]) => ({
    type: 'RC', from: 'SQD', to: 'SQD', bit: bit as MaskName,
    set: (a, v) => set((a as Record<string, NonNullable<QpAttr['ahAttr']>>)[field!]!, v),
    ok, bad, message: (v) => `${field}.${path} ${v} is out of range ${range}`,
  }));

VALUE_CASES.push(
  ...AH('dlid', (ah, v) => { ah.dlid = v; }, [0, 0xffff], [0x10000], '0..65535'),
  ...AH('sl', (ah, v) => { ah.sl = v; }, [0, 15], [16], '0..15'),
  ...AH('srcPathBits', (ah, v) => { ah.srcPathBits = v; }, [0, 127], [128], '0..127'),
  ...AH('staticRate', (ah, v) => { ah.staticRate = v; }, [0, 255], [256], '0..255'),
  ...AH('portNum', (ah, v) => { ah.portNum = v; }, [1, 2], [0, 3], '1..2 (device physPortCnt)'),
  ...AH('grh.flowLabel', (ah, v) => { ah.isGlobal = true; ah.grh = { dgid: dgid(), flowLabel: v }; }, [0, 0xfffff], [0x100000], '0..1048575'),
  ...AH('grh.sgidIndex', (ah, v) => { ah.isGlobal = true; ah.grh = { dgid: dgid(), sgidIndex: v }; }, [0, 255], [256], '0..255'),
  ...AH('grh.hopLimit', (ah, v) => { ah.isGlobal = true; ah.grh = { dgid: dgid(), hopLimit: v }; }, [0, 255], [256], '0..255'),
  ...AH('grh.trafficClass', (ah, v) => { ah.isGlobal = true; ah.grh = { dgid: dgid(), trafficClass: v }; }, [0, 255], [256], '0..255'),
);

test('values: the edges of each range pass, one past them is EINVAL naming the value and the range', () => {
  for (const c of VALUE_CASES) {
    const row = parse(EXPECTED[c.type]).find((r) => r.from === c.from && r.to === c.to);
    assert.ok(row, `${c.type} ${c.from}→${c.to} is valid`);
    const mask = STATE | maskOf(row.req) | QpAttrMask[c.bit];
    const run = (v: number): QpStateValue => {
      const attr = fullAttr(c.from, c.to);
      c.set(attr, v);
      return checkModify(QpType[c.type], QpState[c.from], attr, mask, LIMITS);
    };
    for (const v of c.ok) assert.equal(run(v), QpState[c.to], `${c.message(v)} should pass`);
    for (const v of c.bad) refused(() => run(v), new RegExp(`^${esc(c.message(v))}$`));
  }
});

test('values: access flags must be a subset of ACCESS_ALL', () => {
  const ok = (flags: number): QpStateValue =>
    checkModify(QpType.RC, QpState.RTS, { ...fullAttr('RTS', 'RTS'), qpAccessFlags: flags }, STATE | QpAttrMask.ACCESS_FLAGS, LIMITS);
  assert.equal(ok(0), QpState.RTS);
  assert.equal(ok(ACCESS_ALL), QpState.RTS);
  refused(() => ok(1 << 4), /^qpAccessFlags 0x10 has bits outside LOCAL_WRITE\|REMOTE_WRITE\|REMOTE_READ\|REMOTE_ATOMIC: 0x10$/);
  refused(() => ok(ACCESS_ALL | (1 << 4)), /^qpAccessFlags 0x1f has bits outside .*: 0x10$/);
  refused(() => ok(-1), /^qpAccessFlags -1 is out of range 0\.\.4294967295$/);
});

test('values: an address vector with isGlobal needs a GRH with a 16-byte dgid; without isGlobal the GRH is ignored', () => {
  const run = (ah: NonNullable<QpAttr['ahAttr']>): QpStateValue =>
    checkModify(QpType.UC, QpState.SQD, { ...fullAttr('SQD', 'SQD'), ahAttr: ah }, STATE | QpAttrMask.AV, LIMITS);
  assert.equal(run({ isGlobal: true, grh: { dgid: dgid() } }), QpState.SQD);
  assert.equal(run({}), QpState.SQD);
  assert.equal(run({ isGlobal: false, grh: { dgid: new Uint8Array(3) } }), QpState.SQD);
  refused(() => run({ isGlobal: true }), /^ahAttr\.isGlobal is set but ahAttr\.grh is missing$/);
  refused(() => run({ isGlobal: true, grh: { dgid: new Uint8Array(15) } }), /^ahAttr\.grh\.dgid must be 16 bytes, not 15$/);
  refused(() => run({ isGlobal: true, grh: { dgid: new Uint8Array(17) } }), /^ahAttr\.grh\.dgid must be 16 bytes, not 17$/);
  assert.equal(codeOf(() => run({ isGlobal: true, grh: { dgid: [...dgid()] as unknown as Uint8Array } })), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => run({ isGlobal: 1 as unknown as boolean, grh: { dgid: dgid() } })), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UC, QpState.SQD, { ahAttr: null as unknown as undefined }, STATE | QpAttrMask.AV, LIMITS)), 'ERR_INVALID_ARG_TYPE');
});

test('values: only masked attributes are checked', () => {
  const attr: QpAttr = { ...fullAttr('RTS', 'RTS'), pathMtu: 99, qkey: -5, sqPsn: 2 ** 30, ahAttr: { sl: 99 }, timeout: 'x' as unknown as number };
  assert.equal(checkModify(QpType.RC, QpState.RTS, attr, STATE | QpAttrMask.ACCESS_FLAGS, LIMITS), QpState.RTS);
});

test('wrong JS types are TypeErrors / RangeErrors, not EINVAL', () => {
  const attr = fullAttr('RESET', 'INIT');
  const mask = STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.QKEY;
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, { ...attr, qkey: '1' as unknown as number }, mask, LIMITS)), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, { ...attr, qkey: undefined }, mask, LIMITS)), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, { ...attr, qpState: undefined }, mask, LIMITS)), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, null as unknown as QpAttr, mask, LIMITS)), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, attr, String(mask) as unknown as number, LIMITS)), 'ERR_INVALID_ARG_TYPE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, attr, 1.5, LIMITS)), 'ERR_OUT_OF_RANGE');
  assert.equal(codeOf(() => checkModify(QpType.UD, QpState.RESET, attr, -1, LIMITS)), 'ERR_OUT_OF_RANGE');
  assert.equal(codeOf(() => checkModify(5 as QpTypeValue, QpState.RESET, attr, mask, LIMITS)), 'ERR_INVALID_ARG_VALUE');
  assert.equal(codeOf(() => checkModify(QpType.UD, 7 as QpStateValue, attr, mask, LIMITS)), 'ERR_INVALID_ARG_VALUE');
  assert.equal(codeOf(() => checkModify(QpType.RC, QpState.RTS, { enSqdAsyncNotify: 1 as unknown as boolean, qpState: QpState.SQD }, STATE | QpAttrMask.EN_SQD_ASYNC_NOTIFY, LIMITS)), 'ERR_INVALID_ARG_TYPE');
});

test('the target and claimed current states must be QP states', () => {
  refused(() => checkModify(QpType.RC, QpState.RTS, { qpState: 7 as QpStateValue }, STATE, LIMITS), /^qpState 7 is not a QP state \(0\.\.6\)$/);
  refused(() => checkModify(QpType.RC, QpState.RTS, { qpState: QpState.RTS, curQpState: 9 as QpStateValue }, STATE | QpAttrMask.CUR_STATE, LIMITS),
    /^curQpState 9 is not a QP state \(0\.\.6\)$/);
});

test('CUR_STATE: accepted where optional when it matches the QP state, EINVAL when it does not', () => {
  const mask = STATE | QpAttrMask.CUR_STATE;
  assert.equal(checkModify(QpType.UD, QpState.RTS, { qpState: QpState.RTS, curQpState: QpState.RTS }, mask, LIMITS), QpState.RTS);
  assert.equal(checkModify(QpType.UC, QpState.SQE, { qpState: QpState.RTS, curQpState: QpState.SQE }, mask, LIMITS), QpState.RTS);
  refused(() => checkModify(QpType.UD, QpState.RTS, { qpState: QpState.RTS, curQpState: QpState.SQE }, mask, LIMITS),
    /^curQpState SQE does not match the QP's state RTS$/);
  // RC has no SQE: the kernel's table allows SQE→RTS for it, but with nothing, so not CUR_STATE either.
  refused(() => checkModify(QpType.RC, QpState.SQE, { qpState: QpState.RTS, curQpState: QpState.SQE }, mask, LIMITS),
    /^attribute CUR_STATE is not allowed for RC SQE→RTS /);
});

test('the checks run in order: mask bits, transition, required, allowed, values', () => {
  // An unknown bit beats an invalid transition.
  refused(() => checkModify(QpType.RC, QpState.RESET, { qpState: QpState.RTS }, STATE | (1 << 25), LIMITS), /^unknown attribute mask bit 0x2000000$/);
  refused(() => checkModify(QpType.RC, QpState.RESET, {}, ((1 << 21) | (1 << 31)) >>> 0, LIMITS), /^unknown attribute mask bits 0x200000, 0x80000000$/);
  // An invalid transition beats missing attributes.
  refused(() => checkModify(QpType.RC, QpState.RESET, { qpState: QpState.RTR }, STATE, LIMITS), /^RESET→RTR is not a valid transition$/);
  // Missing attributes beat disallowed ones.
  refused(() => checkModify(QpType.RC, QpState.INIT, fullAttr('INIT', 'RTR'), STATE | QpAttrMask.AV | QpAttrMask.QKEY, LIMITS),
    /^RC INIT→RTR needs AV, PATH_MTU, RQ_PSN, MIN_RNR_TIMER, MAX_DEST_RD_ATOMIC, DEST_QPN \(missing: PATH_MTU, RQ_PSN, MIN_RNR_TIMER, MAX_DEST_RD_ATOMIC, DEST_QPN\)$/);
  // Disallowed attributes beat bad values.
  refused(() => checkModify(QpType.UD, QpState.RESET, { ...fullAttr('RESET', 'INIT'), sqPsn: 2 ** 30, qkey: -1 },
    STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.QKEY | QpAttrMask.SQ_PSN, LIMITS),
  /^attribute SQ_PSN is not allowed for UD RESET→INIT \(allowed: STATE, PKEY_INDEX, PORT, QKEY\)$/);
  refused(() => checkModify(QpType.UD, QpState.RESET, fullAttr('RESET', 'INIT'),
    STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.QKEY | QpAttrMask.SQ_PSN | QpAttrMask.CAP, LIMITS),
  /^attributes SQ_PSN, CAP are not allowed for UD RESET→INIT /);
});

test('checkModify is pure: attr is left as it was, on success and on failure', () => {
  const attr = fullAttr('INIT', 'RTR');
  const before = structuredClone(attr);
  checkModify(QpType.RC, QpState.INIT, attr, STATE | maskOf(['AV', 'PATH_MTU', 'DEST_QPN', 'RQ_PSN', 'MAX_DEST_RD_ATOMIC', 'MIN_RNR_TIMER']), LIMITS);
  assert.throws(() => checkModify(QpType.RC, QpState.INIT, attr, STATE | QpAttrMask.AV, LIMITS));
  assert.deepEqual(attr, before);
});

test('applyAttrs copies only the masked attributes and sets qpState', () => {
  const stored: QpAttr = {};
  const attr = fullAttr('RESET', 'INIT');
  applyAttrs(stored, attr, STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.PORT | QpAttrMask.ACCESS_FLAGS);
  const expected: QpAttr = { qpState: QpState.INIT, pkeyIndex: 0, portNum: 1, qpAccessFlags: ACCESS_ALL };
  assert.deepEqual(stored, expected);

  // Without STATE the state is left alone; ALT_PATH sets its four fields; CUR_STATE sets nothing.
  applyAttrs(stored, { ...fullAttr('SQD', 'RTS'), qpState: QpState.ERR }, QpAttrMask.ALT_PATH | QpAttrMask.CUR_STATE | QpAttrMask.QKEY);
  assert.equal(stored.qpState, QpState.INIT);
  assert.equal(stored.curQpState, undefined);
  assert.equal(stored.qkey, 0x11111111);
  assert.deepEqual([stored.altPkeyIndex, stored.altPortNum, stored.altTimeout], [1, 2, 31]);
  assert.deepEqual(stored.altAhAttr, { dlid: 5, sl: 1, isGlobal: false, portNum: 2 });
  assert.equal(stored.ahAttr, undefined);
  assert.equal(stored.sqPsn, undefined);

  // Every single bit copies its own fields and nothing else.
  const fields: Record<string, (keyof QpAttr)[]> = {
    EN_SQD_ASYNC_NOTIFY: ['enSqdAsyncNotify'], ACCESS_FLAGS: ['qpAccessFlags'], PKEY_INDEX: ['pkeyIndex'], PORT: ['portNum'],
    QKEY: ['qkey'], AV: ['ahAttr'], PATH_MTU: ['pathMtu'], TIMEOUT: ['timeout'], RETRY_CNT: ['retryCnt'], RNR_RETRY: ['rnrRetry'],
    RQ_PSN: ['rqPsn'], MAX_QP_RD_ATOMIC: ['maxRdAtomic'], ALT_PATH: ['altAhAttr', 'altPkeyIndex', 'altPortNum', 'altTimeout'],
    MIN_RNR_TIMER: ['minRnrTimer'], SQ_PSN: ['sqPsn'], MAX_DEST_RD_ATOMIC: ['maxDestRdAtomic'], PATH_MIG_STATE: ['pathMigState'],
    CAP: ['cap'], DEST_QPN: ['destQpNum'], CUR_STATE: [], STATE: ['qpState'],
  };
  for (const name of ALL_NAMES) {
    const one: QpAttr = {};
    applyAttrs(one, fullAttr('RTS', 'RTS'), QpAttrMask[name]);
    assert.deepEqual(Object.keys(one).sort(), [...fields[name]!].sort(), name);
  }
});

test('applyAttrs stores copies of the address vectors and cap', () => {
  const stored: QpAttr = {};
  const attr = fullAttr('SQD', 'SQD');
  applyAttrs(stored, attr, QpAttrMask.AV | QpAttrMask.ALT_PATH | QpAttrMask.CAP);
  assert.deepEqual(stored.ahAttr, attr.ahAttr);
  assert.notEqual(stored.ahAttr, attr.ahAttr);
  assert.notEqual(stored.ahAttr?.grh, attr.ahAttr?.grh);
  assert.notEqual(stored.ahAttr?.grh?.dgid, attr.ahAttr?.grh?.dgid);
  attr.ahAttr!.sl = 9;
  attr.ahAttr!.grh!.dgid[0] = 0xaa;
  attr.ahAttr!.grh!.hopLimit = 1;
  attr.altAhAttr!.dlid = 77;
  attr.cap!.maxSendWr = 1;
  assert.equal(stored.ahAttr?.sl, 0);
  assert.equal(stored.ahAttr?.grh?.dgid[0], 0);
  assert.equal(stored.ahAttr?.grh?.hopLimit, 64);
  assert.equal(stored.altAhAttr?.dlid, 5);
  assert.equal(stored.cap?.maxSendWr, 64);
});

test('applyAttrs: a move to RESET clears the attributes (keeping the creation-time cap); ERR does not', () => {
  for (const from of ['INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR'] as const) {
    const stored: QpAttr = fullAttr(from, from);
    delete stored.curQpState;
    const cap = stored.cap;
    assert.equal(checkModify(QpType.RC, QpState[from], { qpState: QpState.RESET }, STATE, LIMITS), QpState.RESET);
    applyAttrs(stored, { qpState: QpState.RESET }, STATE);
    const expected: QpAttr = { qpState: QpState.RESET, cap };
    assert.deepEqual(stored, expected);
  }
  const stored: QpAttr = { ...fullAttr('RTS', 'RTS'), qpState: QpState.RTS };
  applyAttrs(stored, { qpState: QpState.ERR }, STATE);
  assert.equal(stored.qpState, QpState.ERR);
  assert.equal(stored.sqPsn, 0xabcdef);
  assert.equal(stored.qkey, 0x11111111);
});

test('maskNames names the bits, lowest first, and shows unknown bits in hex', () => {
  assert.deepEqual(maskNames(0), []);
  assert.deepEqual(maskNames(STATE | QpAttrMask.PKEY_INDEX | QpAttrMask.DEST_QPN), ['STATE', 'PKEY_INDEX', 'DEST_QPN']);
  assert.deepEqual(maskNames(QpAttrMask.QKEY | (1 << 25)), ['QKEY', '0x2000000']);
  assert.deepEqual(maskNames(0x80000000), ['0x80000000']);
  assert.equal(maskNames(0x1fffff).length, 21);
  assert.deepEqual(maskNames(0x1fffff), ALL_NAMES);
});
