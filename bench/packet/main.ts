/**
 * `kbypass bench packet`: packets/s of 64 B UDP datagrams on a veth pair between two network namespaces made for
 * the run (testbed.ts), receiving and sending, on four paths (protocol.ts): AF_XDP in TypeScript, PACKET_MMAP in
 * TypeScript, node:dgram, and the C floor on the same AF_XDP set-up, in one run.
 *
 * RX: the C floor's generator (`kbypass-xdp-floor gen`: BPF_PROG_TEST_RUN with live frames) floods from nsA while
 * the path under test receives in nsB; the rate counts from the first packet for `seconds`. AF_XDP receivers get the redirect program in
 * native mode on nsB's veth; PACKET_MMAP and node:dgram see the same flood through the kernel's stack.
 * TX: the path under test sends from nsA as fast as it can for `seconds`; nsB's veth drops every frame in an
 * XDP program (native mode), so the link is never the limit; the rate is frames the kernel completed.
 * Each figure is the median of `trials` runs. The paths run one after another, never together.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { progressReporter } from '../progress';
import { createTestbed, nodeIn, runIn, testbedSupport, type NsProcess, type Testbed } from './testbed';
import { DST_PORT, PATHS, PAYLOAD_BYTES, SRC_PORT, type PacketPath, type PeerArgs, type PeerDone } from './protocol';

export interface PacketBenchOptions {
  /** One 1.5 s trial per figure instead of three of 3 s (about 25 s in all, against 90 s). Default false. */
  readonly quick?: boolean;
  /** Progress lines go here (null: none). Default process.stderr. */
  readonly progress?: NodeJS.WritableStream | null;
}

export interface PacketRow { path: PacketPath; bytes: number; pps: number }
export interface PacketReport {
  rx: PacketRow[];
  tx: PacketRow[];
  /** Every trial's rate, per direction and path. */
  trials: { rx: Record<PacketPath, number[]>; tx: Record<PacketPath, number[]> };
  seconds: number;
}

const root = path.resolve(__dirname, '..', '..', '..');
const FLOOR = path.join(root, 'build', 'Release', 'kbypass-xdp-floor');
const RX_CHILD = path.join(__dirname, 'peer-rx.js');
const TX_CHILD = path.join(__dirname, 'peer-tx.js');
const SINK_CHILD = path.join(__dirname, 'sink.js');
const BATCH = 64;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : ((s[m - 1]! + s[m]!) / 2);
};

function frameArgs(tb: Testbed): string[] {
  return ['--src-mac', tb.macA, '--dst-mac', tb.macB, '--src-ip', tb.ipA, '--dst-ip', tb.ipB,
    '--src-port', String(SRC_PORT), '--dst-port', String(DST_PORT), '--payload', String(PAYLOAD_BYTES)];
}

function floorArgs(tb: Testbed, mode: 'rx' | 'tx', seconds: number): string[] {
  if (mode === 'rx') return ['rx', '--if', tb.ifB, '--mode', 'native', '--seconds', String(seconds), '--batch', String(BATCH)];
  return ['tx', '--if', tb.ifA, '--seconds', String(seconds), ...frameArgs(tb), '--batch', String(BATCH)];
}

function peerArgs(tb: Testbed, p: PacketPath, ifname: string, seconds: number): string {
  const a: PeerArgs = { path: p, ifname, seconds, srcMac: tb.macA, dstMac: tb.macB, srcIp: tb.ipA, dstIp: tb.ipB, payload: PAYLOAD_BYTES, batch: BATCH };
  return JSON.stringify(a);
}

async function resultOf(child: NsProcess, label: string, timeoutMs: number): Promise<number> {
  for (;;) {
    const line = await child.nextJson<Partial<PeerDone> & { pps?: number; ready?: boolean }>(timeoutMs);
    if (line.ready) continue;
    if (typeof line.pps !== 'number' || !Number.isFinite(line.pps)) throw new Error(`${label}: no rate in ${JSON.stringify(line)}`);
    return line.pps;
  }
}

async function rxTrial(tb: Testbed, p: PacketPath, seconds: number): Promise<number> {
  const receiver = p === 'xdp-c'
    ? runIn(tb.nsB, FLOOR, floorArgs(tb, 'rx', seconds), { timeoutMs: (seconds + 30) * 1000 })
    : nodeIn(tb.nsB, RX_CHILD, [peerArgs(tb, p, tb.ifB, seconds)], { timeoutMs: (seconds + 30) * 1000 });
  let sender: NsProcess | null = null;
  try {
    if (p === 'xdp-c') await new Promise((r) => setTimeout(r, 500)); // the floor prints nothing until done
    else await receiver.nextJson(15_000);
    sender = runIn(tb.nsA, FLOOR, ['gen', '--if', tb.ifA, '--seconds', String(seconds + 12), ...frameArgs(tb)], { timeoutMs: (seconds + 30) * 1000 });
    return await resultOf(receiver, `rx ${p}`, (seconds + 15) * 1000);
  } finally {
    sender?.kill('SIGKILL');
    receiver.kill('SIGKILL');
    await sender?.result;
    await receiver.result;
  }
}

async function txTrial(tb: Testbed, p: PacketPath, seconds: number): Promise<number> {
  const sender = p === 'xdp-c'
    ? runIn(tb.nsA, FLOOR, floorArgs(tb, 'tx', seconds), { timeoutMs: (seconds + 30) * 1000 })
    : nodeIn(tb.nsA, TX_CHILD, [peerArgs(tb, p, tb.ifA, seconds)], { timeoutMs: (seconds + 30) * 1000 });
  try {
    return await resultOf(sender, `tx ${p}`, (seconds + 15) * 1000);
  } finally {
    sender.kill('SIGKILL');
    await sender.result;
  }
}

export async function runPacketBench(opts: PacketBenchOptions = {}): Promise<PacketReport> {
  const support = testbedSupport();
  if (!support.ok) throw new Error(`kbypass bench packet needs two network namespaces and a veth pair: ${support.reason}`);
  if (!fs.existsSync(FLOOR)) throw new Error(`the C floor is not built (${FLOOR}): run \`npm rebuild kbypass\``);
  const quick = opts.quick === true;
  const trials = quick ? 1 : 3;
  const seconds = quick ? 1.5 : 3;
  const out = opts.progress === undefined ? process.stderr : opts.progress;
  const { step, done } = progressReporter(out, 2 * PATHS.length * trials);
  const started = Date.now();
  const tb = createTestbed({ gro: true });
  const rxT = Object.fromEntries(PATHS.map((p) => [p, [] as number[]])) as Record<PacketPath, number[]>;
  const txT = Object.fromEntries(PATHS.map((p) => [p, [] as number[]])) as Record<PacketPath, number[]>;
  try {
    for (let t = 0; t < trials; t++) {
      for (const p of PATHS) {
        step(`rx ${p} (trial ${t + 1}/${trials}, ${seconds} s)`);
        rxT[p].push(await rxTrial(tb, p, seconds));
      }
    }
    const sink = nodeIn(tb.nsB, SINK_CHILD, [tb.ifB], { keepStdin: true, timeoutMs: 600_000 });
    try {
      await sink.nextJson(15_000);
      for (let t = 0; t < trials; t++) {
        for (const p of PATHS) {
          step(`tx ${p} (trial ${t + 1}/${trials}, ${seconds} s)`);
          txT[p].push(await txTrial(tb, p, seconds));
        }
      }
    } finally {
      sink.child.stdin?.end();
      sink.kill('SIGKILL');
      await sink.result;
    }
  } finally {
    done();
    tb.destroy();
  }
  const rows = (r: Record<PacketPath, number[]>): PacketRow[] => PATHS.map((p) => ({ path: p, bytes: PAYLOAD_BYTES, pps: Math.round(median(r[p])) }));
  return { rx: rows(rxT), tx: rows(txT), trials: { rx: rxT, tx: txT }, seconds: (Date.now() - started) / 1000 };
}
