/**
 * One measured run per function: a transport, a kind (latency or throughput) and a message size. The parent
 * process measures; a child process (peer.ts) or the C floor binary is the other end.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { listen, type Channel } from '../../src/index';
import { Histogram } from './histogram';
import { BENCH_RING_SIZE, encodeArgs, jsFloorBytes, jsFloorPong, ringSizeFor, type Kind, type Transport } from './protocol';
import { createRegion } from '../../src/memory/region';
import { native } from '../../src/native/binding';
import { DEFAULT_RING_SIZE } from '../../src/channel/options';

const execFileP = promisify(execFile);
const PEER = path.join(__dirname, 'peer.js');
/** Where node-gyp puts the C floor program. */
export const FLOOR_BIN = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'kbypass-floor');

let seq = 0;

/** Average cost of one performance.now() call, ns: subtracted from every JS latency sample. */
export function jsClockCost(): number {
  const n = 1_000_000;
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) performance.now();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  return best;
}

const peers = new Set<ChildProcess>();

/** Kill every peer process still running (a failed run must not leave a busy-polling child behind). */
export function killPeers(): void {
  for (const c of peers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  peers.clear();
}
process.on('exit', killPeers);

function spawnPeer(transport: Transport, kind: Kind, address: string, bytes: number, fd = -1): ChildProcess {
  const stdio: Array<'ignore' | 'inherit' | number> = fd >= 0 ? ['ignore', 'ignore', 'inherit', fd] : ['ignore', 'ignore', 'inherit'];
  const child = spawn(process.execPath, [PEER, ...encodeArgs({ transport, kind, address, bytes })], { stdio });
  peers.add(child);
  child.once('exit', () => peers.delete(child));
  return child;
}

/** Round trips from consecutive timestamps (ms), each less the cost of one clock read (ns). */
function histogramOf(stamps: Float64Array, clockNs: number): Histogram {
  const h = new Histogram();
  for (let i = 1; i < stamps.length; i++) h.record((stamps[i]! - stamps[i - 1]!) * 1e6 - clockNs);
  return h;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms); }),
  ]);
}

async function shmPair(transport: Transport, kind: Kind, bytes: number): Promise<{ ch: Channel; child: ChildProcess; close(): Promise<void> }> {
  const name = `\0kbypass-bench-${process.pid}-${seq++}`;
  const server = listen(name, { maxMessageSize: 64 << 20, maxRingSize: BENCH_RING_SIZE });
  await once(server, 'listening');
  const child = spawnPeer(transport, kind, name, bytes);
  const [ch] = (await withTimeout(once(server, 'channel'), 10_000, 'peer connect')) as [Channel];
  await server.close();
  return {
    ch, child,
    async close() {
      await ch.close();
      if (child.exitCode === null) await withTimeout(once(child, 'exit'), 10_000, 'peer exit');
    },
  };
}

/** Latency over a kbypass channel, busy-polled ('shm-poll') or event-driven ('shm-event'). */
export async function latencyShm(transport: 'shm-poll' | 'shm-event', bytes: number, iterations: number, warmup: number, clockNs: number): Promise<Histogram> {
  const { ch, close } = await shmPair(transport, 'latency', bytes);
  const payload = new Uint8Array(bytes).fill(0x5a);
  // Timestamps go into a preallocated array (as the C floor does); the histogram is filled afterwards, off the
  // round trip's critical path.
  const stamps = new Float64Array(iterations + 1);
  const hardStop = performance.now() + 5 * 60_000;
  if (transport === 'shm-poll') {
    let got = false;
    const onReply = (_b: Uint8Array, _o: number, l: number) => { got = l === bytes; };
    for (let i = -warmup; i < iterations; i++) {
      if (i === 0) stamps[0] = performance.now();
      // The ring can look full for a moment: the peer gives the space of what it read back when its poll()
      // returns, and a poll that finds our next message already there goes on with it. Try again, as a
      // busy-poll sender does.
      for (let spins = 0; !ch.trySend(payload); spins++) {
        if ((spins & 0xfffff) === 0xfffff && (ch.closed || performance.now() > hardStop)) throw new Error('peer stopped reading');
      }
      got = false;
      for (let spins = 0; !got; spins++) {
        if (ch.poll(onReply, 1) === 0 && ((spins & 0xfffff) === 0xfffff && (ch.closed || performance.now() > hardStop))) throw new Error('peer went away');
      }
      if (i >= 0) stamps[i + 1] = performance.now();
    }
  } else {
    await new Promise<void>((resolve, reject) => {
      let i = -warmup;
      ch.on('close', (e) => reject(e ?? new Error('closed early')));
      ch.on('message', () => {
        if (i >= 0) stamps[i + 1] = performance.now();
        if (++i < iterations) {
          if (i === 0) stamps[0] = performance.now();
          ch.send(payload);
        } else {
          resolve();
        }
      });
      if (warmup === 0) stamps[0] = performance.now();
      ch.send(payload);
    });
    ch.removeAllListeners('message');
    ch.removeAllListeners('close');
  }
  const h = histogramOf(stamps, clockNs);
  while (!ch.trySend(new Uint8Array(0))) if (ch.closed || performance.now() > hardStop) throw new Error('peer stopped reading');
  await close();
  return h;
}

/** The JS floor (protocol.ts): the bare JavaScript ping-pong over a mapped region, timed like everything else. */
export async function latencyJsFloor(bytes: number, iterations: number, warmup: number, clockNs: number): Promise<Histogram> {
  const region = createRegion(jsFloorBytes(bytes), { populate: true, name: 'kbypass-bench' });
  const child = spawnPeer('js-floor', 'latency', '-', bytes, region.fd);
  native().close(region.fd);
  const i32 = new Int32Array(region.buffer);
  const u8 = new Uint8Array(region.buffer);
  const pongSeq = jsFloorPong(bytes) >> 2;
  const payload = new Uint8Array(bytes).fill(0x5a);
  const stamps = new Float64Array(iterations + 1);
  const hardStop = performance.now() + 5 * 60_000;
  try {
    for (let i = 1 - warmup; i <= iterations; i++) {
      const seq = i + warmup; // 1, 2, 3, …
      if (i === 1) stamps[0] = performance.now();
      u8.set(payload, 64);
      i32[0] = seq;
      for (let spins = 0; Atomics.load(i32, pongSeq) !== seq; spins++) {
        if ((spins & 0xfffff) === 0xfffff && (child.exitCode !== null || performance.now() > hardStop)) throw new Error('js-floor peer went away');
      }
      if (i >= 1) stamps[i] = performance.now();
    }
  } finally {
    Atomics.store(i32, 0, -1); // tells the peer to stop
  }
  if (child.exitCode === null) await withTimeout(once(child, 'exit'), 10_000, 'peer exit');
  return histogramOf(stamps, clockNs);
}

/** CPU time (user + system, ms) a process has used, from /proc/PID/stat. */
function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/**
 * What an idle event-driven channel costs: both processes' CPU over `seconds` after a burst of 1000 echoes
 * (once the spin and yield phases are over, both should be parked on their doorbells).
 */
export async function idleCpu(seconds: number): Promise<{ parentPct: number; peerPct: number }> {
  const { ch, child, close } = await shmPair('shm-event', 'latency', 64);
  const payload = new Uint8Array(64);
  await new Promise<void>((resolve) => {
    let n = 0;
    ch.on('message', () => { if (++n < 1000) ch.send(payload); else resolve(); });
    ch.send(payload);
  });
  await new Promise((r) => setTimeout(r, 100));
  const p0 = cpuMs(process.pid);
  const c0 = cpuMs(child.pid!);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const wall = performance.now() - t0;
  const parentPct = (100 * (cpuMs(process.pid) - p0)) / wall;
  const peerPct = (100 * (cpuMs(child.pid!) - c0)) / wall;
  ch.removeAllListeners('message');
  ch.send(new Uint8Array(0));
  await close();
  return { parentPct, peerPct };
}

/**
 * Write with `write` (bursts of `burst` between clock reads) until the deadline, waiting for 'drain' whenever it
 * says the data was queued. Resolves with the number of writes.
 */
function pumpUntil(deadline: number, burst: number, write: () => boolean, drains: NodeJS.EventEmitter): Promise<number> {
  let sent = 0;
  return new Promise((resolve) => {
    const go = (): void => {
      while (performance.now() < deadline) {
        for (let k = 0; k < burst; k++) {
          sent++;
          if (!write()) { drains.once('drain', go); return; }
        }
      }
      resolve(sent);
    };
    go();
  });
}

/** Streaming throughput over a kbypass channel. Returns messages and seconds. */
export async function throughputShm(transport: 'shm-poll' | 'shm-event', bytes: number, seconds: number): Promise<{ msgs: number; secs: number }> {
  const { ch, close } = await shmPair(transport, 'throughput', bytes);
  const payload = new Uint8Array(bytes).fill(0xa5);
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  if (transport === 'shm-poll') {
    // Batched commits: a corked burst of 256 appears at once (one commit store, at most one wake-up); busy until
    // the deadline.
    const hardStop = deadline + 30_000; // bounded even if the peer stops reading
    for (let bursts = 0; ; bursts++) {
      ch.cork();
      let k = 0;
      for (; k < 256; k++) if (!ch.trySend(payload)) break;
      ch.uncork();
      sent += k;
      if ((k < 256 || (bursts & 15) === 0) && performance.now() >= deadline) break;
    }
    while (!ch.trySend(new Uint8Array(0))) if (ch.closed || performance.now() > hardStop) throw new Error('peer stopped reading');
    let count = -1;
    while (count < 0) {
      ch.poll((b, o) => { count = new DataView(b.buffer, b.byteOffset + o, 8).getFloat64(0, true); }, 1);
      if (ch.closed || performance.now() > hardStop) throw new Error('peer went away');
    }
    if (count !== sent) throw new Error(`receiver counted ${count} of ${sent} messages`);
  } else {
    sent = await pumpUntil(deadline, 64, () => ch.send(payload), ch);
    ch.send(new Uint8Array(0));
    const [ack] = (await withTimeout(once(ch, 'message'), 30_000, 'throughput ack')) as [Uint8Array];
    const count = new DataView(ack.buffer, ack.byteOffset, 8).getFloat64(0, true);
    if (count !== sent) throw new Error(`receiver counted ${count} of ${sent} messages`);
  }
  const secs = (performance.now() - t0) / 1000;
  await close();
  return { msgs: sent, secs };
}

async function netPair(transport: 'tcp' | 'unix', kind: Kind, bytes: number): Promise<{ sock: net.Socket; done: Promise<unknown>; cleanup(): void }> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  let sockPath = '';
  if (transport === 'tcp') {
    server.listen(0, '127.0.0.1');
  } else {
    sockPath = path.join(os.tmpdir(), `kbypass-bench-${process.pid}-${seq++}.sock`);
    server.listen(sockPath);
  }
  await once(server, 'listening');
  const addr = server.address();
  const address = transport === 'tcp' && addr && typeof addr === 'object' ? String(addr.port) : sockPath;
  const child = spawnPeer(transport, kind, address, bytes);
  const [sock] = (await withTimeout(once(server, 'connection'), 10_000, 'peer connect')) as [net.Socket];
  sock.setNoDelay(true);
  server.close();
  return { sock, done: once(child, 'exit'), cleanup: () => { if (sockPath) fs.rmSync(sockPath, { force: true }); } };
}

/** Latency over node:net (TCP loopback or a Unix socket): the reply is complete when `bytes` came back. */
export async function latencyNet(transport: 'tcp' | 'unix', bytes: number, iterations: number, warmup: number, clockNs: number): Promise<Histogram> {
  const { sock, done, cleanup } = await netPair(transport, 'latency', bytes);
  const payload = Buffer.alloc(bytes, 0x5a);
  const stamps = new Float64Array(iterations + 1);
  await new Promise<void>((resolve, reject) => {
    let i = -warmup;
    let got = 0;
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got < bytes) return;
      got -= bytes;
      if (i >= 0) stamps[i + 1] = performance.now();
      if (++i < iterations) {
        if (i === 0) stamps[0] = performance.now();
        sock.write(payload);
      } else {
        resolve();
      }
    });
    if (warmup === 0) stamps[0] = performance.now();
    sock.write(payload);
  });
  const h = histogramOf(stamps, clockNs);
  sock.end();
  await withTimeout(done, 10_000, 'peer exit');
  cleanup();
  return h;
}

/** Streaming throughput over node:net: write until the deadline (respecting back-pressure), then half-close. */
export async function throughputNet(transport: 'tcp' | 'unix', bytes: number, seconds: number): Promise<{ msgs: number; secs: number }> {
  const { sock, done, cleanup } = await netPair(transport, 'throughput', bytes);
  const payload = Buffer.alloc(bytes, 0xa5);
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const ack = new Promise<number>((resolve, reject) => {
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('end', () => resolve(Buffer.concat(parts).readDoubleLE(0)));
    sock.on('error', reject);
  });
  sent = await pumpUntil(deadline, 16, () => sock.write(payload), sock);
  sock.end();
  const received = await withTimeout(ack, 30_000, 'throughput ack');
  const secs = (performance.now() - t0) / 1000;
  if (received !== sent * bytes) throw new Error(`receiver counted ${received} of ${sent * bytes} bytes`);
  await withTimeout(done, 10_000, 'peer exit');
  cleanup();
  return { msgs: sent, secs };
}

/** The C floor: two C processes ping-ponging through shared memory, timed the same way (one clock read per round trip). */
export async function latencyFloor(bytes: number, iterations: number, warmup: number): Promise<{ h: Histogram; clockNs: number }> {
  const out = path.join(os.tmpdir(), `kbypass-floor-${process.pid}-${seq++}.bin`);
  try {
    const { stdout } = await execFileP(FLOOR_BIN, ['pingpong', '--bytes', String(bytes), '--iterations', String(iterations), '--warmup', String(warmup), '--out', out], { timeout: 120_000 });
    const info = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { clock_ns?: number };
    const clockNs = info.clock_ns ?? 0;
    const raw = fs.readFileSync(out);
    const samples = new Uint32Array(raw.buffer, raw.byteOffset, raw.length >>> 2);
    const h = new Histogram();
    for (let i = 0; i < samples.length; i++) h.record(samples[i]! - clockNs);
    return { h, clockNs };
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** Single-core memcpy bandwidth: a hot `bytes`-sized block copied along a span as large as that size's ring. */
export async function memcpyFloor(bytes: number, seconds: number): Promise<number> {
  const { stdout } = await execFileP(FLOOR_BIN, ['memcpy', '--bytes', String(bytes), '--span', String(Math.max(ringSizeFor(bytes) || DEFAULT_RING_SIZE, bytes)), '--seconds', String(seconds)], { timeout: 60_000 });
  const info = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { bytes_per_sec?: number };
  if (typeof info.bytes_per_sec !== 'number') throw new Error(`kbypass-floor memcpy printed ${stdout}`);
  return info.bytes_per_sec;
}
