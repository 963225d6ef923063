/**
 * Harness of the kbypass/net program tests: run an unmodified program (a plain .js/.mjs fixture under
 * test/fixtures/net/) in a child Node process, with or without the preload, and read what it says.
 *
 * A fixture writes one JSON object per line on stdout (`{"type": ...}`; a server starts with
 * `{"type":"listening","port":N}`) and may take JSON commands, one per line, on stdin. Its stderr holds the
 * preload's KBYPASS_DEBUG lines, parsed by debugLines() — the proof of which way each connection went.
 * Every program is killed when the test process exits; killPrograms() (an after hook) kills those still running.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The repository (this file runs as dist/test/net/harness.js). */
export const ROOT = path.join(__dirname, '..', '..', '..');
export const PRELOAD_CJS = path.join(__dirname, '..', '..', 'src', 'net', 'preload.js');
export const PRELOAD_ESM = path.join(ROOT, 'esm', 'preload.mjs');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'net');

/**
 * KBYPASS_TEST_PLAIN=1 runs every program without the preload and skips the checks of the debug lines: a
 * check of the programs themselves (their output must be correct over plain TCP too). Never set in CI.
 */
export const PLAIN = process.env['KBYPASS_TEST_PLAIN'] === '1';

export type Preload = 'cjs' | 'esm' | 'none';

export interface ProgramOptions {
  /** How the preload is loaded: --require (cjs, the default), --import (esm), or not at all. */
  preload?: Preload;
  /** Extra environment (undefined deletes a variable). KBYPASS_DEBUG=1 is set unless overridden. */
  env?: Record<string, string | undefined>;
  /** Node flags before the script (e.g. --expose-gc). */
  nodeArgs?: string[];
}

export interface Message { type: string; [key: string]: unknown }

export interface DebugLine { pid: number; text: string }

const live = new Set<Program>();
process.once('exit', () => { for (const p of live) p.child.kill('SIGKILL'); });

export class Program {
  readonly child: ChildProcess;
  readonly name: string;
  readonly preload: Preload;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stdout = '';
  #stderr = '';
  #lineBuf = '';
  #messages: Message[] = [];
  #waiters: Array<{ type: string; resolve: (m: Message) => void; reject: (e: Error) => void }> = [];
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(script: string, args: string[], o: ProgramOptions = {}) {
    this.name = script;
    this.preload = PLAIN ? 'none' : (o.preload ?? 'cjs');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('KBYPASS')) delete env[k];
    delete env['NODE_OPTIONS'];
    delete env['NODE_TEST_CONTEXT'];
    env['KBYPASS_DEBUG'] = '1';
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete env[k]; else env[k] = v;
    }
    const pre = this.preload === 'cjs' ? ['--require', PRELOAD_CJS]
      : this.preload === 'esm' ? ['--import', pathToFileURL(PRELOAD_ESM).href] : [];
    this.child = spawn(process.execPath, [...(o.nodeArgs ?? []), ...pre, path.join(FIXTURES, script), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'], env, cwd: ROOT,
    });
    live.add(this);
    this.child.stdin!.on('error', () => { /* the program exited */ });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.#stderr += s; });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.#stdout += s;
      this.#lineBuf += s;
      let i;
      while ((i = this.#lineBuf.indexOf('\n')) >= 0) {
        const line = this.#lineBuf.slice(0, i);
        this.#lineBuf = this.#lineBuf.slice(i + 1);
        let m: Message;
        try { m = JSON.parse(line) as Message; } catch { continue; }
        if (m === null || typeof m !== 'object' || typeof m.type !== 'string') continue;
        const w = this.#waiters.findIndex((x) => x.type === m.type);
        if (w >= 0) this.#waiters.splice(w, 1)[0]!.resolve(m);
        else this.#messages.push(m);
      }
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        live.delete(this);
        // Let the last output arrive before failing the waiters.
        setImmediate(() => {
          for (const w of this.#waiters.splice(0)) {
            w.reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before saying '${w.type}'\n${this.describe()}`));
          }
          resolve({ code, signal });
        });
      });
    });
  }

  get pid(): number { return this.child.pid!; }
  get stdout(): string { return this.#stdout; }
  get stderr(): string { return this.#stderr; }
  get hasExited(): boolean { return this.#exit !== null; }

  /** The program's output, for failure messages (the tail of a long stderr). */
  describe(): string {
    const tail = (s: string) => s.length > 4000 ? `…${s.slice(-4000)}` : s;
    return `--- ${this.name} (pid ${this.child.pid}, preload ${this.preload}) stdout:\n${tail(this.#stdout)}\n--- stderr:\n${tail(this.#stderr)}`;
  }

  /** The next message of this type (queued ones first), or a rejection after `ms`. */
  next<T extends Message = Message>(type: string, ms = 10_000): Promise<T> {
    const i = this.#messages.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.#messages.splice(i, 1)[0] as T);
    if (this.#exit) return Promise.reject(new Error(`${this.name} already exited (${JSON.stringify(this.#exit)}); no '${type}'\n${this.describe()}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no '${type}' from ${this.name} within ${ms} ms\n${this.describe()}`));
      }, ms);
      const waiter = {
        type,
        resolve: (m: Message) => { clearTimeout(timer); resolve(m as T); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Has a message of this type arrived (and not been taken by next())? */
  has(type: string): boolean { return this.#messages.some((m) => m.type === type); }

  /** Write one command line (JSON) to the program's stdin. */
  send(command: Record<string, unknown>): void {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** Wait for the program to exit by itself within `ms`; rejects (and kills it) otherwise. */
  async exit(ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${ms} ms\n${this.describe()}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL (or `signal`) and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.#exit === null) this.child.kill(signal);
    await this.exited;
  }

  /** The kbypass debug lines on stderr (`kbypass[<pid>]: <text>`). */
  debugLines(): DebugLine[] {
    const out: DebugLine[] = [];
    for (const line of this.#stderr.split('\n')) {
      const m = /^kbypass\[(\d+)\]: (.*)$/.exec(line);
      if (m) out.push({ pid: Number(m[1]), text: m[2]! });
    }
    return out;
  }

  /** Tally of this program's connect / accept / listen decisions, each line checked against its exact form. */
  decisions(): Decisions {
    const d: Decisions = { connectKbypass: [], connectTcp: [], accept: [], published: [], malformed: [], otherPid: [] };
    for (const l of this.debugLines()) {
      if (l.pid !== this.pid) { d.otherPid.push(`kbypass[${l.pid}]: ${l.text}`); continue; }
      let m: RegExpExecArray | null;
      if (l.text.startsWith('connect ')) {
        if ((m = /^connect (\S+):(\d+) via kbypass$/.exec(l.text))) d.connectKbypass.push({ host: m[1]!, port: Number(m[2]) });
        else if ((m = /^connect (\S+):(\d+) via tcp \((.+)\)$/.exec(l.text))) d.connectTcp.push({ host: m[1]!, port: Number(m[2]), reason: m[3]! });
        else d.malformed.push(l.text);
      } else if (l.text.startsWith('accept ')) {
        if ((m = /^accept (\S+):(\d+) on (\d+) via kbypass$/.exec(l.text))) {
          d.accept.push({ remoteAddress: m[1]!, remotePort: Number(m[2]), port: Number(m[3]) });
        } else d.malformed.push(l.text);
      } else if ((m = /^listen (\d+) endpoint published$/.exec(l.text))) {
        d.published.push(Number(m[1]));
      }
    }
    return d;
  }
}

export interface Decisions {
  connectKbypass: Array<{ host: string; port: number }>;
  connectTcp: Array<{ host: string; port: number; reason: string }>;
  accept: Array<{ remoteAddress: string; remotePort: number; port: number }>;
  published: number[];
  /** connect/accept lines in none of the documented forms. */
  malformed: string[];
  /** Lines carrying another pid than the program's. */
  otherPid: string[];
}

/** Start `script` (a file under test/fixtures/net/) with `args`. */
export function run(script: string, args: string[] = [], o: ProgramOptions = {}): Program {
  return new Program(script, args, o);
}

/** Start a server fixture and wait for its `{"type":"listening","port":N}`. */
export async function startServer(script: string, args: string[] = [], o: ProgramOptions = {}): Promise<{ p: Program; port: number }> {
  const p = run(script, args, o);
  const m = await p.next('listening', 15_000);
  const port = m['port'];
  if (typeof port !== 'number' || port <= 0) throw new Error(`bad listening message ${JSON.stringify(m)}\n${p.describe()}`);
  return { p, port };
}

/** Kill every program still running (an after / afterEach hook). */
export async function killPrograms(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}

/**
 * TCP sockets of this host (IPv4 and IPv6) in state ESTABLISHED whose local port is `port` — the accepted ends
 * of TCP connections to a server on `port`. A bypassed connection has none: no TCP connection exists for it.
 */
export function tcpEstablishedOn(port: number): number {
  let n = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const local = cols[1]!;
      const state = cols[3]!;
      const p = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (p === port && state === '01') n++;
    }
  }
  return n;
}

/** Names in /dev/shm now. */
export function shmEntries(): string[] {
  try { return fs.readdirSync('/dev/shm').sort(); } catch { return []; }
}

/** A fresh temporary directory, removed when the process exits. */
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-net-test-'));
  process.once('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Poll `cond` (which may be async) until it holds; throws after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// --- proofs from the debug lines -----------------------------------------------------------------------------


function wellFormed(p: Program): Decisions {
  const d = p.decisions();
  assert.deepEqual(d.malformed, [], `${p.name}: debug lines in none of the documented forms\n${p.describe()}`);
  assert.deepEqual(d.otherPid, [], `${p.name}: debug lines with another pid than ${p.pid}\n${p.describe()}`);
  return d;
}

/**
 * Prove that exactly `n` (or between n[0] and n[1]) connections from `client` to `server`'s `port` went over
 * kbypass: the server published the port's endpoint, the client logged that many 'connect … via kbypass' lines
 * and no 'via tcp' line for the port, and the server logged as many 'accept … on <port> via kbypass' lines.
 * Returns the count. (No-op under KBYPASS_TEST_PLAIN.)
 */
export function assertBypassed(client: Program, server: Program, port: number, n: number | [min: number, max: number]): number {
  if (PLAIN) return typeof n === 'number' ? n : n[0];
  const c = wellFormed(client);
  const s = wellFormed(server);
  assert.ok(s.published.includes(port), `${server.name} did not log 'listen ${port} endpoint published'\n${server.describe()}`);
  const ck = c.connectKbypass.filter((x) => x.port === port).length;
  const ct = c.connectTcp.filter((x) => x.port === port);
  const sa = s.accept.filter((x) => x.port === port).length;
  assert.deepEqual(ct, [], `${client.name}: connections to ${port} that went over tcp\n${client.describe()}`);
  if (typeof n === 'number') {
    assert.equal(ck, n, `${client.name}: 'connect …:${port} via kbypass' lines\n${client.describe()}`);
  } else {
    assert.ok(ck >= n[0] && ck <= n[1], `${client.name}: ${ck} 'connect …:${port} via kbypass' lines, expected ${n[0]} to ${n[1]}\n${client.describe()}`);
  }
  assert.equal(sa, ck, `${server.name}: 'accept … on ${port} via kbypass' lines (the client logged ${ck} connects)\n${server.describe()}`);
  return ck;
}

/**
 * Prove that no connection to `port` went over kbypass: no 'via kbypass' line on either side (a program run
 * without the preload has no debug lines at all), and — for a preloaded client that decided — every decision
 * for the port says 'via tcp (<reason>)'. Returns the client's tcp decisions (their reasons).
 */
export function assertNotBypassed(client: Program, server: Program, port: number): Array<{ host: string; port: number; reason: string }> {
  const c = wellFormed(client);
  const s = wellFormed(server);
  assert.deepEqual(c.connectKbypass.filter((x) => x.port === port), [], `${client.name}: connections to ${port} via kbypass\n${client.describe()}`);
  assert.deepEqual(s.accept.filter((x) => x.port === port), [], `${server.name}: connections accepted via kbypass on ${port}\n${server.describe()}`);
  if (client.preload === 'none') assert.deepEqual(client.debugLines(), [], `${client.name} runs without the preload, yet logged kbypass lines`);
  if (server.preload === 'none') assert.deepEqual(server.debugLines(), [], `${server.name} runs without the preload, yet logged kbypass lines`);
  return c.connectTcp.filter((x) => x.port === port);
}
