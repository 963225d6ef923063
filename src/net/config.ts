/**
 * Configuration of the sockets layer, from the environment (read once, at first use):
 *
 * | variable        | meaning                                                                              | default |
 * |-----------------|--------------------------------------------------------------------------------------|---------|
 * | `KBYPASS`       | `off` (or `0`, `false`, `no`): no endpoint is published and every connection is TCP  | on      |
 * | `KBYPASS_PORTS` | allow-list of TCP ports, e.g. `3000,8000-8100`: only these are published / bypassed  | all     |
 * | `KBYPASS_DEBUG` | `1`: one line per decision on stderr (`kbypass[pid]: connect 127.0.0.1:3000 via kbypass`) | off |
 *
 * A bad `KBYPASS_PORTS` is reported once on stderr and turns the bypass off (fail safe: TCP still works).
 */
import { format } from 'node:util';

export interface NetConfig {
  /** False when `KBYPASS=off`: kbypass/net behaves exactly as node:net. */
  readonly enabled: boolean;
  /** The allow-list as inclusive ranges; empty: every port. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  readonly debug: boolean;
}

let current: NetConfig | null = null;

/** Parse `KBYPASS_PORTS`: comma-separated ports and inclusive ranges `a-b`, 1 to 65535. Throws a RangeError. */
export function parsePorts(text: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!(lo >= 1 && hi <= 65535 && lo <= hi)) {
      const e = new RangeError(`KBYPASS_PORTS: '${part}' is not a port (1-65535) or a range a-b`) as RangeError & { code: string };
      e.code = 'ERR_KBYPASS_BAD_CONFIG';
      throw e;
    }
    out.push([lo, hi]);
  }
  return out;
}

/** Build a configuration from an environment (exported for tests). */
export function configFrom(env: NodeJS.ProcessEnv): NetConfig {
  const off = /^(off|0|false|no)$/i.test((env['KBYPASS'] ?? '').trim());
  const debug = /^(1|true|yes|on)$/i.test((env['KBYPASS_DEBUG'] ?? '').trim());
  const portsText = env['KBYPASS_PORTS'];
  let ranges: Array<[number, number]> = [];
  let enabled = !off;
  if (portsText !== undefined && portsText.trim() !== '') {
    try {
      ranges = parsePorts(portsText);
    } catch (e) {
      process.stderr.write(`kbypass[${process.pid}]: ${(e as Error).message}; kernel bypass is off\n`);
      enabled = false;
    }
  }
  return { enabled, ranges, debug };
}

/** The process's configuration. */
export function config(): NetConfig {
  current ??= configFrom(process.env);
  return current;
}

/** Re-read the environment (tests). */
export function reloadConfig(): NetConfig {
  current = null;
  return config();
}

/** May connections to / listeners on `port` be bypassed? */
export function portAllowed(port: number, c: NetConfig = config()): boolean {
  if (!c.enabled) return false;
  if (c.ranges.length === 0) return true;
  for (const [lo, hi] of c.ranges) if (port >= lo && port <= hi) return true;
  return false;
}

/** One line on stderr per decision when KBYPASS_DEBUG is set. */
export function trace(fmt: string, ...args: unknown[]): void {
  if (!config().debug) return;
  process.stderr.write(`kbypass[${process.pid}]: ${format(fmt, ...args)}\n`);
}
