/**
 * The proof of the way a run's connections went, from the preload's KBYPASS_DEBUG lines on the children's
 * stderr: `kbypass[<pid>]: connect <host>:<port> via kbypass` (or `via tcp (<reason>)`) from a client, and
 * `kbypass[<pid>]: accept <host>:<port> on <port> via kbypass` from a server. A `kbypass` figure counts only if
 * the client connected to the server's port via kbypass and never via TCP; a `tcp` figure only if no line says
 * kbypass.
 */
export interface ConnectTrace { pid: number; host: string; port: number; via: 'kbypass' | 'tcp'; reason: string }

const CONNECT = /^kbypass\[(\d+)\]: connect (.+):(\d+) via (kbypass|tcp)\b\s*(.*)$/;
const ACCEPT = /^kbypass\[(\d+)\]: accept .+ on (\d+) via kbypass\b/;

export function parseConnect(line: string): ConnectTrace | null {
  const m = CONNECT.exec(line);
  if (!m) return null;
  return { pid: Number(m[1]), host: m[2]!, port: Number(m[3]), via: m[4] as 'kbypass' | 'tcp', reason: m[5]!.replace(/^\((.*)\)$/, '$1') };
}

/** What a run's lines say about connections to `port`: the client's connects each way, the server's accepts. */
export interface BypassEvidence { viaKbypass: number; viaTcp: number; tcpReasons: string[]; accepts: number }

export function evidence(clientLines: readonly string[], clientPid: number, serverLines: readonly string[], port: number): BypassEvidence {
  const e: BypassEvidence = { viaKbypass: 0, viaTcp: 0, tcpReasons: [], accepts: 0 };
  for (const l of clientLines) {
    const c = parseConnect(l);
    if (c === null || c.pid !== clientPid || c.port !== port) continue;
    if (c.via === 'kbypass') e.viaKbypass++;
    else { e.viaTcp++; if (e.tcpReasons.length < 5) e.tcpReasons.push(c.reason || '(no reason given)'); }
  }
  for (const l of serverLines) {
    const m = ACCEPT.exec(l);
    if (m && Number(m[2]) === port) e.accepts++;
  }
  return e;
}

/** Any line of the preload's saying a connection went via kbypass (a `tcp` run must have none). */
export const saysKbypass = (lines: readonly string[]): string | undefined => lines.find((l) => /^kbypass\[\d+\]: .* via kbypass\b/.test(l));

/**
 * Why a run's figure cannot be trusted as measured over `transport`, or null if it can. `connections`: how
 * many the client should have made (each must have gone via kbypass).
 */
export function bypassProblem(transport: 'kbypass' | 'tcp', e: BypassEvidence, connections: number, anyKbypassLine: string | undefined): string | null {
  if (transport === 'tcp') return anyKbypassLine === undefined ? null : `a tcp run's child said '${anyKbypassLine}' (the kbypass preload was loaded)`;
  if (e.viaTcp > 0) return `${e.viaTcp} of the client's connections went via TCP, not kbypass (${e.tcpReasons.join('; ')})`;
  if (e.viaKbypass === 0) return 'the client printed no \'connect 127.0.0.1:<port> via kbypass\' line (KBYPASS_DEBUG=1): the preload did not take the connection';
  if (e.viaKbypass < connections) return `only ${e.viaKbypass} of the client's ${connections} connections said 'via kbypass'`;
  return null;
}
