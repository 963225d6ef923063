/**
 * `kbypass perf <test> [server] [options]`: perftest's tools over kbypass/verbs. Started like perftest — the
 * server with no address, the client with the server's — or both at once with `--local`. The client prints
 * perftest's table (or `--json`); with `--local` it also measures the floor in the same run (the C ping-pong
 * for latency tests, single-core memcpy for bandwidth tests) and prints the ratio.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { KbypassError } from '../errors';
import { WrOpcode, getDeviceList } from '../verbs';
import { isLatencyTest, parsePerfArgs, perfUsage, sizesFor, type PerfOptions, type PerfTest } from './args';
import { bwRow, formatBwHeader, formatBwRow, formatLatencyHeader, formatLatencyRow, halvesRoundTrip, jsonReport, latencyRow, peakMessageNs, RESULT_LINE, type BwRow, type LatencyRow } from './report';
import { bwClient, bwServer, oneSidedLat, sendLat, writeLat } from './loops';
import { bwClientEv, bwServerEv, sendLatEv } from './loops-events';
import { acceptOne, connectTo, perfAddress, specOf, type PerfSession, type RunSpec } from './session';

const OPCODE: Record<PerfTest, number> = {
  send_lat: WrOpcode.SEND, write_lat: WrOpcode.RDMA_WRITE, read_lat: WrOpcode.RDMA_READ, atomic_lat: WrOpcode.ATOMIC_FETCH_AND_ADD,
  send_bw: WrOpcode.SEND, write_bw: WrOpcode.RDMA_WRITE, read_bw: WrOpcode.RDMA_READ,
};

/** The loops that wait for completions: busy-polling (loops.ts) or sleeping on events (-e, loops-events.ts). */
const BUSY_LOOPS = { sendLat, oneSidedLat, bwClient, bwServer };
const EVENT_LOOPS: { [K in keyof typeof BUSY_LOOPS]: (...a: Parameters<typeof BUSY_LOOPS[K]>) => ReturnType<typeof BUSY_LOOPS[K]> | Promise<ReturnType<typeof BUSY_LOOPS[K]>> } = {
  // A one-sided WR completes inside postSend: its completion is there at the first poll, nothing to sleep for.
  sendLat: sendLatEv, oneSidedLat, bwClient: bwClientEv, bwServer: bwServerEv,
};

/** Iterations run before measuring (JIT warm-up), per size (four times that for the bandwidth tests). */
const warmupFor = (iters: number): number => Math.min(iters, 1000);

function opcodeOf(spec: RunSpec): number {
  if (spec.test === 'atomic_lat') return spec.atomic === 1 ? WrOpcode.ATOMIC_CMP_AND_SWP : WrOpcode.ATOMIC_FETCH_AND_ADD;
  return OPCODE[spec.test];
}

/** Run one size on either end; the client gets a row. With -e (spec.events) the loops sleep on CQ events. */
async function runSize(s: PerfSession, spec: RunSpec, client: boolean, size: number, clockNs: number, noPeak: boolean): Promise<LatencyRow | BwRow | null> {
  const n = spec.iterations;
  const op = opcodeOf(spec);
  // (Awaiting a busy loop's plain result costs one microtask per run, not per message.)
  const loops = spec.events ? EVENT_LOOPS : BUSY_LOOPS;
  if (isLatencyTest(spec.test)) {
    const w = warmupFor(n);
    const samples = spec.test === 'write_lat' ? writeLat(s, client, size, n, w, clockNs)
      : spec.test === 'send_lat' ? await loops.sendLat(s, client, size, n, w, clockNs)
        : await loops.oneSidedLat(s, client, op, size, n, w, clockNs);
    return client ? latencyRow(size, samples, halvesRoundTrip(spec.test), n) : null;
  }
  // A warm-up pass first (not measured), as the latency tests do: the JIT compiles the loop.
  const w = warmupFor(n) * 4;
  if (!client) { await loops.bwServer(s, op, w); await loops.bwServer(s, op, n); return null; }
  await loops.bwClient(s, op, size, w, spec.txDepth, spec.cqMod, false);
  const r = await loops.bwClient(s, op, size, n, spec.txDepth, spec.cqMod, !noPeak);
  const peak = r.posted !== null && r.completed !== null ? peakMessageNs(r.posted.map((t) => t * 1e6), r.completed.map((t) => t * 1e6), spec.cqMod) : undefined;
  return bwRow(size, n, r.totalNs, peak);
}

function sizesOf(spec: RunSpec): number[] {
  return sizesFor({ test: spec.test, all: spec.all, size: spec.size });
}

async function server(o: PerfOptions, address: string, out: (s: string) => void): Promise<void> {
  const { s, spec } = await acceptOne(address, o.device, () => out(`\n************************************\n* Waiting for client to connect... *\n************************************\n  (${address})\n`));
  try {
    for (const size of sizesOf(spec)) await runSize(s, spec, false, size, 0, true);
  } finally {
    await s.close();
  }
}

async function client(o: PerfOptions, address: string): Promise<Array<LatencyRow | BwRow>> {
  const spec = specOf(o);
  const s = await connectTo(address, o.device, spec);
  // The cost of one clock read, taken off each latency sample as `bench ipc` does.
  const clockNs = (await import('../../bench/ipc/runs')).jsClockCost();
  const rows: Array<LatencyRow | BwRow> = [];
  try {
    for (const size of sizesOf(spec)) {
      if (!o.json) process.stderr.write(`\r  running ${o.test} ${size} B …`);
      rows.push((await runSize(s, spec, true, size, clockNs, o.noPeak))!);
    }
    if (!o.json) process.stderr.write('\r\x1b[K');
  } finally {
    await s.close();
  }
  return rows;
}

/** --local: start the server as a child process and wait until it listens. */
function startServer(o: PerfOptions): Promise<import('node:child_process').ChildProcess> {
  const bin = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');
  const args = [bin, 'perf', o.test, '-p', String(o.port), '-d', o.device];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new KbypassError('ETIMEDOUT', 'the local perf server did not start')); }, 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('Waiting for client')) { clearTimeout(t); child.stdout!.resume(); resolve(child); }
    });
    child.once('exit', (code) => { clearTimeout(t); reject(new KbypassError('ERR_KBYPASS_PERF_SERVER', `the local perf server exited (${code})`)); });
  });
}

export interface Floor { kind: 'c-floor' | 'memcpy'; bytes: number; before: number; after: number; unit: string }

/**
 * The floor for `bytes`: the C ping-pong's half round trip (µs, p50) for send_lat and write_lat, single-core
 * memcpy (MiB/s) for the bandwidth tests; null for the one-sided latency tests.
 */
async function measureFloor(o: PerfOptions, bytes: number): Promise<number | null> {
  const { latencyFloor, memcpyFloor } = await import('../../bench/ipc/runs');
  if (o.test === 'write_lat' || o.test === 'send_lat') {
    const { h } = await latencyFloor(bytes, 200_000, 20_000);
    return h.percentile(50) / 2 / 1000;
  }
  if (!isLatencyTest(o.test)) return (await memcpyFloor(bytes, 2)) / (1024 * 1024);
  return null;
}

/** The ratio of a row to the floor (the mean of the measures taken before and after the test). */
function floorRatio(f: Floor, row: LatencyRow | BwRow): number {
  const floor = (f.before + f.after) / 2;
  return f.kind === 'c-floor' ? (row as LatencyRow).t_typical_us / floor : (row as BwRow).bw_avg_mib_s / floor;
}

/**
 * --local: a server process and this client, with the floor measured right before and right after the test (the
 * VM may move its vCPUs between runs). Used by `kbypass perf --local` and `kbypass bench verbs`.
 */
export async function runLocal(o: PerfOptions): Promise<{ rows: Array<LatencyRow | BwRow>; floor: Floor | null; ratio: number | null }> {
  const address = perfAddress(null, o.port);
  const floorBytes = sizesFor(o)[0]!;
  const before = await measureFloor(o, floorBytes);
  const child = await startServer(o);
  let rows: Array<LatencyRow | BwRow>;
  try {
    rows = await client(o, address);
  } finally {
    if (child.exitCode === null) {
      await new Promise<void>((r) => { const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 5000); child.once('exit', () => { clearTimeout(t); r(); }); });
    }
  }
  const after = before !== null ? await measureFloor(o, floorBytes) : null;
  const floor: Floor | null = before !== null && after !== null
    ? { kind: o.test.endsWith('_lat') ? 'c-floor' : 'memcpy', bytes: floorBytes, before, after,
      unit: o.test.endsWith('_lat') ? 'usec (half round trip, p50)' : 'MiB/sec (single-core memcpy)' }
    : null;
  return { rows, floor, ratio: floor !== null && rows[0] !== undefined ? floorRatio(floor, rows[0]) : null };
}

/** The perf command; returns the exit code (2 for bad usage). */
export async function runPerf(argv: string[]): Promise<number> {
  let o: PerfOptions;
  try {
    o = parsePerfArgs(argv);
  } catch (e) {
    process.stderr.write(`kbypass perf: ${(e as Error).message}\n\n${perfUsage()}`);
    return 2;
  }
  if (o.help) { process.stdout.write(perfUsage(o.test)); return 0; }
  if (o.duration !== undefined) { process.stderr.write('kbypass perf: -D/--duration is not supported yet; use -n\n'); return 2; }
  if (!getDeviceList().some((d) => d.name === o.device)) {
    process.stderr.write(`kbypass perf: no RDMA device named '${o.device}' (devices: ${getDeviceList().map((d) => d.name).join(', ')})\n`);
    return 1;
  }
  let address: string;
  try { address = perfAddress(o.local ? null : o.server, o.port); } catch (e) { process.stderr.write(`kbypass perf: ${(e as Error).message}\n`); return 2; }
  const out = (s: string) => process.stdout.write(s);
  if (o.server === null && !o.local) { await server(o, address, out); return 0; }
  let rows: Array<LatencyRow | BwRow>;
  let floor: Floor | null = null;
  if (o.local) {
    ({ rows, floor } = await runLocal(o));
  } else {
    rows = await client(o, address);
  }
  const lat = isLatencyTest(o.test);
  if (o.json) {
    const obj = JSON.parse(lat ? jsonReport('latency', rows as LatencyRow[], o) : jsonReport('bw', rows as BwRow[], o)) as Record<string, unknown>;
    if (floor !== null && rows[0] !== undefined) {
      obj['floor'] = { kind: floor.kind, bytes: floor.bytes, before: floor.before, after: floor.after, ratio: floorRatio(floor, rows[0]) };
    }
    out(`${JSON.stringify(obj)}\n`);
    return 0;
  }
  out(`${lat ? formatLatencyHeader(o) : formatBwHeader(o)}\n`);
  for (const r of rows) out(`${lat ? formatLatencyRow(r as LatencyRow) : formatBwRow(r as BwRow)}\n`);
  out(`${RESULT_LINE}\n`);
  if (floor !== null && rows[0] !== undefined) {
    const what = floor.kind === 'c-floor' ? 't_typical' : 'BW average';
    const d = floor.kind === 'c-floor' ? 3 : 2;
    out(` floor: ${floor.kind} ${floor.bytes} B = ${floor.before.toFixed(d)} before, ${floor.after.toFixed(d)} after the test, ${floor.unit}\n`);
    out(` ${what} / floor = ${floorRatio(floor, rows[0]).toFixed(2)} (${floor.bytes} B, against the mean of the two)\n`);
  }
  return 0;
}
