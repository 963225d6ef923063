/**
 * `kbypass bench verbs`: the verbs figures the project tracks, in one run — write_lat and send_lat at 8 B against
 * the C ping-pong floor, write_bw at 64 KiB against single-core memcpy, send_bw at 64 B — each through
 * `kbypass perf --local` (a server process and a client), with the floor measured right before and after each.
 */
import { parsePerfArgs } from '../../src/perf/args';
import { runLocal } from '../../src/perf/main';
import type { BwRow, LatencyRow } from '../../src/perf/report';

export interface VerbsBenchOptions {
  /** Fewer iterations (about 20 s). Default false. */
  quick?: boolean;
  /** Progress lines go here. Default stderr. */
  progress?: (line: string) => void;
}

export interface VerbsBenchResult {
  write_lat: { t_typical_us: number; floor_us: number; ratio: number };
  send_lat: { t_typical_us: number; ratio_to_write_lat: number; floor_us: number };
  write_bw: { bw_avg_mib_s: number; memcpy_mib_s: number; ratio: number };
  send_bw: { msg_rate_mpps: number };
}

let port = 21000 + (process.pid % 10000);

async function run(args: string[], progress: (l: string) => void) {
  progress(`kbypass perf ${args.join(' ')} --local`);
  const o = parsePerfArgs([...args, '--local', '-p', String(++port)]);
  const r = await runLocal(o);
  const floor = r.floor === null ? NaN : (r.floor.before + r.floor.after) / 2;
  return { row: r.rows[0]!, floor, ratio: r.ratio ?? NaN };
}

export async function runVerbsBench(opts: VerbsBenchOptions = {}): Promise<VerbsBenchResult> {
  const progress = opts.progress ?? ((l: string) => process.stderr.write(`  ${l}\n`));
  const q = opts.quick === true;
  const wl = await run(['write_lat', '-s', '8', '-n', q ? '50000' : '200000'], progress);
  const sl = await run(['send_lat', '-s', '8', '-n', q ? '50000' : '200000'], progress);
  const wb = await run(['write_bw', '-s', '65536', '-n', q ? '50000' : '300000'], progress);
  const sb = await run(['send_bw', '-s', '64', '-n', q ? '500000' : '3000000'], progress);
  const w = (wl.row as LatencyRow).t_typical_us;
  return {
    write_lat: { t_typical_us: w, floor_us: wl.floor, ratio: wl.ratio },
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
    `  send_lat 8 B    t_typical ${r.send_lat.t_typical_us.toFixed(3)} us   ${r.send_lat.ratio_to_write_lat.toFixed(2)} x write_lat`,
    `  write_bw 64 KiB ${r.write_bw.bw_avg_mib_s.toFixed(0)} MiB/s   memcpy ${r.write_bw.memcpy_mib_s.toFixed(0)} MiB/s   ratio ${r.write_bw.ratio.toFixed(2)}`,
    `  send_bw 64 B    ${r.send_bw.msg_rate_mpps.toFixed(2)} M messages/s`,
    '',
    'Bars (issue #3)',
    `  write_lat 8 B t_typical / C floor = ${r.write_lat.ratio.toFixed(2)} (bar <= 1.5) ${mark(r.write_lat.ratio <= 1.5)}`,
    `  send_lat 8 B / write_lat = ${r.send_lat.ratio_to_write_lat.toFixed(2)} (bar <= 2) ${mark(r.send_lat.ratio_to_write_lat <= 2)}`,
    `  write_bw 64 KiB / memcpy = ${r.write_bw.ratio.toFixed(2)} (bar >= 0.5) ${mark(r.write_bw.ratio >= 0.5)}`,
    `  send_bw 64 B = ${r.send_bw.msg_rate_mpps.toFixed(2)} M msg/s (bar >= 5) ${mark(r.send_bw.msg_rate_mpps >= 5)}`,
    '',
  ].join('\n');
}
