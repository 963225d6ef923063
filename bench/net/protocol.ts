/**
 * What `kbypass bench net`'s processes agree on. The parent (main.ts, runs.ts) measures nothing itself: it starts
 * a server child and then a client child (echo.ts, http.ts, bulk.ts), both plain node:net / node:http programs.
 *
 * - A child takes its parameters as one JSON argument (argv[2]: `{"role":"server",...}`).
 * - It speaks one JSON object per line on stdout: a server first says `{"port":N}` once it listens; a client
 *   ends with its result; the bulk server also says what it received.
 * - A server runs until its stdin ends (the parent closes it, or the parent died); every child also gives up on
 *   its own after a hard stop, so none can outlive a stuck run.
 * - Their stderr carries the preload's KBYPASS_DEBUG lines, the proof of which way each connection went.
 */
export type Transport = 'kbypass' | 'tcp';
/** In the order of the JSON output's arrays. */
export const TRANSPORTS: readonly Transport[] = ['kbypass', 'tcp'];

export type Workload = 'echo' | 'http' | 'bulk';
export type Role = 'server' | 'client';

/** A server's first line. */
export interface Ready { port: number }

export interface EchoServerParams { role: 'server' }
export interface EchoClientParams { role: 'client'; port: number; bytes: number; roundTrips: number; warmup: number; capSec: number }
export interface EchoResult {
  /** Round trips timed (fewer than asked only if the time cap came first). */
  round_trips: number;
  capped: boolean;
  p50_ns: number;
  p99_ns: number;
}

export interface HttpServerParams { role: 'server' }
export interface HttpClientParams { role: 'client'; port: number; connections: number; durationSec: number }
export interface HttpResult {
  /** autocannon's Req/Sec average (the mean of its per-second samples). */
  requests_per_sec: number;
  requests: number;
  duration_sec: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  non2xx: number;
}

export interface BulkServerParams { role: 'server'; bytes: number }
export interface BulkClientParams { role: 'client'; port: number; bytes: number; chunk: number; capSec: number }
/** The client's figure: from 'connect' (just before the pipe starts) to the server's acknowledgement. */
export interface BulkResult { bytes: number; secs: number }
/** The server's own count and its first-byte-to-last-byte time. */
export interface BulkServerResult { received: number; secs: number }

export type ServerParams = EchoServerParams | HttpServerParams | BulkServerParams;
export type ClientParams = EchoClientParams | HttpClientParams | BulkClientParams;

export const encodeParams = (p: ServerParams | ClientParams): string => JSON.stringify(p);

export function decodeParams<T extends { role: Role }>(argv: readonly string[]): T {
  const raw = argv[2];
  if (raw === undefined) throw new Error('usage: node <workload>.js \'{"role":"server"|"client",...}\'');
  const p = JSON.parse(raw) as T;
  if (p.role !== 'server' && p.role !== 'client') throw new Error(`bad role in ${raw}`);
  return p;
}
