/**
 * The parent side of `kbypass bench net`'s child processes: start a workload's server or client for a transport
 * (`kbypass`: `node --require <preload>` with KBYPASS_DEBUG=1; `tcp`: plain node with KBYPASS=off), read its
 * JSON lines, keep its stderr (the debug lines are the proof of the way its connections went; any other line
 * is passed on to ours), and make sure none outlives the run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { encodeParams, type ClientParams, type Role, type ServerParams, type Transport, type Workload } from './protocol';

/** The kernel-bypass preload (this file runs as dist/bench/net/children.js). */
export const PRELOAD = path.resolve(__dirname, '..', '..', 'src', 'net', 'preload.js');

/** The lines of a child's stderr kept for the bypass check and for error messages (the rest are counted). */
const MAX_LINES = 20_000;

const live = new Set<BenchChild>();

/** Kill every child still running (SIGKILL: a failed or interrupted run must not leave a server behind). */
export function killChildren(): void {
  for (const c of live) c.kill();
  live.clear();
}
process.on('exit', killChildren);

/**
 * The environment of a child: for `kbypass`, KBYPASS_DEBUG=1 and no KBYPASS / KBYPASS_PORTS of the caller's
 * (either could turn the bypass off); for `tcp`, KBYPASS=off, so that even a preload in the caller's NODE_OPTIONS
 * changes nothing.
 */
export function childEnv(base: NodeJS.ProcessEnv, transport: Transport): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env['KBYPASS'];
  delete env['KBYPASS_PORTS'];
  delete env['KBYPASS_DEBUG'];
  if (transport === 'kbypass') env['KBYPASS_DEBUG'] = '1';
  else env['KBYPASS'] = 'off';
  return env;
}

/** node's arguments for a child: the preload first for `kbypass`. */
export function childArgv(script: string, transport: Transport, preload: string, params: ServerParams | ClientParams): string[] {
  return [...(transport === 'kbypass' ? ['--require', preload] : []), script, encodeParams(params)];
}

export interface ChildOptions {
  workload: Workload;
  role: Role;
  transport: Transport;
  params: ServerParams | ClientParams;
  preload: string;
  /** Where a child's other stderr lines go (null: nowhere; they are still in errors). Default process.stderr. */
  echo?: NodeJS.WritableStream | null;
}

export class BenchChild {
  readonly proc: ChildProcess;
  /** e.g. 'echo server (kbypass)'. */
  readonly label: string;
  /** Every stderr line (up to MAX_LINES), debug lines included. */
  readonly stderrLines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  #messages: unknown[] = [];
  #waiter: { what: string; resolve: (m: unknown) => void; reject: (e: Error) => void } | null = null;
  /** True when its other stderr lines are passed on as they come (errors then point to them). */
  readonly #echoed: boolean;

  constructor(o: ChildOptions) {
    this.label = `${o.workload} ${o.role} (${o.transport})`;
    const script = path.join(__dirname, `${o.workload}.js`);
    this.proc = spawn(process.execPath, childArgv(script, o.transport, o.preload, o.params), {
      env: childEnv(process.env, o.transport),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(this);
    const echo = o.echo === undefined ? process.stderr : o.echo;
    this.#echoed = echo !== null;
    lines(this.proc.stdout!, (l) => {
      let m: unknown;
      try { m = JSON.parse(l); } catch { m = new Error(`${this.label} printed '${l.slice(0, 200)}' on stdout (not JSON)`); }
      if (m instanceof Error && this.#waiter) { const e = m; this.#fail(() => e.message); return; }
      if (this.#waiter) { const w = this.#waiter; this.#waiter = null; w.resolve(m); } else this.#messages.push(m);
    });
    lines(this.proc.stderr!, (l) => {
      if (this.stderrLines.length < MAX_LINES) this.stderrLines.push(l);
      if (echo && !/^kbypass\[\d+\]: /.test(l)) echo.write(`  [${this.label}] ${l}\n`);
    });
    this.proc.stdin!.on('error', () => undefined); // a child that died before reading it
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': by then every line it wrote has been read.
      this.proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        live.delete(this);
        this.#exit = { code, signal };
        this.#fail((what) => `${this.label} exited (${describe({ code, signal })}) before saying ${what}`);
        resolve({ code, signal });
      });
      this.proc.once('error', (e) => this.#fail(() => `${this.label} could not start: ${e.message}`));
    });
  }

  get pid(): number { return this.proc.pid ?? -1; }

  /** Fail the waiting next() (if any) with a message about what it waited for. */
  #fail(message: (what: string) => string): void {
    if (!this.#waiter) return;
    const w = this.#waiter;
    this.#waiter = null;
    w.reject(this.#withStderr(new Error(message(w.what))));
  }

  #withStderr(e: Error): Error {
    const other = this.stderrLines.filter((l) => !/^kbypass\[\d+\]: /.test(l));
    if (other.length === 0) return e;
    if (this.#echoed) return new Error(`${e.message} (its stderr is above, as [${this.label}])`);
    return new Error(`${e.message}; its stderr ends:\n    ${other.slice(-20).join('\n    ')}`);
  }

  /** The child's next JSON line, or an error if it exits first or says nothing for `ms`. */
  next<T>(ms: number, what: string): Promise<T> {
    if (this.#messages.length) {
      const m = this.#messages.shift();
      return m instanceof Error ? Promise.reject(m) : Promise.resolve(m as T);
    }
    if (this.#exit) return Promise.reject(this.#withStderr(new Error(`${this.label} exited (${describe(this.#exit)}) before saying ${what}`)));
    if (this.#waiter) return Promise.reject(new Error(`${this.label}: two waits at once`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(() => `${this.label} did not say ${what} within ${ms / 1000} s`), ms);
      this.#waiter = {
        what,
        resolve: (m) => { clearTimeout(timer); resolve(m as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** Close its stdin: a server's signal to stop. */
  stop(): void { this.proc.stdin!.end(); }

  /** Wait for the exit, which must be a clean one (code 0) within `ms`. */
  async finished(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), ms); })]);
    clearTimeout(timer);
    if (r === null) { this.kill(); throw new Error(`${this.label} did not exit within ${ms / 1000} s`); }
    if (r.code !== 0) throw this.#withStderr(new Error(`${this.label} failed (${describe(r)})`));
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

function describe(x: { code: number | null; signal: NodeJS.Signals | null }): string {
  return x.signal ? `signal ${x.signal}` : `code ${x.code}`;
}

/** Call `f` with each complete line of a stream (bounded: a line longer than 1 MiB is cut). */
function lines(s: NodeJS.ReadableStream, f: (line: string) => void): void {
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      f(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    if (buf.length > (1 << 20)) { f(buf); buf = ''; }
  });
  s.on('end', () => { if (buf) f(buf); buf = ''; });
}
