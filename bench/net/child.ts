/**
 * The child side of `kbypass bench net` (protocol.ts): how a server or client program reports, fails and stops.
 * Only node builtins here: the children must stay unmodified node:net / node:http programs, whichever way
 * (TCP or the preload) their sockets go.
 */
import type { Role, Workload } from './protocol';

/** One JSON line on stdout (a pipe: written synchronously on Linux, so it is out before any exit). */
export function report(msg: object): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

/** Say what went wrong on stderr and exit 1 (the parent shows the message). */
export function fail(who: string, e: unknown): never {
  const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.stderr.write(`bench net ${who}: ${text}\n`);
  process.exit(1);
}

/**
 * Run a child program: fail on any uncaught error; give up after `hardStopSec`; exit when stdin ends (the
 * parent closed it, or died): with 0 for a server (that is how it is told to stop), 1 for a client.
 */
export function runChild(workload: Workload, role: Role, hardStopSec: number, body: () => Promise<void>): void {
  const who = `${workload} ${role}`;
  process.on('uncaughtException', (e) => fail(who, e));
  process.on('unhandledRejection', (e) => fail(who, e));
  setTimeout(() => fail(who, new Error(`gave up after ${hardStopSec} s`)), hardStopSec * 1000).unref();
  process.stdin.on('error', () => undefined);
  process.stdin.on('end', () => process.exit(role === 'server' ? 0 : 1));
  process.stdin.resume();
  body().then(() => { if (role === 'client') process.exit(0); }, (e) => fail(who, e));
}
