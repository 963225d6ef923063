/**
 * Combining the alternating rounds of `bench net` (plan.ts) into one figure per transport:
 * - http: the rounds' requests/s, weighted by their durations (all rounds are equally long, so their mean);
 * - bulk: the median transfer (by bytes/s), with every transfer's bytes/s kept for the report;
 * - the preload's evidence of each round, added up (each round was already checked on its own, runs.ts).
 */
import type { BypassEvidence } from './bypass';
import type { BulkRun, HttpRun } from './runs';

export interface HttpRounds { requests_per_sec: number; requests: number; duration_sec: number; rounds: number[]; evidence: BypassEvidence }
export interface BulkRounds { median: BulkRun; runs: number[]; evidence: BypassEvidence }

export function sumEvidence(list: readonly BypassEvidence[]): BypassEvidence {
  const e: BypassEvidence = { viaKbypass: 0, viaTcp: 0, tcpReasons: [], accepts: 0 };
  for (const x of list) {
    e.viaKbypass += x.viaKbypass;
    e.viaTcp += x.viaTcp;
    e.accepts += x.accepts;
    for (const r of x.tcpReasons) if (e.tcpReasons.length < 5) e.tcpReasons.push(r);
  }
  return e;
}

export function combineHttp(runs: readonly HttpRun[]): HttpRounds {
  if (runs.length === 0) throw new RangeError('combineHttp: no rounds');
  let weighted = 0;
  let requests = 0;
  let secs = 0;
  for (const r of runs) { weighted += r.requests_per_sec * r.duration_sec; requests += r.requests; secs += r.duration_sec; }
  return {
    requests_per_sec: secs > 0 ? weighted / secs : NaN, requests, duration_sec: secs,
    rounds: runs.map((r) => r.requests_per_sec), evidence: sumEvidence(runs.map((r) => r.evidence)),
  };
}

/** The median transfer by bytes/s (of an even count, the lower of the middle two). */
export function medianBulk(runs: readonly BulkRun[]): BulkRounds {
  if (runs.length === 0) throw new RangeError('medianBulk: no transfers');
  const rate = (r: BulkRun) => r.bytes / r.secs;
  const sorted = [...runs].sort((a, b) => rate(a) - rate(b));
  return { median: sorted[(sorted.length - 1) >> 1]!, runs: runs.map(rate), evidence: sumEvidence(runs.map((r) => r.evidence)) };
}
