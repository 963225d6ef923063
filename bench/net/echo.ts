/**
 * The echo workload, both ends (a child program: `node echo.js '{"role":...}'`; protocol.ts).
 * - server: a node:net server on 127.0.0.1 (port 0) writing back whatever it reads.
 * - client: sends `bytes`, waits until `bytes` came back, repeats: `warmup` round trips, then `roundTrips`
 *   timed ones, one process.hrtime.bigint() read per round trip (the reply's arrival is the next send), or
 *   until `capSec`. Reports p50 and p99 in ns.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { Histogram } from '../ipc/histogram';
import { report, runChild } from './child';
import { decodeParams, type EchoClientParams, type EchoResult, type EchoServerParams } from './protocol';

async function server(): Promise<void> {
  const srv = net.createServer({ noDelay: true }, (sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => sock.write(d));
    sock.on('error', () => sock.destroy());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  report({ port: (srv.address() as net.AddressInfo).port });
}

async function client(p: EchoClientParams): Promise<void> {
  const sock = net.connect({ host: '127.0.0.1', port: p.port, noDelay: true });
  sock.setNoDelay(true);
  await once(sock, 'connect');
  const payload = Buffer.alloc(p.bytes, 0x5a);
  const samples = new Float64Array(p.roundTrips);
  const total = p.warmup + p.roundTrips;
  const deadline = process.hrtime.bigint() + BigInt(p.capSec) * 1_000_000_000n;
  let done = 0; // round trips completed, warm-up included
  let capped = false;
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    let prev = 0n;
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`connection closed after ${done} of ${total} round trips`)));
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got < p.bytes) return;
      if (got > p.bytes) { reject(new Error(`${got} bytes came back for ${p.bytes} sent`)); return; }
      got = 0;
      const now = process.hrtime.bigint();
      if (done >= p.warmup) samples[done - p.warmup] = Number(now - prev);
      prev = now;
      done++;
      if (done >= total) { resolve(); return; }
      if ((done & 255) === 0 && now > deadline) { capped = true; resolve(); return; }
      sock.write(payload);
    });
    prev = process.hrtime.bigint();
    sock.write(payload);
  });
  sock.removeAllListeners('close');
  sock.destroy();
  const timed = Math.max(0, done - p.warmup);
  const h = new Histogram();
  for (let i = 0; i < timed; i++) h.record(samples[i]!);
  const r: EchoResult = { round_trips: timed, capped, p50_ns: Math.round(h.percentile(50)), p99_ns: Math.round(h.percentile(99)) };
  report(r);
}

if (require.main === module) {
  const p = decodeParams<EchoServerParams | EchoClientParams>(process.argv);
  if (p.role === 'server') runChild('echo', 'server', 30 * 60, server);
  else runChild('echo', 'client', p.capSec + 60, () => client(p));
}
