/**
 * The http workload, both ends (a child program: `node http.js '{"role":...}'`; protocol.ts).
 * - server: a node:http hello-world server on 127.0.0.1 (port 0): 200, body 'hello world', keep-alive.
 * - client: autocannon (programmatic API) with `connections` keep-alive connections for `durationSec`,
 *   checking every body; reports requests/s and every kind of failed request.
 */
import * as http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { loadAutocannon } from './autocannon';
import { report, runChild } from './child';
import { decodeParams, type HttpClientParams, type HttpResult, type HttpServerParams } from './protocol';

export const BODY = 'hello world';

async function server(): Promise<void> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(BODY);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  report({ port: (srv.address() as AddressInfo).port });
}

async function client(p: HttpClientParams): Promise<void> {
  const autocannon = loadAutocannon();
  const r = await autocannon({ url: `http://127.0.0.1:${p.port}/`, connections: p.connections, duration: p.durationSec, pipelining: 1, expectBody: BODY });
  const out: HttpResult = {
    requests_per_sec: r.requests.average,
    requests: r.requests.total,
    duration_sec: r.duration,
    errors: r.errors,
    timeouts: r.timeouts,
    mismatches: r.mismatches,
    non2xx: r.non2xx,
  };
  report(out);
}

if (require.main === module) {
  const p = decodeParams<HttpServerParams | HttpClientParams>(process.argv);
  if (p.role === 'server') runChild('http', 'server', 30 * 60, server);
  else runChild('http', 'client', p.durationSec + 60, () => client(p));
}
