/**
 * Harness of the kbypass/net behaviour tests: each behaviour-*.test.ts file states node:net's documented
 * behaviour once and runs it against every module under test — node:net itself, and kbypass/net (the compiled
 * dist/src/net/index.js) — as one describe() per module. A test that passes on node:net and fails on
 * kbypass/net is a difference of kbypass/net from node:net.
 *
 * On kbypass/net every connection made through a Scope is checked to run over kbypass (`socket.bypassed` true
 * on the client and on the accepted socket): the suite proves the bypass path, not the TCP fallback.
 *
 * Only 127.0.0.1 and ::1 and ephemeral ports are used; every wait is bounded; a Scope destroys every socket and
 * closes every server it made when its test ends.
 */
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once, type EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodeNet from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

export type NetModule = typeof nodeNet;

/** A socket of either module; `bypassed` exists on kbypass/net's sockets only. */
export type Sock = nodeNet.Socket & { bypassed?: boolean };

export interface Impl {
  /** 'node:net' or 'kbypass/net'. */
  readonly name: string;
  readonly net: NetModule;
  /** Connections made through a Scope must run over kbypass (kbypass/net). */
  readonly bypass: boolean;
  /** What a child process require()s to get this module (an absolute path for kbypass/net). */
  readonly modulePath: string;
  /** Why the suite is skipped (the module is not built yet). */
  readonly skip?: string;
  /** The module exists but failed to load: the suite is one failing test. */
  readonly loadError?: Error;
}

/** The compiled kbypass/net (this file runs as dist/test/net/behaviour-harness.js). */
export const KBYPASS_NET = path.join(__dirname, '..', '..', 'src', 'net', 'index.js');

function kbypassImpl(): Impl {
  const base = { name: 'kbypass/net', bypass: true, modulePath: KBYPASS_NET };
  if (!fs.existsSync(KBYPASS_NET)) {
    return { ...base, net: nodeNet, skip: `${KBYPASS_NET} does not exist yet (src/net not built)` };
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { ...base, net: require(KBYPASS_NET) as NetModule };
  } catch (e) {
    return { ...base, net: nodeNet, loadError: e as Error };
  }
}

export const impls: readonly Impl[] = [
  { name: 'node:net', net: nodeNet, bypass: false, modulePath: 'node:net' },
  kbypassImpl(),
];

/** Every test is bounded by this (a hang guard; each finishes in well under it). */
export const TEST_TIMEOUT = 10_000;
/** Default bound of one awaited event. */
export const EVENT_MS = 3000;

export type TestFn = (name: string, fn: (s: Scope, t: TestContext) => Promise<void>) => void;

/**
 * Register `topic`'s tests once per module under test: `body(impl, test)` declares them with `test(name, fn)`;
 * each run gets a fresh Scope, closed when the test ends whatever its outcome.
 */
export function forEachImpl(topic: string, body: (impl: Impl, test: TestFn) => void): void {
  for (const impl of impls) {
    describe(`${impl.name}: ${topic}`, impl.skip !== undefined ? { skip: impl.skip } : {}, () => {
      if (impl.loadError) {
        it(`${impl.name} loads`, () => { throw impl.loadError; });
        return;
      }
      body(impl, (name, fn) => {
        it(name, { timeout: TEST_TIMEOUT }, async (t) => {
          const s = new Scope(impl);
          try {
            await fn(s, t);
          } finally {
            await s.close();
          }
        });
      });
    });
  }
}

/** Resolve with the first argument of the next `event` (rejects on 'error' first, or after `ms`). */
export async function next<T = unknown>(emitter: EventEmitter, event: string, ms = EVENT_MS): Promise<T> {
  try {
    const [value] = await once(emitter, event, { signal: AbortSignal.timeout(ms) });
    return value as T;
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw new Error(`no '${event}' within ${ms} ms`);
    throw e;
  }
}

/**
 * Resolve with the 'close' argument (hadError) of a socket, whatever 'error' precedes it; attach before the
 * close can happen. Rejects after `ms`.
 */
export function closeOf(socket: nodeNet.Socket, ms = EVENT_MS): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const timer = setTimeout(() => { socket.off('close', on); reject(new Error(`no 'close' within ${ms} ms`)); }, ms);
    const on = (hadError: boolean) => { clearTimeout(timer); resolve(hadError); };
    socket.once('close', on);
  });
}

/** Poll `cond` every few ms until it holds; throws after `ms`. */
export async function until(cond: () => boolean, what: string, ms = EVENT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
}

/** Count the emissions of `event` from now on. */
export function counter(emitter: EventEmitter, event: string): { readonly n: number } {
  const c = { n: 0 };
  emitter.on(event, () => { c.n++; });
  return c;
}

/** Everything a socket delivers as 'data' (Buffers), from now on. */
export class Collector {
  readonly chunks: Buffer[] = [];
  length = 0;
  constructor(readonly socket: nodeNet.Socket) {
    socket.on('data', (d: Buffer | string) => {
      const b = typeof d === 'string' ? Buffer.from(d) : d;
      this.chunks.push(b);
      this.length += b.length;
    });
  }
  get buffer(): Buffer { return Buffer.concat(this.chunks); }
  get text(): string { return this.buffer.toString(); }
  /** Wait until `n` bytes have arrived. */
  async bytes(n: number, ms = EVENT_MS): Promise<Buffer> {
    await until(() => this.length >= n, `${n} bytes (have ${this.length})`, ms);
    return this.buffer;
  }
  /** Wait for 'end' and return everything received. */
  async end(ms = EVENT_MS): Promise<Buffer> {
    if (!this.socket.readableEnded) await next(this.socket, 'end', ms);
    return this.buffer;
  }
}

export interface Pair {
  server: nodeNet.Server;
  port: number;
  /** The connecting socket. */
  client: Sock;
  /** The server's accepted socket. */
  peer: Sock;
}

export interface PairOptions {
  server?: nodeNet.ServerOpts;
  client?: Omit<nodeNet.TcpNetConnectOpts, 'port' | 'host'>;
  host?: string;
}

/** The sockets and servers of one test, all closed by close(). */
export class Scope {
  readonly net: NetModule;
  readonly #sockets = new Set<nodeNet.Socket>();
  readonly #servers = new Set<nodeNet.Server>();

  constructor(readonly impl: Impl) {
    this.net = impl.net;
  }

  track<T extends nodeNet.Socket>(socket: T): T {
    this.#sockets.add(socket);
    return socket;
  }

  /** A server of the module under test (createServer); its accepted sockets are tracked. */
  server(options?: nodeNet.ServerOpts, onConnection?: (socket: Sock) => void): nodeNet.Server {
    const server = this.net.createServer(options ?? {});
    this.#servers.add(server);
    server.on('connection', (c: nodeNet.Socket) => { this.track(c); });
    if (onConnection) server.on('connection', onConnection);
    return server;
  }

  /** A server of this scope's module made some other way (new Server(), …), to be closed at the end. */
  adoptServer<T extends nodeNet.Server>(server: T): T {
    this.#servers.add(server);
    server.on('connection', (c: nodeNet.Socket) => { this.track(c); });
    return server;
  }

  /** listen(port, host) and wait for 'listening'; returns the bound port. */
  async listen(server: nodeNet.Server, port = 0, host = '127.0.0.1'): Promise<number> {
    const listening = next(server, 'listening');
    server.listen(port, host);
    await listening;
    return (server.address() as nodeNet.AddressInfo).port;
  }

  /** net.connect(...) of the module under test, tracked. */
  connect(...args: unknown[]): Sock {
    return this.track((this.net.connect as (...a: unknown[]) => Sock)(...args));
  }

  /** new net.Socket(options) of the module under test, tracked. */
  socket(options?: nodeNet.SocketConstructorOpts): Sock {
    return this.track(new this.net.Socket(options) as Sock);
  }

  /**
   * A listening server (on `host`, default 127.0.0.1, ephemeral port) and one connection to it; resolves once the
   * client has 'connect'ed and the server has emitted 'connection'. On kbypass/net both ends must be bypassed.
   */
  async pair(o: PairOptions = {}): Promise<Pair> {
    const host = o.host ?? '127.0.0.1';
    const server = this.server(o.server);
    const port = await this.listen(server, 0, host);
    const accepted = next<Sock>(server, 'connection');
    const client = this.connect({ ...o.client, port, host });
    await next(client, 'connect');
    const peer = await accepted;
    this.expectBypassed(client, peer);
    return { server, port, client, peer };
  }

  /** On kbypass/net: every socket given runs over kbypass. (No-op on node:net.) */
  expectBypassed(...sockets: Sock[]): void {
    if (!this.impl.bypass) return;
    sockets.forEach((s, i) => {
      assert.equal(s.bypassed, true, `socket #${i} (${s.localAddress}:${s.localPort} → ${s.remoteAddress}:${s.remotePort}) is bypassed`);
    });
  }

  /** Destroy every socket, close every server (bounded). */
  async close(): Promise<void> {
    for (const s of this.#sockets) {
      s.on('error', () => { /* the test is over */ });
      s.destroy();
    }
    await Promise.all([...this.#servers].map((srv) => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      const done = () => { clearTimeout(timer); resolve(); };
      srv.on('error', () => { /* the test is over */ });
      if (!srv.listening) { done(); return; }
      srv.close(() => done());
    })));
    this.#sockets.clear();
    this.#servers.clear();
  }
}

let v6: Promise<boolean> | undefined;

/** Can this machine listen on and connect to ::1 (checked once, with node:net)? */
export function ipv6Usable(): Promise<boolean> {
  v6 ??= new Promise<boolean>((resolve) => {
    const srv = nodeNet.createServer((c) => c.destroy());
    srv.once('error', () => resolve(false));
    srv.listen(0, '::1', () => {
      const c = nodeNet.connect((srv.address() as nodeNet.AddressInfo).port, '::1');
      c.once('connect', () => { c.destroy(); srv.close(() => resolve(true)); });
      c.once('error', () => { srv.close(() => resolve(false)); });
    });
  });
  return v6;
}

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines, parsed. */
  lines: Array<Record<string, unknown>>;
  ms: number;
}

/**
 * Run `body` in a child `node -e` with `net` bound to the module under test (required by absolute path for
 * kbypass/net); it is killed (SIGKILL) after `timeoutMs`. Lines it prints as JSON on stdout are parsed.
 */
export function runChild(impl: Impl, body: string, timeoutMs: number): ChildResult {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_OPTIONS'];
  delete env['NODE_TEST_CONTEXT'];
  const script = `'use strict';\nconst net = require(${JSON.stringify(impl.modulePath)});\n${body}\n`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', env });
  const ms = Date.now() - t0;
  const lines: Array<Record<string, unknown>> = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.startsWith('{')) continue;
    try { lines.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not ours */ }
  }
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', lines, ms };
}

/** The code of an error-like value. */
export function codeOf(e: unknown): string | undefined {
  return (e as { code?: string } | null | undefined)?.code;
}
