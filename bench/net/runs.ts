/**
 * One measured run per function: a workload over a transport. Each starts the workload's server child, then
 * its client child with the server's port, takes the client's result, stops the server, and checks the
 * preload's debug lines (bypass.ts) before the figure is returned. Any failure throws; main.ts kills whatever
 * is left.
 */
import { BenchChild } from './children';
import { bypassProblem, evidence, saysKbypass, type BypassEvidence } from './bypass';
import { BODY } from './http';
import type { NetBenchPlan } from './plan';
import type {
  BulkResult, BulkServerResult, ClientParams, EchoResult, HttpResult, Ready, ServerParams, Transport, Workload,
} from './protocol';

/** How long a server may take to say its port, and a child to exit once done. */
const START_MS = 20_000;
const EXIT_MS = 10_000;

export interface RunContext { preload: string; echo?: NodeJS.WritableStream | null }

interface Pair<R> { result: R; server: BenchChild; client: BenchChild; port: number }

/** Start the server, then the client against its port; the client's result once it has exited cleanly. */
async function pair<R>(
  ctx: RunContext, workload: Workload, transport: Transport, serverParams: ServerParams,
  clientParams: (port: number) => ClientParams, resultMs: number,
): Promise<Pair<R>> {
  const common = { workload, transport, preload: ctx.preload, ...(ctx.echo !== undefined ? { echo: ctx.echo } : {}) };
  const server = new BenchChild({ ...common, role: 'server', params: serverParams });
  try {
    const { port } = await server.next<Ready>(START_MS, 'its port');
    if (!Number.isInteger(port) || port <= 0) throw new Error(`${server.label} said port ${String(port)}`);
    const client = new BenchChild({ ...common, role: 'client', params: clientParams(port) });
    try {
      const result = await client.next<R>(resultMs, 'its result');
      await client.finished(EXIT_MS);
      return { result, server, client, port };
    } finally {
      client.kill();
    }
  } catch (e) {
    server.kill();
    throw e;
  }
}

/** Stop the server (its stdin ends) and check the debug lines of both children. */
async function finish<R>(p: Pair<R>, transport: Transport, connections: number, what: string): Promise<BypassEvidence> {
  p.server.stop();
  await p.server.finished(EXIT_MS);
  const ev = evidence(p.client.stderrLines, p.client.pid, p.server.stderrLines, p.port);
  const problem = bypassProblem(transport, ev, connections, saysKbypass([...p.client.stderrLines, ...p.server.stderrLines]));
  if (problem) {
    // The preload's other debug lines (an endpoint not published, a client that failed) say why.
    const said = [...p.server.stderrLines, ...p.client.stderrLines].filter((l) => /^kbypass\[\d+\]: /.test(l) && !/ via kbypass\b/.test(l));
    const more = said.length ? `; the preload said:\n    ${said.slice(0, 12).join('\n    ')}` : '';
    throw new Error(`${what} over ${transport} was not measured over ${transport}: ${problem}${more}`);
  }
  return ev;
}

export interface EchoRun extends EchoResult { evidence: BypassEvidence }

export async function runEcho(ctx: RunContext, transport: Transport, plan: NetBenchPlan['echo']): Promise<EchoRun> {
  const p = await pair<EchoResult>(ctx, 'echo', transport, { role: 'server' },
    (port) => ({ role: 'client', port, bytes: plan.bytes, roundTrips: plan.roundTrips, warmup: plan.warmup, capSec: plan.capSec }),
    (plan.capSec + 30) * 1000);
  const r = p.result;
  if (!(r.round_trips >= plan.minRoundTrips) || !(r.p50_ns > 0) || !(r.p99_ns >= r.p50_ns)) {
    throw new Error(`echo over ${transport}: ${r.round_trips} round trips in ${plan.capSec} s (p50 ${r.p50_ns} ns, p99 ${r.p99_ns} ns): not a measurement`);
  }
  return { ...r, evidence: await finish(p, transport, 1, 'echo') };
}

export interface HttpRun extends HttpResult { evidence: BypassEvidence }

export async function runHttp(ctx: RunContext, transport: Transport, plan: NetBenchPlan['http']): Promise<HttpRun> {
  const p = await pair<HttpResult>(ctx, 'http', transport, { role: 'server' },
    (port) => ({ role: 'client', port, connections: plan.connections, durationSec: plan.durationSec }),
    (plan.durationSec + 45) * 1000);
  const r = p.result;
  const bad = r.errors + r.timeouts + r.mismatches + r.non2xx;
  if (bad > 0 || !(r.requests > 0) || !(r.requests_per_sec > 0)) {
    throw new Error(`http over ${transport}: ${r.requests} requests, ${r.errors} errors, ${r.timeouts} timeouts, ` +
      `${r.mismatches} bodies not '${BODY}', ${r.non2xx} not 2xx: not a measurement`);
  }
  return { ...r, evidence: await finish(p, transport, plan.connections, 'http') };
}

export interface BulkRun extends BulkResult { server: BulkServerResult; evidence: BypassEvidence }

export async function runBulk(ctx: RunContext, transport: Transport, plan: NetBenchPlan['bulk']): Promise<BulkRun> {
  const p = await pair<BulkResult>(ctx, 'bulk', transport, { role: 'server', bytes: plan.bytes },
    (port) => ({ role: 'client', port, bytes: plan.bytes, chunk: plan.chunk, capSec: plan.capSec }),
    (plan.capSec + 30) * 1000);
  const server = await p.server.next<BulkServerResult>(EXIT_MS, 'how much it received');
  if (server.received !== plan.bytes || p.result.bytes !== plan.bytes || !(p.result.secs > 0)) {
    throw new Error(`bulk over ${transport}: the client sent ${p.result.bytes} bytes in ${p.result.secs} s, the server received ${server.received}, of ${plan.bytes}`);
  }
  return { ...p.result, server, evidence: await finish(p, transport, 1, 'bulk') };
}
