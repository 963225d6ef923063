/**
 * `kbypass bench verbs`: the verbs figures the project tracks, in one run — write_lat and send_lat at 8 B against
 * the C ping-pong floor, write_bw at 64 KiB against single-core memcpy, send_bw at 64 B — each through
 * `kbypass perf --local --json` (a client process and its server process, new for each test, as perftest's tools
 * are run), with the floor measured right before and after each.
 *
 * Why new processes: run inside this one, after the bare JavaScript ping-pong had run here, send_bw measured
 * 1.96–3.64 M messages/s where the same tests without it measured 2.72–6.26 (docs/BENCHMARKS.md, 2026-12-03,
 * "A CQ's private lane"). A test's figures should not depend on what ran before it in the same process.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { BwRow, LatencyRow } from '../../src/perf/report';
import { jsClockCost, latencyJsFloor } from '../ipc/runs';

const execFileP = promisify(execFile);
const CLI = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');

/** What `kbypass perf --local --json` prints (the parts read here). */
interface PerfJson { rows: Array<LatencyRow | BwRow>; floor?: { before: number; after: number; ratio: number } }

export interface VerbsBenchOptions {
  /** Fewer iterations (about 20 s). Default false. */
  quick?: boolean;
  /** Progress lines go here. Default stderr. */
  progress?: (line: string) => void;
}

export interface VerbsBenchResult {
  /**
   * `js_floor_us`: the bare JavaScript ping-pong of `bench ipc` (no verbs: a copy, a store, an Atomics.load spin)
   * at 8 B, half its round trip at p50, measured right before and right after the write_lat test (the mean);
   * `js_floor_ratio` is that against the C floor: no JavaScript data path can have a smaller ratio in this run.
   */
  write_lat: { t_typical_us: number; floor_us: number; ratio: number; js_floor_us: number; js_floor_ratio: number };
  send_lat: { t_typical_us: number; ratio_to_write_lat: number; floor_us: number };
  write_bw: { bw_avg_mib_s: number; memcpy_mib_s: number; ratio: number };
  send_bw: { msg_rate_mpps: number };
}

let port = 21000 + (process.pid % 10000);

async function run(args: string[], progress: (l: string) => void) {
  const argv = ['perf', ...args, '--local', '-p', String(++port), '--json'];
  progress(`kbypass ${argv.join(' ')}`);
  let out: string;
  try {
    ({ stdout: out } = await execFileP(process.execPath, [CLI, ...argv], { timeout: 600_000, maxBuffer: 1 << 20 }));
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new Error(`kbypass ${argv.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
  const r = JSON.parse(out) as PerfJson;
  const row = r.rows[0];
  if (row === undefined) throw new Error(`kbypass ${argv.join(' ')} printed no result row`);
  const floor = r.floor === undefined ? NaN : (r.floor.before + r.floor.after) / 2;
  return { row, floor, ratio: r.floor?.ratio ?? NaN };
}

export async function runVerbsBench(opts: VerbsBenchOptions = {}): Promise<VerbsBenchResult> {
  const progress = opts.progress ?? ((l: string) => process.stderr.write(`  ${l}\n`));
  const q = opts.quick === true;
  const clockNs = jsClockCost();
  const jsFloor = async (): Promise<number> => {
    progress('js-floor 8 B (the bare JavaScript ping-pong of bench ipc)');
    return (await latencyJsFloor(8, q ? 50_000 : 200_000, 20_000, clockNs)).percentile(50) / 2 / 1000;
  };
  const jsBefore = await jsFloor();
  const wl = await run(['write_lat', '-s', '8', '-n', q ? '50000' : '200000'], progress);
  const jsAfter = await jsFloor();
  const js = (jsBefore + jsAfter) / 2;
  const sl = await run(['send_lat', '-s', '8', '-n', q ? '50000' : '200000'], progress);
  const wb = await run(['write_bw', '-s', '65536', '-n', q ? '50000' : '300000'], progress);
  const sb = await run(['send_bw', '-s', '64', '-n', q ? '500000' : '3000000'], progress);
  const w = (wl.row as LatencyRow).t_typical_us;
  return {
    write_lat: { t_typical_us: w, floor_us: wl.floor, ratio: wl.ratio, js_floor_us: js, js_floor_ratio: js / wl.floor },
    send_lat: { t_typical_us: (sl.row as LatencyRow).t_typical_us, ratio_to_write_lat: (sl.row as LatencyRow).t_typical_us / w, floor_us: sl.floor },
    write_bw: { bw_avg_mib_s: (wb.row as BwRow).bw_avg_mib_s, memcpy_mib_s: wb.floor, ratio: wb.ratio },
    send_bw: { msg_rate_mpps: (sb.row as BwRow).msg_rate_mpps },
  };
}

const mark = (ok: boolean): string => (ok ? 'ok' : 'MISSED');

export function formatVerbsReport(r: VerbsBenchResult): string {
  return [
    'kbypass/verbs on device shm0 (two processes; floors measured right before and after each test)',
    `  write_lat 8 B   t_typical ${r.write_lat.t_typical_us.toFixed(3)} us   C floor (half round trip) ${r.write_lat.floor_us.toFixed(3)} us   ratio ${r.write_lat.ratio.toFixed(2)}`,
    `                  bare JavaScript ping-pong (no verbs) ${r.write_lat.js_floor_us.toFixed(3)} us = ${r.write_lat.js_floor_ratio.toFixed(2)} x the C floor`,
    `  send_lat 8 B    t_typical ${r.send_lat.t_typical_us.toFixed(3)} us   ${r.send_lat.ratio_to_write_lat.toFixed(2)} x write_lat`,
    `  write_bw 64 KiB ${r.write_bw.bw_avg_mib_s.toFixed(0)} MiB/s   memcpy ${r.write_bw.memcpy_mib_s.toFixed(0)} MiB/s   ratio ${r.write_bw.ratio.toFixed(2)}`,
    `  send_bw 64 B    ${r.send_bw.msg_rate_mpps.toFixed(2)} M messages/s`,
    '',
    'Bars (issue #3)',
    `  write_lat 8 B t_typical / C floor = ${r.write_lat.ratio.toFixed(2)} (bar <= 1.5) ${mark(r.write_lat.ratio <= 1.5)}` +
      (r.write_lat.js_floor_ratio > 1.5 ? `   [out of reach in this run: the bare JavaScript ping-pong alone is ${r.write_lat.js_floor_ratio.toFixed(2)} x]` : ''),
    `  send_lat 8 B / write_lat = ${r.send_lat.ratio_to_write_lat.toFixed(2)} (bar <= 2) ${mark(r.send_lat.ratio_to_write_lat <= 2)}`,
    `  write_bw 64 KiB / memcpy = ${r.write_bw.ratio.toFixed(2)} (bar >= 0.5) ${mark(r.write_bw.ratio >= 0.5)}`,
    `  send_bw 64 B = ${r.send_bw.msg_rate_mpps.toFixed(2)} M msg/s (bar >= 5) ${mark(r.send_bw.msg_rate_mpps >= 5)}`,
    '',
  ].join('\n');
}
