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
