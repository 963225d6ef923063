/**
 * `kbypass bench packet`'s output: the JSON object the issue asks for, and a table with the bars.
 */
import type { PacketPath } from './protocol';
import type { PacketReport, PacketRow } from './main';

/** Exactly {"rx":[{path,bytes,pps}…],"tx":[…]}. */
export function toJson(r: PacketReport): string {
  const rows = (xs: PacketRow[]) => xs.map((x) => ({ path: x.path, bytes: x.bytes, pps: x.pps }));
  return JSON.stringify({ rx: rows(r.rx), tx: rows(r.tx) });
}

export interface Bar { what: string; ratio: number; need: string; ok: boolean }

/** The bars: AF_XDP in JS ≥ 3 × node:dgram and ≥ 80 % of the C floor, receiving and sending. */
export function bars(r: PacketReport): Bar[] {
  const out: Bar[] = [];
  for (const dir of ['rx', 'tx'] as const) {
    const get = (p: PacketPath) => r[dir].find((x) => x.path === p)?.pps ?? 0;
    const js = get('xdp-js');
    const vsDgram = get('dgram') > 0 ? js / get('dgram') : 0;
    const vsC = get('xdp-c') > 0 ? js / get('xdp-c') : 0;
    out.push({ what: `${dir} xdp-js / dgram`, ratio: vsDgram, need: '>= 3', ok: vsDgram >= 3 });
    out.push({ what: `${dir} xdp-js / xdp-c`, ratio: vsC, need: '>= 0.8', ok: vsC >= 0.8 });
  }
  return out;
}

const mpps = (n: number) => `${(n / 1e6).toFixed(3)} Mpps`;

export function formatPacketReport(r: PacketReport): string {
  const lines: string[] = [];
  lines.push('kbypass bench packet: 64 B UDP payloads, veth between two network namespaces (median of the trials)');
  lines.push('');
  lines.push(`${'path'.padEnd(10)} ${'rx'.padStart(14)} ${'tx'.padStart(14)}`);
  for (const row of r.rx) {
    const tx = r.tx.find((x) => x.path === row.path);
    lines.push(`${row.path.padEnd(10)} ${mpps(row.pps).padStart(14)} ${mpps(tx?.pps ?? 0).padStart(14)}`);
  }
  lines.push('');
  for (const b of bars(r)) lines.push(`${b.ok ? 'ok  ' : 'MISS'} ${b.what.padEnd(22)} ${b.ratio.toFixed(2).padStart(6)}  (${b.need})`);
  lines.push('');
  lines.push(`trials (pps): ${JSON.stringify(r.trials)}`);
  lines.push(`${r.seconds.toFixed(0)} s in all`);
  return lines.join('\n');
}
