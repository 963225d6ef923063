/**
 * `kbypass bench net`: kbypass/net against TCP loopback, in one run, for unmodified node:net / node:http programs
 * (the children, echo.ts, http.ts, bulk.ts): started plain for `tcp`, with `--require <preload>` for `kbypass`.
 * - echo: 64 B round trips between two processes, p50 and p99.
 * - http: HTTP/1.1 keep-alive requests/s, autocannon against a hello-world server (2 rounds of 5 s per transport,
 *   alternating; quick: 1 of 3 s).
 * - bulk: 1 GiB (quick: 256 MiB) piped through a socket, bytes/s (3 transfers per transport, alternating; the
 *   median counts).
 * The transports run one after the other (never together: the two children want the machine's two cores), and a
 * kbypass figure counts only if the preload's debug lines say its connections went via kbypass.
 */
import { progressReporter } from '../progress';
import * as fs from 'node:fs';
import { loadAutocannon } from './autocannon';
import { killChildren, PRELOAD } from './children';
import { planFor } from './plan';
import { TRANSPORTS, type Transport } from './protocol';
import type { NetDetails, NetReport } from './report';
import { combineHttp, medianBulk } from './rounds';
import { runBulk, runEcho, runHttp, type BulkRun, type EchoRun, type HttpRun } from './runs';

export interface NetBenchOptions {
  /** Shorter: one round of 3 s of http per transport, 256 MiB transfers (about 15 s in all, against 30 s). Default false. */
  readonly quick?: boolean;
  /** Progress lines (and the children's stray stderr lines) go here (null: none). Default process.stderr. */
  readonly progress?: NodeJS.WritableStream | null;
  /** The preload for the kbypass runs. Default dist/src/net/preload.js of this package. */
  readonly preload?: string;
}

/** tcp first, then kbypass, workload by workload. */
const ORDER: readonly Transport[] = ['tcp', 'kbypass'];

export async function runNetBench(opts: NetBenchOptions = {}): Promise<NetReport> {
  const onSignal = (sig: NodeJS.Signals): void => {
    killChildren();
    process.stderr.write(`\nkbypass bench net: ${sig}: every child stopped\n`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await run(opts);
  } finally {
    killChildren();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function run(opts: NetBenchOptions): Promise<NetReport> {
  const quick = opts.quick === true;
  const plan = planFor(quick);
  const preload = opts.preload ?? PRELOAD;
  const out = opts.progress === undefined ? process.stderr : opts.progress;
  // Both checked before anything runs: a missing piece fails in a second, not after the tcp half.
  if (!fs.existsSync(preload)) {
    throw new Error(`the kbypass preload is missing (${preload}): build it with \`npx tsc -p tsconfig.json\`; no kbypass figure can be measured without it`);
  }
  loadAutocannon();
  const steps = (1 + plan.http.rounds + plan.bulk.repeats) * ORDER.length;
  const { step: progress, done: endProgress } = progressReporter(out, steps);
  const ctx = { preload, echo: out };

  const echo = {} as Record<Transport, EchoRun>;
  for (const t of ORDER) {
    progress(`echo ${t} ${plan.echo.bytes} B (${plan.echo.roundTrips} round trips)`);
    echo[t] = await runEcho(ctx, t, plan.echo);
  }
  // http and bulk alternate the transports round by round (plan.ts says why).
  const httpRuns: Record<Transport, HttpRun[]> = { kbypass: [], tcp: [] };
  const roundSec = plan.http.durationSec / plan.http.rounds;
  for (let r = 1; r <= plan.http.rounds; r++) {
    for (const t of ORDER) {
      progress(`http ${t} (${plan.http.connections} connections, ${roundSec} s; round ${r} of ${plan.http.rounds})`);
      httpRuns[t].push(await runHttp(ctx, t, { ...plan.http, durationSec: roundSec }));
    }
  }
  const bulkRuns: Record<Transport, BulkRun[]> = { kbypass: [], tcp: [] };
  for (let r = 1; r <= plan.bulk.repeats; r++) {
    for (const t of ORDER) {
      progress(`bulk ${t} ${plan.bulk.bytes >> 20} MiB (transfer ${r} of ${plan.bulk.repeats})`);
      bulkRuns[t].push(await runBulk(ctx, t, plan.bulk));
    }
  }
  endProgress();
  const http = { kbypass: combineHttp(httpRuns.kbypass), tcp: combineHttp(httpRuns.tcp) };
  const bulkAll = { kbypass: medianBulk(bulkRuns.kbypass), tcp: medianBulk(bulkRuns.tcp) };
  const bulk = { kbypass: bulkAll.kbypass.median, tcp: bulkAll.tcp.median };

  const per = <T>(f: (t: Transport) => T) => ({ kbypass: f('kbypass'), tcp: f('tcp') });
  const details: NetDetails = {
    echo: per((t) => ({ round_trips: echo[t].round_trips, warmup: plan.echo.warmup, capped: echo[t].capped })),
    http: per((t) => ({ requests: http[t].requests, duration_sec: http[t].duration_sec, connections: plan.http.connections, rounds: http[t].rounds })),
    bulk: per((t) => ({ bytes: bulk[t].bytes, secs: bulk[t].secs, server_secs: bulk[t].server.secs, runs: bulkAll[t].runs })),
    bypass: { echo: echo.kbypass.evidence, http: http.kbypass.evidence, bulk: bulkAll.kbypass.evidence },
  };
  return {
    echo: TRANSPORTS.map((t) => ({ transport: t, bytes: plan.echo.bytes, p50_ns: echo[t].p50_ns, p99_ns: echo[t].p99_ns })),
    http: TRANSPORTS.map((t) => ({ transport: t, requests_per_sec: Math.round(http[t].requests_per_sec) })),
    bulk: TRANSPORTS.map((t) => ({ transport: t, bytes_per_sec: Math.round(bulk[t].bytes / bulk[t].secs) })),
    details,
  };
}
