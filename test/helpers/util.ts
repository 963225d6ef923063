/**
 * Shared helpers of the channel integration tests: temporary socket paths, process-wide resource counters
 * (fds, kbypass mappings), GC settling, and small promise utilities.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once, type EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, listen, type Channel, type ConnectOptions, type Server, type ServerOptions } from '../../src/index';

export { sleep };

let dir: string | null = null;
let seq = 0;

/** A fresh mkdtemp directory (mode 0755 so other users can traverse it), removed when the process exits. */
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-test-'));
  fs.chmodSync(d, 0o755);
  process.once('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A socket path nobody uses yet, in this process's temporary directory. */
export function tmpSocketPath(): string {
  dir ??= tmpDir();
  seq += 1;
  return path.join(dir, `s${seq}.sock`);
}

/** A Linux abstract socket name ('\0…') unique to this process. */
export function abstractName(): string {
  seq += 1;
  return `\0kbypass-test-${process.pid}-${seq}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Bytes of this process's address space mapped from kbypass memfds (/proc/self/smaps 'Size:' of 'memfd:kbypass…'). */
export function mappedBytes(): number {
  const text = fs.readFileSync('/proc/self/smaps', 'utf8');
  let total = 0;
  let inKbypass = false;
  for (const line of text.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      inKbypass = line.includes('memfd:kbypass');
    } else if (inKbypass && line.startsWith('Size:')) {
      total += Number(/(\d+)/.exec(line)![1]) * 1024;
    }
  }
  return total;
}

/** Names in /dev/shm now. */
export function shmEntries(): string[] {
  try { return fs.readdirSync('/dev/shm').sort(); } catch { return []; }
}

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collect garbage and let finalizers run (Node-API finalizers run from the event loop after a GC), repeating
 * until `done()` holds or `maxMs` has passed. Returns whether it held. Needs --expose-gc.
 */
export async function settleGc(done: () => boolean, maxMs = 2000): Promise<boolean> {
  if (!gc) throw new Error('run the tests with node --expose-gc');
  const end = Date.now() + maxMs;
  for (;;) {
    gc();
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    gc();
    if (done()) return true;
    if (Date.now() > end) return false;
    await sleep(10);
  }
}

/** Resolve with the arguments of the next `event`, or reject after `ms`. */
export async function next<T = unknown>(emitter: EventEmitter, event: string, ms = 5000): Promise<T> {
  const [value] = await once(emitter, event, { signal: AbortSignal.timeout(ms) });
  return value as T;
}

/** Wait for the channel's 'close' and resolve with its error argument (undefined for an orderly close). Attach
 *  before the close can happen: 'close' is emitted once. */
export function closed(ch: Channel): Promise<Error | undefined> {
  return new Promise((resolve) => ch.once('close', (e?: Error) => resolve(e)));
}

/** Poll `cond` every few ms until it holds; throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A listening server on a fresh path. */
export async function startServer(options?: ServerOptions, path = tmpSocketPath()): Promise<Server> {
  const server = listen(path, options);
  await next(server, 'listening');
  return server;
}

export interface Pair { server: Server; path: string; srv: Channel; cli: Channel; close(): Promise<void> }

/** A server and one connected channel pair in this process; close() ends both channels and the server. */
export async function pair(serverOptions?: ServerOptions, connectOptions?: ConnectOptions): Promise<Pair> {
  const path = tmpSocketPath();
  const server = await startServer(serverOptions, path);
  const accepted = next<Channel>(server, 'channel');
  const cli = await connect(path, connectOptions);
  const srv = await accepted;
  return {
    server, path, srv, cli,
    async close() {
      cli.destroy();
      srv.destroy();
      await server.close();
    },
  };
}

/** A copy of the bytes of a message view (views are ring memory, valid only during the call). */
export function copy(view: Uint8Array): Buffer {
  return Buffer.from(view);
}

/** Collect copies of the next `count` messages of `ch` ('message' events). */
export function collect(ch: Channel, count: number, ms = 10000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const timer = setTimeout(() => { ch.off('message', on); reject(new Error(`got ${out.length} of ${count} messages`)); }, ms);
    const on = (m: Uint8Array) => {
      out.push(copy(m));
      if (out.length === count) { clearTimeout(timer); ch.off('message', on); resolve(out); }
    };
    if (count === 0) { clearTimeout(timer); resolve(out); return; }
    ch.on('message', on);
  });
}

/** A message carrying a u32 sequence number followed by `size - 4` bytes derived from it. */
export function seqMessage(seqNo: number, size: number): Buffer {
  const b = Buffer.alloc(Math.max(size, 4));
  b.writeUInt32LE(seqNo, 0);
  for (let i = 4; i < b.length; i++) b[i] = (seqNo + i) & 0xff;
  return b;
}

/** Check a seqMessage; returns its sequence number, or -1 if its body is wrong. */
export function checkSeqMessage(b: Uint8Array): number {
  if (b.length < 4) return -1;
  const s = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  for (let i = 4; i < b.length; i++) if (b[i] !== ((s + i) & 0xff)) return -1;
  return s;
}

/** True when running as root (the permission tests need to switch users). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export const TEST_TIMEOUT = 20_000;
