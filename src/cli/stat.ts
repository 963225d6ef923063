/**
 * `kbypass stat`: the live statistics of the packet ports that running processes have open, read from the files
 * they publish (src/packet/stats-file.ts) — as Aeron's AeronStat reads a media driver's counters. Once, or every
 * `--interval` seconds for `--count` samples (Ctrl-C ends it early); `-i IF` adds the interface's own counters
 * (/sys/class/net/IF/statistics) next to the ports on it. The files of processes that have exited are removed.
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { KbypassError } from '../errors';
import { interfaceCounters } from '../packet/interface';
import { readPublishedPorts, statsDir, type PublishedPort } from '../packet/stats-file';

/** The most samples one run takes (`--count`; also the bound of `--interval` without `--count`). */
export const MAX_SAMPLES = 1_000_000;
/** `--interval` limits, seconds. */
export const MIN_INTERVAL_S = 0.1;
export const MAX_INTERVAL_S = 3600;
/** A port whose file is older than this is marked as not updating (its process may be stuck). */
const STALE_UPDATE_MS = 5000;
/** Interface counters shown in the table even when zero. */
const KEY_IF_COUNTERS = ['rx_packets', 'rx_bytes', 'rx_dropped', 'rx_missed_errors', 'tx_packets', 'tx_bytes', 'tx_dropped'];

export const STAT_USAGE = `Usage: kbypass stat [options]

Live statistics of the packet ports (kbypass/packet) that running processes have open: per port its
process, interface, queue and mode, frames received and sent (with rates between samples), frames held,
drops by reason and the socket's kernel counters. Files left by processes that have exited are removed.

Options:
  --interval SECONDS  sample every SECONDS (${MIN_INTERVAL_S} to ${MAX_INTERVAL_S}), until --count samples or Ctrl-C
                      (default: one sample; 1 when only --count is given)
  --count N           take N samples (1 to ${MAX_SAMPLES}; default 1, or until Ctrl-C with --interval)
  -i, --interface IF  also show IF's own counters (/sys/class/net/IF/statistics), and only its ports
  --json              print one JSON object per sample, one per line: {"time", "ports": [...], "interface"?}
  --dir DIR           where ports publish (default $KBYPASS_STATS_DIR, else /dev/shm/kbypass-stats)
  -h, --help          show this help

Rates (pps) need two samples: they are computed from the ports' own update times (ports publish once a
second), so use --interval 1 or more. Exit codes: 0 done, 1 failed, 2 bad usage.
`;

/** The parsed command line of `kbypass stat`. */
export interface StatOptions {
  /** Seconds between samples. Default 1 (used only when more than one sample is taken). */
  readonly intervalS: number;
  /** Samples to take. Default 1; {@link MAX_SAMPLES} with `--interval` and no `--count`. */
  readonly count: number;
  /** One JSON object per sample instead of the table. Default false. */
  readonly json: boolean;
  /** The statistics directory; undefined: `$KBYPASS_STATS_DIR`, else /dev/shm/kbypass-stats. */
  readonly dir: string | undefined;
  /** `-i`: the interface whose counters to show (and whose ports only). Default null. */
  readonly ifname: string | null;
  readonly help: boolean;
}

function usage(message: string): KbypassError {
  return new KbypassError('ERR_KBYPASS_USAGE', message);
}

/** Parse `kbypass stat`'s arguments (after `stat`). Throws ERR_KBYPASS_USAGE. */
export function parseStatArgs(argv: string[]): StatOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        interval: { type: 'string' },
        count: { type: 'string' },
        json: { type: 'boolean' },
        dir: { type: 'string' },
        interface: { type: 'string', short: 'i' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw usage((e as Error).message);
  }
  let intervalS = 1;
  if (values.interval !== undefined) {
    intervalS = /^[0-9]+(\.[0-9]+)?$/.test(values.interval) ? Number(values.interval) : NaN;
    if (!(intervalS >= MIN_INTERVAL_S && intervalS <= MAX_INTERVAL_S)) {
      throw usage(`--interval takes seconds from ${MIN_INTERVAL_S} to ${MAX_INTERVAL_S}, not '${values.interval}'`);
    }
  }
  let count = values.interval !== undefined ? MAX_SAMPLES : 1;
  if (values.count !== undefined) {
    count = /^[0-9]+$/.test(values.count) ? Number(values.count) : NaN;
    if (!(Number.isInteger(count) && count >= 1 && count <= MAX_SAMPLES)) {
      throw usage(`--count takes a whole number from 1 to ${MAX_SAMPLES}, not '${values.count}'`);
    }
  }
  if (values.dir === '') throw usage('--dir takes a directory');
  const ifname = values.interface ?? null;
  // An interface name is 1 to 15 bytes, no '/', no white space (dev_valid_name); it becomes part of a path.
  if (ifname !== null && (!/^[^/\s:]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..')) {
    throw usage(`'${ifname}' is not an interface name`);
  }
  return { intervalS, count, json: values.json === true, dir: values.dir, ifname, help: values.help === true };
}

/** How a port runs, in words: 'xdp native copy', 'xdp skb zero-copy', 'xdp tx-only copy', 'packet'. */
export function modeText(p: Pick<PublishedPort, 'mode' | 'xdpMode' | 'zeroCopy'>): string {
  if (p.mode === 'packet') return 'packet';
  return `xdp ${p.xdpMode ?? 'tx-only'} ${p.zeroCopy ? 'zero-copy' : 'copy'}`;
}

/** One port in a sample: the published file plus the rates since the previous sample (null: not known yet). */
export interface StatPort extends PublishedPort {
  /** Frames received per second between the two latest updates of the port's file. */
  readonly rxPps: number | null;
  /** Frames the kernel completed sending, per second, likewise. */
  readonly txPps: number | null;
}

/** An interface's own counters. */
export interface InterfaceCounters {
  readonly name: string;
  /** Every file of /sys/class/net/IF/statistics, by name. */
  readonly counters: Record<string, number>;
  /** Per second since the previous sample (null on the first). */
  readonly rates: Record<string, number> | null;
}

/** One sample. */
export interface StatSample {
  /** When it was taken, ms since the epoch. */
  readonly time: number;
  readonly ports: StatPort[];
  /** With `-i`. */
  readonly interface?: InterfaceCounters;
  /** Files of exited processes removed while taking it. */
  readonly removed: number;
}

interface Prev { updatedAt: number; startedAt: number; rx: number; tx: number; rxPps: number | null; txPps: number | null }

/** Takes samples and remembers the previous one for rates. */
export class StatSampler {
  readonly #dir: string | undefined;
  readonly #ifname: string | null;
  readonly #prev = new Map<string, Prev>();
  #prevIf: { at: bigint; counters: Record<string, number> } | null = null;

  constructor(dir: string | undefined, ifname: string | null) {
    this.#dir = dir;
    this.#ifname = ifname;
  }

  /** Read every published port (removing the files of exited processes) and, with an interface, its counters. */
  sample(): StatSample {
    const time = Date.now();
    const all = readPublishedPorts(this.#dir, { removeStale: true });
    const live = all.filter((p) => p.alive && (this.#ifname === null || p.ifname === this.#ifname));
    const seen = new Set<string>();
    const ports = live.map((p): StatPort => {
      seen.add(p.file);
      const prev = this.#prev.get(p.file);
      let rxPps: number | null = null;
      let txPps: number | null = null;
      if (prev !== undefined && prev.startedAt === p.startedAt) {
        if (p.updatedAt > prev.updatedAt) {
          // Rates over the port's own update times: they do not depend on when this sample happened to read.
          const dt = (p.updatedAt - prev.updatedAt) / 1000;
          const rx = p.stats.rxPackets - prev.rx;
          const tx = p.stats.txCompleted - prev.tx;
          rxPps = rx >= 0 ? rx / dt : null;
          txPps = tx >= 0 ? tx / dt : null;
        } else {
          // Not rewritten since the previous sample: the rates of its latest update still hold.
          rxPps = prev.rxPps;
          txPps = prev.txPps;
        }
      }
      if (prev === undefined || p.updatedAt !== prev.updatedAt || prev.startedAt !== p.startedAt) {
        this.#prev.set(p.file, { updatedAt: p.updatedAt, startedAt: p.startedAt, rx: p.stats.rxPackets, tx: p.stats.txCompleted, rxPps, txPps });
      }
      return { ...p, rxPps, txPps };
    });
    for (const k of [...this.#prev.keys()]) if (!seen.has(k)) this.#prev.delete(k);
    const removed = all.length - all.filter((p) => p.alive).length;
    if (this.#ifname === null) return { time, ports, removed };
    const at = process.hrtime.bigint();
    const counters = interfaceCounters(this.#ifname);
    let rates: Record<string, number> | null = null;
    if (this.#prevIf !== null) {
      const dt = Number(at - this.#prevIf.at) / 1e9;
      rates = {};
      for (const [k, v] of Object.entries(counters)) {
        const before = this.#prevIf.counters[k];
        if (before !== undefined && v >= before && dt > 0) rates[k] = (v - before) / dt;
      }
    }
    this.#prevIf = { at, counters };
    return { time, ports, removed, interface: { name: this.#ifname, counters, rates } };
  }
}

const rate = (n: number | null): string => (n === null ? '-' : String(Math.round(n)));

function pairs(r: Record<string, number>, nonZeroOnly: boolean): string {
  const s = Object.entries(r).filter(([, n]) => !nonZeroOnly || n !== 0).map(([k, n]) => `${k}=${n}`).join(' ');
  return s === '' ? '-' : s;
}

/** The table of one sample (ends with a newline). */
export function formatStatTable(s: StatSample): string {
  const lines: string[] = [];
  if (s.interface !== undefined) {
    const { name, counters, rates } = s.interface;
    const shown = Object.keys(counters).filter((k) => KEY_IF_COUNTERS.includes(k) || counters[k] !== 0);
    shown.sort((a, b) => {
      const ia = KEY_IF_COUNTERS.indexOf(a);
      const ib = KEY_IF_COUNTERS.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
    const cells = shown.map((k) => {
      const r = rates?.[k];
      return `${k}=${counters[k]}${r !== undefined && r > 0 ? ` (${Math.round(r)}/s)` : ''}`;
    });
    lines.push(`interface ${name} (/sys/class/net/${name}/statistics, non-zero and key counters):`);
    for (let i = 0; i < cells.length; i += 4) lines.push(`  ${cells.slice(i, i + 4).join('  ')}`);
    lines.push('');
  }
  if (s.ports.length === 0) {
    lines.push(s.interface !== undefined ? `no kbypass ports are open on ${s.interface.name}` : 'no kbypass ports are open');
  } else {
    const header = ['PID', 'INTERFACE', 'QUEUE', 'MODE', 'RX PACKETS', 'RX PPS', 'TX COMPLETED', 'TX PPS', 'HELD', 'DROPS', 'KERNEL'];
    const numeric = new Set([2, 4, 5, 6, 7, 8]);
    const rows = s.ports.map((p) => [
      String(p.pid), p.ifname, String(p.queue), modeText(p), String(p.stats.rxPackets), rate(p.rxPps),
      String(p.stats.txCompleted), rate(p.txPps), String(p.stats.held), pairs(p.stats.drops, true), pairs(p.stats.kernel, false),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]): string => r.map((c, i) => {
      if (i === r.length - 1) return c;
      const w = widths[i] ?? 0;
      return numeric.has(i) ? c.padStart(w) : c.padEnd(w);
    }).join('  ').trimEnd();
    lines.push(fmt(header));
    for (const r of rows) lines.push(fmt(r));
    for (const p of s.ports) {
      const who = `pid ${p.pid} ${p.ifname} queue ${p.queue}`;
      if (p.fallbackReason !== '') lines.push(`  ${who}: ${p.fallbackReason}`);
      const age = s.time - p.updatedAt;
      if (age > STALE_UPDATE_MS) lines.push(`  ${who}: not updated for ${Math.round(age / 1000)} s (is its event loop blocked?)`);
    }
  }
  if (s.removed > 0) lines.push(`(removed ${s.removed} file(s) left by exited processes)`);
  return `${lines.join('\n')}\n`;
}

/** One sample as the JSON line `--json` prints. */
export function formatStatJson(s: StatSample): string {
  const obj: Record<string, unknown> = { time: s.time, ports: s.ports };
  if (s.interface !== undefined) obj['interface'] = s.interface;
  return `${JSON.stringify(obj)}\n`;
}

/** `kbypass stat [options]`: returns the exit code. */
export async function runStat(argv: string[], out: (s: string) => void = (s) => { process.stdout.write(s); }): Promise<number> {
  let o: StatOptions;
  try {
    o = parseStatArgs(argv);
  } catch (e) {
    process.stderr.write(`kbypass stat: ${(e as Error).message}\n\n${STAT_USAGE}`);
    return 2;
  }
  if (o.help) { out(STAT_USAGE); return 0; }
  const sampler = new StatSampler(o.dir, o.ifname);
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  if (o.count > 1) process.once('SIGINT', onSigint);
  try {
    for (let i = 0; i < o.count && !stop.signal.aborted; i++) {
      if (i > 0) {
        try { await sleep(o.intervalS * 1000, undefined, { signal: stop.signal }); } catch { break; }
      }
      let s: StatSample;
      try {
        s = sampler.sample();
      } catch (e) {
        const err = e as { code?: string; message?: string };
        const hint = err.code === 'EACCES' ? ` (the files belong to another user: run as that user or as root)` : '';
        process.stderr.write(`kbypass stat: ${err.message ?? String(e)}${hint}\n`);
        return 1;
      }
      if (o.json) {
        out(formatStatJson(s));
      } else {
        if (o.count > 1) out(`${i > 0 ? '\n' : ''}-- ${new Date(s.time).toISOString()}  ${statsDir(o.dir)}\n`);
        out(formatStatTable(s));
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  return 0;
}
