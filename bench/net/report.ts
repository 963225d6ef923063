/**
 * `kbypass bench net`'s results: the JSON shape (one entry per transport in each array, nothing else) and the
 * terminal report (the tables, with the details a reader needs to trust them, then the bars).
 */
import { evaluateBars, formatBar } from './bars';
import type { BypassEvidence } from './bypass';
import { TRANSPORTS, type Transport } from './protocol';

export interface EchoRow { transport: Transport; bytes: number; p50_ns: number; p99_ns: number }
export interface HttpRow { transport: Transport; requests_per_sec: number }
export interface BulkRow { transport: Transport; bytes_per_sec: number }
export interface NetResult { echo: EchoRow[]; http: HttpRow[]; bulk: BulkRow[] }

/** What the terminal report shows besides the JSON's figures. */
export interface NetDetails {
  echo: Record<Transport, { round_trips: number; warmup: number; capped: boolean }>;
  /** `rounds`: each round's requests/s, in order. */
  http: Record<Transport, { requests: number; duration_sec: number; connections: number; rounds: number[] }>;
  /** The median transfer's figures; `runs`: every transfer's bytes/s, in order. */
  bulk: Record<Transport, { bytes: number; secs: number; server_secs: number; runs: number[] }>;
  /** The kbypass runs' debug lines: client connects via kbypass and server accepts, per workload. */
  bypass: Record<'echo' | 'http' | 'bulk', BypassEvidence>;
}

export interface NetReport extends NetResult { details: NetDetails }

/** The --json object: exactly `{"echo":[…],"http":[…],"bulk":[…]}`, transports in TRANSPORTS order, keys in order. */
export function toJson(r: NetResult): string {
  const order = <T extends { transport: Transport }>(rows: T[]) => TRANSPORTS.flatMap((t) => rows.filter((x) => x.transport === t));
  return JSON.stringify({
    echo: order(r.echo).map((x) => ({ transport: x.transport, bytes: x.bytes, p50_ns: x.p50_ns, p99_ns: x.p99_ns })),
    http: order(r.http).map((x) => ({ transport: x.transport, requests_per_sec: x.requests_per_sec })),
    bulk: order(r.bulk).map((x) => ({ transport: x.transport, bytes_per_sec: x.bytes_per_sec })),
  });
}

const us = (ns: number) => (ns / 1000).toFixed(ns < 10_000 ? 3 : 1);
const size = (b: number) => (b >= 1 << 30 ? `${b / (1 << 30)} GiB` : b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
const rate = (v: number) => (v >= 1e9 ? `${(v / 1e9).toFixed(2)} G` : v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)} k` : v.toFixed(0));
const ratio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '-');

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt)].join('\n');
}

export function formatNetReport(r: NetReport): string {
  const d = r.details;
  const tcpEcho = r.echo.find((x) => x.transport === 'tcp')?.p50_ns ?? NaN;
  const tcpHttp = r.http.find((x) => x.transport === 'tcp')?.requests_per_sec ?? NaN;
  const tcpBulk = r.bulk.find((x) => x.transport === 'tcp')?.bytes_per_sec ?? NaN;
  const e0 = d.echo.tcp;
  const h0 = d.http.tcp;
  const b0 = d.bulk.tcp;
  const lines = [
    `Echo round trip (µs; client and server processes; process.hrtime.bigint() once per round trip; ` +
      `${e0.round_trips} round trips after ${e0.warmup} warm-up)`,
    table(['transport', 'size', 'p50', 'p99', 'tcp÷this'], r.echo.map((x) => [x.transport, size(x.bytes), us(x.p50_ns), us(x.p99_ns), ratio(tcpEcho / x.p50_ns)])),
    ...TRANSPORTS.filter((t) => d.echo[t].capped).map((t) => `  (${t}: time cap reached after ${d.echo[t].round_trips} round trips)`),
    '',
    `HTTP/1.1 keep-alive, node:http hello world (autocannon in its own process, ${h0.connections} connections, ` +
      `${h0.duration_sec.toFixed(1)} s per transport in ${h0.rounds.length} round${h0.rounds.length === 1 ? '' : 's'}, transports alternating)`,
    table(['transport', 'requests/s', 'requests', '×tcp', 'each round'], r.http.map((x) => [x.transport, rate(x.requests_per_sec), String(d.http[x.transport].requests), ratio(x.requests_per_sec / tcpHttp),
      d.http[x.transport].rounds.map(rate).join(' ')])),
    '',
    `Bulk transfer, ${size(b0.bytes)} piped in 64 KiB chunks (client: 'connect' to the server's acknowledgement; ` +
      `the median of ${b0.runs.length} transfer${b0.runs.length === 1 ? '' : 's'} per transport, transports alternating)`,
    table(['transport', 'bytes/s', 'seconds', 'server s', '×tcp', 'each transfer'], r.bulk.map((x) => [x.transport, `${rate(x.bytes_per_sec)}B/s`, d.bulk[x.transport].secs.toFixed(3), d.bulk[x.transport].server_secs.toFixed(3), ratio(x.bytes_per_sec / tcpBulk),
      d.bulk[x.transport].runs.map((v) => `${rate(v)}B/s`).join(' ')])),
    '',
    'kbypass runs (KBYPASS_DEBUG lines): client connects via kbypass / server accepts via kbypass: ' +
      (['echo', 'http', 'bulk'] as const).map((w) => `${w} ${d.bypass[w].viaKbypass}/${d.bypass[w].accepts}`).join(', ') +
      '; via tcp: none',
    '',
    'Bars (kbypass/net against TCP)',
    ...evaluateBars(r).map((b) => `  ${formatBar(b)}`),
  ];
  return lines.join('\n');
}
