/**
 * `kbypass bench ipc`: round-trip latency and streaming throughput between two processes, for kbypass channels
 * (busy-polled and event-driven), node:net over TCP loopback and over a Unix socket, with the C floors
 * (two C processes on shared memory; single-core memcpy) measured in the same run.
 */
import { progressReporter } from '../progress';
import * as fs from 'node:fs';
import { idleCpu, jsClockCost, killPeers, latencyFloor, latencyJsFloor, latencyNet, latencyShm, memcpyFloor, throughputNet, throughputShm, FLOOR_BIN } from './runs';
import { Histogram } from './histogram';

export interface LatencyRow { transport: string; bytes: number; p50_ns: number; p99_ns: number; p999_ns: number }
export interface ThroughputRow { transport: string; bytes: number; msgs_per_sec: number; bytes_per_sec: number }
export interface IpcResult { latency: LatencyRow[]; throughput: ThroughputRow[] }

export interface IpcBenchOptions {
  /** A shorter run (fewer sizes and iterations): under 45 s on a 2-core machine. Default false. */
  readonly quick?: boolean;
  /** Message sizes in bytes. Default 8 B to 1 MiB (quick: 8, 64, 1 KiB, 64 KiB, 1 MiB). */
  readonly sizes?: readonly number[];
  /** Progress lines go here (null: none). Default process.stderr. */
  readonly progress?: NodeJS.WritableStream | null;
}

const FULL_SIZES = [8, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
const QUICK_SIZES = [8, 64, 1024, 65536, 1048576];

/** Round trips to time for a size (shm and C are ~100× faster than node:net, so they get more). */
function iterations(fast: boolean, bytes: number, quick: boolean): number {
  const base = fast ? (bytes <= 4096 ? 200_000 : bytes <= 65536 ? 40_000 : 4_000) : (bytes <= 4096 ? 20_000 : bytes <= 65536 ? 5_000 : 1_000);
  return quick ? Math.max(500, Math.floor(base / 5)) : base;
}

function row(transport: string, bytes: number, h: Histogram): LatencyRow {
  const r = (v: number) => Math.round(v);
  return { transport, bytes, p50_ns: r(h.percentile(50)), p99_ns: r(h.percentile(99)), p999_ns: r(h.percentile(99.9)) };
}

export interface IpcReport extends IpcResult {
  /** The bare JavaScript ping-pong over shared memory (terminal report only; not part of the JSON shape). */
  jsFloor: LatencyRow[];
  clock: { js_ns: number; c_ns: number };
  /**
   * The 64 B p50 of c-floor, js-floor and shm-poll in each interleaved round (ns; terminal report only): the
   * vCPUs' placement can change between rounds, and the whole-run p50 then mixes placements.
   */
  rounds64: Array<{ c: number; js: number; poll: number }>;
  /** CPU used by each side of an idle event-driven channel, percent of one core. */
  idle: { parentPct: number; peerPct: number };
}

export async function runIpcBench(opts: IpcBenchOptions = {}): Promise<IpcReport> {
  try {
    return await run(opts);
  } finally {
    killPeers();
  }
}

async function run(opts: IpcBenchOptions): Promise<IpcReport> {
  const quick = opts.quick === true;
  const sizes = opts.sizes ?? (quick ? QUICK_SIZES : FULL_SIZES);
  const out = opts.progress === undefined ? process.stderr : opts.progress;
  if (!fs.existsSync(FLOOR_BIN)) throw new Error(`the C floor program is not built (${FLOOR_BIN}): run \`npm rebuild kbypass\``);
  const rounds0 = quick ? 2 : 4;
  const steps = sizes.length * (4 * rounds0 + 7) + 1;
  const { step: progress, done: endProgress } = progressReporter(out, steps);
  const seconds = quick ? 0.25 : 1;
  const latency: LatencyRow[] = [];
  const jsFloor: LatencyRow[] = [];
  const throughput: ThroughputRow[] = [];
  const jsClock = jsClockCost();
  let cClock = 0;
  const rounds64: IpcReport['rounds64'] = [];

  const rounds = quick ? 2 : 4;
  for (const bytes of sizes) {
    const fast = iterations(true, bytes, quick);
    const slow = iterations(false, bytes, quick);
    const warm = (n: number) => Math.max(200, Math.floor(n / 10));
    // The shared-memory transports and their C floor are measured in interleaved rounds, so that all three see
    // the same machine (on a VM the two vCPUs can land on nearer or farther cores from one second to the next).
    const hist = { 'c-floor': new Histogram(), 'js-floor': new Histogram(), 'shm-poll': new Histogram(), 'shm-event': new Histogram() };
    const per = Math.ceil(fast / rounds);
    for (let r = 1; r <= rounds; r++) {
      progress(`latency c-floor ${bytes} B (round ${r}/${rounds})`);
      const floor = await latencyFloor(bytes, per, warm(per));
      cClock = floor.clockNs;
      hist['c-floor'].add(floor.h);
      progress(`latency js-floor ${bytes} B (round ${r}/${rounds})`);
      const js = await latencyJsFloor(bytes, per, warm(per), jsClock);
      hist['js-floor'].add(js);
      let poll: Histogram | null = null;
      for (const t of ['shm-poll', 'shm-event'] as const) {
        progress(`latency ${t} ${bytes} B (round ${r}/${rounds})`);
        const h = await latencyShm(t, bytes, per, warm(per), jsClock);
        if (t === 'shm-poll') poll = h;
        hist[t].add(h);
      }
      if (bytes === 64 && poll !== null) rounds64.push({ c: floor.h.percentile(50), js: js.percentile(50), poll: poll.percentile(50) });
    }
    for (const t of ['c-floor', 'shm-poll', 'shm-event'] as const) latency.push(row(t, bytes, hist[t]));
    jsFloor.push(row('js-floor', bytes, hist['js-floor']));
    for (const t of ['tcp', 'unix'] as const) {
      progress(`latency ${t} ${bytes} B`);
      latency.push(row(t, bytes, await latencyNet(t, bytes, slow, warm(slow), jsClock)));
    }
    progress(`throughput memcpy ${bytes} B`);
    const bw = await memcpyFloor(bytes, seconds);
    throughput.push({ transport: 'memcpy', bytes, msgs_per_sec: Math.round(bw / bytes), bytes_per_sec: Math.round(bw) });
    for (const t of ['shm-poll', 'shm-event', 'tcp', 'unix'] as const) {
      progress(`throughput ${t} ${bytes} B`);
      const r = t === 'tcp' || t === 'unix' ? await throughputNet(t, bytes, seconds) : await throughputShm(t, bytes, seconds);
      const rate = r.msgs / r.secs;
      throughput.push({ transport: t, bytes, msgs_per_sec: Math.round(rate), bytes_per_sec: Math.round(rate * bytes) });
    }
  }
  progress('idle channel CPU');
  const idle = await idleCpu(quick ? 1 : 2);
  endProgress();
  return { latency, throughput, jsFloor, rounds64, clock: { js_ns: jsClock, c_ns: cClock }, idle };
}

const us = (ns: number) => (ns / 1000).toFixed(ns < 10_000 ? 3 : 1);
const size = (b: number) => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
const rate = (v: number) => (v >= 1e9 ? `${(v / 1e9).toFixed(2)} G` : v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)} k` : v.toFixed(0));
const ratio = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(2)}×`);

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt)].join('\n');
}

/** The terminal report: both tables with ratios to the floors and to node:net, then the bars. */
export function formatIpcReport(r: IpcReport): string {
  const lat = (t: string, b: number) => r.latency.find((x) => x.transport === t && x.bytes === b);
  const thr = (t: string, b: number) => r.throughput.find((x) => x.transport === t && x.bytes === b);
  const shown = r.latency.flatMap((x) => (x.transport === 'c-floor' ? [x, ...r.jsFloor.filter((j) => j.bytes === x.bytes)] : [x]));
  const lrows = shown.map((x) => [x.transport, size(x.bytes), us(x.p50_ns), us(x.p99_ns), us(x.p999_ns),
    ratio(x.p50_ns / (lat('c-floor', x.bytes)?.p50_ns ?? NaN)), ratio((lat('unix', x.bytes)?.p50_ns ?? NaN) / x.p50_ns), ratio((lat('tcp', x.bytes)?.p50_ns ?? NaN) / x.p50_ns)]);
  const trows = r.throughput.map((x) => [x.transport, size(x.bytes), `${rate(x.msgs_per_sec)}msg/s`, `${rate(x.bytes_per_sec)}B/s`,
    x.transport === 'memcpy' ? '-' : `${((100 * x.bytes_per_sec) / (thr('memcpy', x.bytes)?.bytes_per_sec ?? NaN)).toFixed(1)}%`,
    ratio(x.bytes_per_sec / (thr('tcp', x.bytes)?.bytes_per_sec ?? NaN)), ratio(x.bytes_per_sec / (thr('unix', x.bytes)?.bytes_per_sec ?? NaN))]);
  const lines = [
    'Round-trip latency (µs; one clock read per round trip, its cost subtracted: ' +
      `JS ${r.clock.js_ns.toFixed(1)} ns, C ${r.clock.c_ns.toFixed(1)} ns)`,
    table(['transport', 'size', 'p50', 'p99', 'p99.9', 'p50÷c-floor', 'unix÷this', 'tcp÷this'], lrows),
    '',
    'Streaming throughput (one sender process, one receiver process)',
    table(['transport', 'size', 'messages', 'bytes', 'of memcpy', '×tcp', '×unix'], trows),
  ];
  const bars: string[] = [];
  const p = lat('shm-poll', 64); const c = lat('c-floor', 64); const e = lat('shm-event', 64); const u = lat('unix', 64);
  const j = r.jsFloor.find((x) => x.bytes === 64);
  if (p && c) {
    bars.push(`shm-poll 64 B p50 ÷ c-floor p50 = ${(p.p50_ns / c.p50_ns).toFixed(2)} (bar ≤ 1.3) ${p.p50_ns <= 1.3 * c.p50_ns ? 'ok' : 'MISSED'}` +
      (j ? `   [js-floor ÷ c-floor = ${(j.p50_ns / c.p50_ns).toFixed(2)}; shm-poll ÷ js-floor = ${(p.p50_ns / j.p50_ns).toFixed(2)}]` : ''));
  }
  if (r.rounds64.length !== 0) {
    const by = (f: (x: IpcReport['rounds64'][number]) => number) => r.rounds64.map((x) => us(f(x))).join(' ');
    bars.push(`  by round (µs p50): c-floor ${by((x) => x.c)} · js-floor ${by((x) => x.js)} · shm-poll ${by((x) => x.poll)}; ` +
      `shm-poll ÷ c-floor ${r.rounds64.map((x) => (x.poll / x.c).toFixed(2)).join(' ')}`);
  }
  if (e && u) bars.push(`shm-event 64 B p50 ÷ unix p50 = ${(e.p50_ns / u.p50_ns).toFixed(3)} (bar ≤ 0.333) ${e.p50_ns * 3 <= u.p50_ns ? 'ok' : 'MISSED'}`);
  const s64 = thr('shm-poll', 64);
  if (s64) bars.push(`shm-poll 64 B streaming = ${rate(s64.msgs_per_sec)}msg/s (bar ≥ 10 M) ${s64.msgs_per_sec >= 10e6 ? 'ok' : 'MISSED'}`);
  const s1m = thr('shm-poll', 1 << 20); const m1m = thr('memcpy', 1 << 20);
  if (s1m && m1m) bars.push(`shm-poll 1 MiB = ${((100 * s1m.bytes_per_sec) / m1m.bytes_per_sec).toFixed(1)}% of memcpy (bar ≥ 50%) ${s1m.bytes_per_sec * 2 >= m1m.bytes_per_sec ? 'ok' : 'MISSED'}`);
  lines.push('', `Idle event-driven channel: ${r.idle.parentPct.toFixed(2)}% CPU (this process), ${r.idle.peerPct.toFixed(2)}% (peer)`);
  bars.push(`idle channel CPU = ${Math.max(r.idle.parentPct, r.idle.peerPct).toFixed(2)}% (bar < 1%) ${Math.max(r.idle.parentPct, r.idle.peerPct) < 1 ? 'ok' : 'MISSED'}`);
  if (bars.length) lines.push('', 'Bars (issue #2)', ...bars.map((b) => `  ${b}`));
  return lines.join('\n');
}
