/**
 * Helpers of the verbs tests: one side's resources (device, PD, MR, CQ, QP) and a connected pair of them made
 * through the connection manager inside this process (both ends attach each other's shared memory exactly as two
 * processes would).
 */
import { once } from 'node:events';
import * as cm from '../../src/cm';
import {
  Access, ACCESS_ALL, QpType, openDevice, type CompChannel, type CompletionQueue, type Context, type MemoryRegion,
  type ProtectionDomain, type QpInitAttr, type QueuePair, type SharedReceiveQueue, type WorkCompletion,
} from '../../src/verbs';

let seq = 0;
/** An abstract CM address unique to this process. */
export const cmAddress = (): string => `@kbypass-verbs-test-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

export interface Side {
  ctx: Context;
  pd: ProtectionDomain;
  mr: MemoryRegion;
  cq: CompletionQueue;
  qp: QueuePair;
  channel: CompChannel | null;
  conn: cm.CmConnection | null;
}

export interface SideOptions {
  qpType?: number;
  mrBytes?: number;
  /** Access of the side's MR. Default every flag. */
  access?: number;
  cap?: QpInitAttr['cap'];
  withChannel?: boolean;
  srq?: (pd: ProtectionDomain) => SharedReceiveQueue;
  sqSigAll?: boolean;
}

export function makeSide(o: SideOptions = {}): Side {
  const ctx = openDevice('shm0');
  const pd = ctx.allocPd();
  const mr = pd.registerMemory(o.mrBytes ?? 8192, o.access ?? ACCESS_ALL);
  const channel = o.withChannel ? ctx.createCompChannel() : null;
  const cq = ctx.createCq(256, channel);
  const srq = o.srq ? o.srq(pd) : null;
  const qp = pd.createQp({
    qpType: (o.qpType ?? QpType.RC) as QpInitAttr['qpType'], sendCq: cq, recvCq: cq, srq,
    cap: o.cap ?? { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 256 },
    sqSigAll: o.sqSigAll ?? false,
  });
  return { ctx, pd, mr, cq, qp, channel, conn: null };
}

export interface PairOptions extends cm.CmConnectionOptions {
  client?: SideOptions;
  server?: SideOptions;
  /** Receives to post on each side before connecting (into its MR at offset 4096, 64 B each). */
  preRecv?: number;
}

/** A client and a server side connected through the CM (both QPs in RTS). */
export async function connectedPair(o: PairOptions = {}): Promise<{ client: Side; server: Side; close(): Promise<void> }> {
  const client = makeSide(o.client);
  const server = makeSide(o.server);
  for (const s of [client, server]) {
    cm.initQp(s.qp);
    for (let i = 0; i < (o.preRecv ?? 0); i++) {
      s.qp.postRecv({ wrId: 1000 + i, sgList: [{ addr: s.mr.addr + 4096 + 64 * i, length: 64, lkey: s.mr.lkey }] });
    }
  }
  const address = cmAddress();
  const listener = cm.listen(address);
  const accepted = once(listener, 'CONNECT_REQUEST').then(([req]) => (req as cm.ConnectRequest).accept(server.qp, o));
  client.conn = await cm.connect(address, client.qp, o);
  server.conn = await accepted;
  listener.close();
  return {
    client, server,
    async close() {
      await client.conn?.disconnect();
      await server.conn?.disconnect();
    },
  };
}

/** Poll until `n` completions arrived (or throw after `ms`); returns copies. */
export async function pollN(cq: CompletionQueue, n: number, ms = 2000): Promise<WorkCompletion[]> {
  const got: WorkCompletion[] = [];
  const deadline = Date.now() + ms;
  while (got.length < n) {
    const k = cq.poll(Math.min(16, n - got.length));
    for (let i = 0; i < k; i++) got.push({ ...cq.wc[i]! });
    if (k === 0) {
      if (Date.now() > deadline) throw new Error(`only ${got.length} of ${n} completions within ${ms} ms`);
      await new Promise((r) => setImmediate(r));
    }
  }
  return got;
}

/** Resolve the remote address/rkey a peer would advertise for its MR. */
export const remoteOf = (s: Side): { remoteAddr: number; rkey: number } => ({ remoteAddr: s.mr.addr, rkey: s.mr.rkey });

export { Access };

// --- added for the test/verbs/* integration tests ------------------------------------------------------------

export type Pair = Awaited<ReturnType<typeof connectedPair>>;

/** Destroy a side's resources in libibverbs' order (QP, CQ, channel, MRs, PD, context); `extraMrs` first. */
export function destroySide(s: Side, extraMrs: MemoryRegion[] = []): void {
  s.qp.destroy();
  s.cq.destroy();
  s.channel?.destroy();
  for (const mr of extraMrs) mr.deregister();
  s.mr.deregister();
  s.pd.dealloc();
  s.ctx.close();
}

/** Disconnect a pair and destroy both sides. */
export async function closePair(p: Pair): Promise<void> {
  await p.close();
  destroySide(p.client);
  destroySide(p.server);
}

/**
 * Run `body` with a fresh connected pair, then close it. A failure in `body` is what the test reports (cleanup
 * errors are then ignored); otherwise a cleanup failure (EBUSY: something left open) fails the test.
 */
export async function withPair(o: PairOptions, body: (p: Pair) => Promise<void> | void): Promise<void> {
  const p = await connectedPair(o);
  let ok = false;
  try {
    await body(p);
    ok = true;
  } finally {
    if (ok) await closePair(p);
    else await closePair(p).catch(() => {});
  }
}

/** Connect two existing QPs through the CM (both end in RTS). */
export async function connectQps(clientQp: QueuePair, serverQp: QueuePair, o: cm.CmConnectionOptions = {}):
  Promise<{ client: cm.CmConnection; server: cm.CmConnection }> {
  const address = cmAddress();
  const listener = cm.listen(address);
  try {
    const accepted = once(listener, 'CONNECT_REQUEST').then(([req]) => (req as cm.ConnectRequest).accept(serverQp, o));
    const client = await cm.connect(address, clientQp, o);
    return { client, server: await accepted };
  } finally {
    listener.close();
  }
}

/** Let the event loop run for about `ms` (and the RNR timers with it). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Assert-style check that `cq` yields no completion for `ms` (polling, which also drives RNR retries). */
export async function expectNoCompletion(cq: CompletionQueue, ms = 30): Promise<void> {
  const deadline = Date.now() + ms;
  do {
    const n = cq.poll(1);
    if (n !== 0) throw new Error(`unexpected completion: ${JSON.stringify(cq.wc[0])}`);
    await new Promise((r) => setTimeout(r, 1));
  } while (Date.now() < deadline);
}

/** `p`, or a rejection after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms); }),
  ]);
}
