/**
 * One end of a `kbypass perf` run: a device, a protection domain, one memory region, send and receive CQs and
 * an RC queue pair, connected through kbypass/cm. The client tells the server what to run in its private data;
 * the server answers with its MR's address and rkey.
 *
 *   MR: | control (64 B) | receive area (max size, 64-aligned) | 2 KiB gap | send area (max size) |
 *   (The gap keeps a copy's source and destination apart by half a page mod 4 KiB: with the same offset in their
 *   pages, the CPU's memory disambiguation stalls the copy — "4K aliasing" — and 64 KiB writes ran at half speed.)
 *   control +0: u32 barrier count, written by the peer with an RDMA WRITE (see barrier()).
 */
import { once } from 'node:events';
import * as cm from '../cm';
import { Access, QpType, WrOpcode, openDevice, type CompChannel, type CompletionQueue, type Context, type MemoryRegion, type ProtectionDomain, type QueuePair, type SendWr } from '../verbs';
import { KbypassError } from '../errors';
import {
  ATOMIC_TYPES, MAX_CQ_MOD, MAX_ITERS, MAX_SIZE, MAX_TX_DEPTH, MIN_CQ_MOD, MIN_ITERS, MIN_TX_DEPTH, PERF_TESTS,
  type PerfOptions, type PerfTest,
} from './args';

export const CONTROL_BYTES = 64;
/** Between the receive and the send area (see above). */
export const ALIAS_GAP = 2048;
/** A word nobody writes: Atomics.wait on it is a sleep. */
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
/** How long a barrier or a wait for the peer may take before the run fails, ms. */
export const PEER_TIMEOUT_MS = 30_000;

/** What the client asks the server to run (REQ private data, 24 bytes). */
export interface RunSpec {
  test: PerfTest;
  all: boolean;
  size: number;
  iterations: number;
  txDepth: number;
  cqMod: number;
  atomic: number;
  /** Wait on completion channels (-e) instead of busy-polling the CQs. */
  events: boolean;
}

export function encodeSpec(s: RunSpec): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint8(0, PERF_TESTS.indexOf(s.test));
  v.setUint8(1, s.all ? 1 : 0);
  v.setUint8(2, s.atomic);
  v.setUint8(3, s.events ? 1 : 0);
  v.setUint32(4, s.size, true);
  v.setFloat64(8, s.iterations, true);
  v.setUint32(16, s.txDepth, true);
  v.setUint32(20, s.cqMod, true);
  return b;
}

/** Check a client's run description against perftest's limits; a string says what is wrong. */
export function checkSpec(s: RunSpec): string | null {
  if (!Number.isInteger(s.size) || s.size < 1 || s.size > MAX_SIZE) return `size ${s.size} (1 to ${MAX_SIZE})`;
  if (!Number.isInteger(s.iterations) || s.iterations < MIN_ITERS || s.iterations > MAX_ITERS) return `iterations ${s.iterations}`;
  if (!Number.isInteger(s.txDepth) || s.txDepth < MIN_TX_DEPTH || s.txDepth > MAX_TX_DEPTH) return `tx depth ${s.txDepth}`;
  if (!Number.isInteger(s.cqMod) || s.cqMod < MIN_CQ_MOD || s.cqMod > MAX_CQ_MOD) return `cq moderation ${s.cqMod}`;
  if (s.atomic !== 0 && s.atomic !== 1) return `atomic type ${s.atomic}`;
  if (s.events && s.test === 'write_lat') return 'events with write_lat';
  return null;
}

export function decodeSpec(b: Uint8Array): RunSpec {
  if (b.length < 24) throw new KbypassError('ERR_KBYPASS_PROTOCOL', 'the perf client sent no run description');
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const test = PERF_TESTS[v.getUint8(0)];
  if (test === undefined) throw new KbypassError('ERR_KBYPASS_PROTOCOL', `unknown perf test ${v.getUint8(0)}`);
  return { test, all: v.getUint8(1) === 1, atomic: v.getUint8(2), events: v.getUint8(3) === 1, size: v.getUint32(4, true), iterations: v.getFloat64(8, true), txDepth: v.getUint32(16, true), cqMod: v.getUint32(20, true) };
}

export const specOf = (o: PerfOptions): RunSpec => ({
  test: o.test, all: o.all, size: o.size, iterations: o.iterations, txDepth: o.txDepth, cqMod: o.cqMod, atomic: ATOMIC_TYPES.indexOf(o.atomicType),
  events: o.events,
});

/** perftest's address for a server: '@kbypass-perf-<port>' (same host) unless a socket path or @name is given. */
export function perfAddress(server: string | null, port: number): string {
  if (server !== null && (server.startsWith('/') || server.startsWith('@') || server.startsWith('.'))) return server;
  if (server !== null && server !== 'localhost' && server !== '127.0.0.1' && server !== '::1') {
    throw new KbypassError('ERR_KBYPASS_USAGE', `device shm0 reaches processes on this host only: use localhost, a socket path or @name (got '${server}')`);
  }
  return `@kbypass-perf-${port}`;
}

export class PerfSession {
  readonly ctx: Context;
  readonly pd: ProtectionDomain;
  readonly mr: MemoryRegion;
  readonly sendCq: CompletionQueue;
  readonly recvCq: CompletionQueue;
  /** With -e: one completion channel per CQ (a wait names its CQ); null when busy-polling. */
  readonly sendChannel: CompChannel | null;
  readonly recvChannel: CompChannel | null;
  readonly qp: QueuePair;
  readonly maxSize: number;
  /** Where the peer's MR is. */
  remoteAddr = 0;
  rkey = 0;
  conn: cm.CmConnection | null = null;
  /** Receives posted and not yet consumed (each takes the whole receive area). */
  recvOutstanding = 0;
  #barrier = 0;
  readonly #ctl: Uint32Array;
  readonly #barrierWr: SendWr;

  constructor(device: string, maxSize: number, depth: number, events = false) {
    this.ctx = openDevice(device);
    this.pd = this.ctx.allocPd();
    this.maxSize = Math.ceil(Math.max(maxSize, 8) / 64) * 64;
    this.mr = this.pd.registerMemory(CONTROL_BYTES + 2 * this.maxSize + ALIAS_GAP,
      Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC);
    const cqe = Math.max(depth * 2, 1024);
    // Busy-polled CQs get no channel: a requester then skips their armed word (verbs/shm/cq-ring.ts).
    this.sendChannel = events ? this.ctx.createCompChannel() : null;
    this.recvChannel = events ? this.ctx.createCompChannel() : null;
    this.sendCq = this.ctx.createCq(cqe, this.sendChannel);
    this.recvCq = this.ctx.createCq(cqe, this.recvChannel);
    this.qp = this.pd.createQp({
      qpType: QpType.RC, sendCq: this.sendCq, recvCq: this.recvCq,
      cap: { maxSendWr: Math.max(depth, 16), maxRecvWr: Math.max(depth, 16), maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 },
    });
    this.#ctl = new Uint32Array(this.mr.buffer.buffer, this.mr.buffer.byteOffset, CONTROL_BYTES >> 2);
    this.#barrierWr = { wrId: 0, opcode: WrOpcode.RDMA_WRITE, sgList: [{ addr: this.mr.addr + CONTROL_BYTES - 8, length: 4, lkey: this.mr.lkey }], rdma: { remoteAddr: 0, rkey: 0 } };
  }

  /** Offsets (in mr.buffer) and addresses of the receive and send areas. */
  get recvOffset(): number { return CONTROL_BYTES; }
  get sendOffset(): number { return CONTROL_BYTES + this.maxSize + ALIAS_GAP; }
  get remoteRecvAddr(): number { return this.remoteAddr + CONTROL_BYTES; }

  /** Post receives (into the receive area, max size) until `n` are outstanding. */
  fillRecvs(n: number): void {
    const wr = { wrId: 2, sgList: [{ addr: this.mr.addr + CONTROL_BYTES, length: this.maxSize, lkey: this.mr.lkey }] };
    while (this.recvOutstanding < n) { this.qp.postRecv(wr); this.recvOutstanding++; }
  }

  /** Our MR as the peer needs it (16 bytes: addr f64, rkey u32). */
  mrInfo(): Uint8Array {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setFloat64(0, this.mr.addr, true);
    v.setUint32(8, this.mr.rkey, true);
    return b;
  }

  setRemote(info: Uint8Array, at = 0): void {
    const v = new DataView(info.buffer, info.byteOffset, info.length);
    this.remoteAddr = v.getFloat64(at, true);
    this.rkey = v.getUint32(at + 8, true);
    this.#barrierWr.rdma = { remoteAddr: this.remoteAddr, rkey: this.rkey };
  }

  /**
   * Both ends wait here until the other arrives (RDMA WRITE of a count into the peer's control word). `lazy`
   * (a server with nothing to do until the client finishes): look every 50 µs, sleeping in between, so as not to
   * take a core from the measured side — as perftest's server blocks on its socket.
   */
  barrier(lazy = false): void {
    const k = ++this.#barrier;
    const src = new Uint32Array(this.mr.buffer.buffer, this.mr.buffer.byteOffset + CONTROL_BYTES - 8, 1);
    src[0] = k;
    this.qp.postSend(this.#barrierWr);
    const deadline = performance.now() + PEER_TIMEOUT_MS;
    for (let spins = 0; Atomics.load(this.#ctl, 0) < k; spins++) {
      if (lazy && spins > 1000) Atomics.wait(SLEEPER, 0, 0, 0.05);
      if ((spins & 0xffff) === 0 && (performance.now() > deadline || this.conn?.peerAlive() === false)) {
        throw new KbypassError('ETIMEDOUT', 'the peer did not reach the barrier (gone, or running another test?)');
      }
    }
  }

  async close(): Promise<void> {
    await this.conn?.disconnect();
    this.qp.destroy();
    this.sendCq.destroy();
    this.recvCq.destroy();
    this.sendChannel?.destroy();
    this.recvChannel?.destroy();
    this.mr.deregister();
    this.pd.dealloc();
    this.ctx.close();
  }
}

/** Server: wait for one client; it says what to run. */
export async function acceptOne(address: string, device: string, onListening?: () => void): Promise<{ s: PerfSession; spec: RunSpec }> {
  const l = cm.listen(address);
  try {
    onListening?.();
    const [req] = (await once(l, 'CONNECT_REQUEST')) as [cm.ConnectRequest];
    let spec: RunSpec;
    try {
      spec = decodeSpec(req.privateData.subarray(16));
      const bad = checkSpec(spec);
      if (bad !== null) throw new KbypassError('ERR_KBYPASS_PROTOCOL', `the perf client asked for a bad run: ${bad}`);
    } catch (e) {
      req.reject(new TextEncoder().encode((e as Error).message.slice(0, 140)));
      throw e;
    }
    const s = new PerfSession(device, spec.all ? 1 << 23 : spec.size, Math.max(spec.txDepth, 512), spec.events);
    s.setRemote(req.privateData, 0);
    s.conn = await req.accept(s.qp, { privateData: s.mrInfo(), minRnrTimer: 1 });
    return { s, spec };
  } finally {
    l.close();
  }
}

/** Client: connect with our MR and the run description. */
export async function connectTo(address: string, device: string, spec: RunSpec): Promise<PerfSession> {
  const s = new PerfSession(device, spec.all ? 1 << 23 : spec.size, Math.max(spec.txDepth, 512), spec.events);
  const pdata = new Uint8Array(40);
  pdata.set(s.mrInfo(), 0);
  pdata.set(encodeSpec(spec), 16);
  s.conn = await cm.connect(address, s.qp, { privateData: pdata, minRnrTimer: 1 });
  s.setRemote(s.conn.privateData);
  return s;
}
