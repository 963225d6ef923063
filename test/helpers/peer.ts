/**
 * Child Node processes running a fixture (test/fixtures/NAME.ts, compiled to dist/test/fixtures/NAME.js). The
 * child talks to the test over Node's IPC channel: it sends `{ type, ... }` objects, read here with next(type).
 * Every peer is killed when the test process exits, and killPeers() kills those still running.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as path from 'node:path';

export interface PeerMessage { type: string; [key: string]: unknown }

export class Peer {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #queue: PeerMessage[] = [];
  #waiters: { type: string; resolve: (m: PeerMessage) => void; reject: (e: Error) => void }[] = [];
  #stderr = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(child: ChildProcess) {
    this.child = child;
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { this.#stderr += s; });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { this.#stderr += s; });
    child.on('message', (m: PeerMessage) => {
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(m);
      else this.#queue.push(m);
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        live.delete(this);
        for (const w of this.#waiters.splice(0)) {
          w.reject(new Error(`peer exited (code ${code}, signal ${signal}) before sending '${w.type}'; output:\n${this.#stderr}`));
        }
        resolve({ code, signal });
      });
    });
  }

  get pid(): number { return this.child.pid!; }
  /** What the child wrote to stdout and stderr so far. */
  get output(): string { return this.#stderr; }

  /** The next message of this type from the child (queued ones first). */
  next<T = PeerMessage>(type: string, ms = 10_000): Promise<T> {
    const i = this.#queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.#queue.splice(i, 1)[0] as unknown as T);
    if (this.#exit) return Promise.reject(new Error(`peer already exited (${JSON.stringify(this.#exit)}); output:\n${this.#stderr}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no '${type}' from the peer within ${ms} ms; output:\n${this.#stderr}`));
      }, ms);
      const waiter = {
        type,
        resolve: (m: PeerMessage) => { clearTimeout(timer); resolve(m as unknown as T); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      this.#waiters.push(waiter);
    });
  }

  send(message: PeerMessage): void {
    this.child.send(message);
  }

  /** Kill the child (default SIGKILL) and wait for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.#exit === null) this.child.kill(signal);
    await this.exited;
  }
}

const live = new Set<Peer>();
process.once('exit', () => { for (const p of live) p.child.kill('SIGKILL'); });

/** Run dist/test/fixtures/`script`.js in a child Node process with `args`. */
export function spawnPeer(script: string, args: string[] = [], options: SpawnOptions = {}): Peer {
  const file = path.join(__dirname, '..', 'fixtures', `${script}.js`);
  const child = spawn(process.execPath, [file, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    ...options,
  });
  const peer = new Peer(child);
  live.add(peer);
  return peer;
}

/** Kill every peer still running. */
export async function killPeers(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}
