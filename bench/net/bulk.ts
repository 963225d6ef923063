/**
 * The bulk workload, both ends (a child program: `node bulk.js '{"role":...}'`; protocol.ts).
 * - client: pipes a Readable that produces `bytes` in `chunk`-sized pieces (one buffer, pushed again and again)
 *   into the socket; its clock runs from 'connect' to the server's acknowledgement (8 bytes: the count it
 *   received, float64 LE).
 * - server: pipes the socket into a Writable that counts; once it has all `bytes` it sends the acknowledgement,
 *   ends its side, and reports its count.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { report, runChild } from './child';
import { decodeParams, type BulkClientParams, type BulkResult, type BulkServerParams, type BulkServerResult } from './protocol';

/** A Readable of `total` bytes: `chunk` pushed as often as it fits (the last piece a prefix of it). */
export function source(total: number, chunk: Buffer): Readable {
  let produced = 0;
  return new Readable({
    read() {
      for (;;) {
        const left = total - produced;
        if (left <= 0) { this.push(null); return; }
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        produced += piece.length;
        if (!this.push(piece)) return;
      }
    },
  });
}

/** A Writable that counts bytes and calls `onAll` once when `total` have arrived (`onMore` if more do). */
export function counter(total: number, onFirst: () => void, onAll: (n: number) => void, onMore: (n: number) => void): Writable & { readonly count: number } {
  let n = 0;
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (n === 0) onFirst();
      n += chunk.length;
      cb();
      if (n === total) onAll(n);
      else if (n > total && n - chunk.length <= total) onMore(n);
    },
  });
  return Object.defineProperty(w, 'count', { get: () => n }) as Writable & { readonly count: number };
}

async function server(p: BulkServerParams): Promise<void> {
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    let t0 = 0n;
    const sink = counter(p.bytes, () => { t0 = process.hrtime.bigint(); }, (n) => {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const ack = Buffer.alloc(8);
      ack.writeDoubleLE(n);
      sock.end(ack);
      const r: BulkServerResult = { received: n, secs };
      report(r);
    }, (n) => { throw new Error(`received ${n} bytes, more than the ${p.bytes} sent`); });
    sock.on('error', (e) => { throw e; });
    sock.on('end', () => { if (sink.count < p.bytes) throw new Error(`the client ended after ${sink.count} of ${p.bytes} bytes`); });
    sock.pipe(sink);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  report({ port: (srv.address() as net.AddressInfo).port });
}

async function client(p: BulkClientParams): Promise<void> {
  const sock = net.connect({ host: '127.0.0.1', port: p.port });
  await once(sock, 'connect');
  const t0 = process.hrtime.bigint();
  const acked = new Promise<number>((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    sock.on('data', (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= 8) resolve(Buffer.concat(parts).readDoubleLE(0));
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('the connection closed before the server acknowledged')));
  });
  const src = source(p.bytes, Buffer.alloc(p.chunk, 0xa5));
  src.pipe(sock);
  let timer: NodeJS.Timeout | undefined;
  const count = await Promise.race([acked, new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${p.capSec} s (${sock.bytesWritten} of ${p.bytes} bytes written)`)), p.capSec * 1000);
  })]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  clearTimeout(timer);
  if (count !== p.bytes) throw new Error(`the server acknowledged ${count} of ${p.bytes} bytes`);
  sock.removeAllListeners('close');
  sock.destroy();
  const r: BulkResult = { bytes: p.bytes, secs };
  report(r);
}

if (require.main === module) {
  const p = decodeParams<BulkServerParams | BulkClientParams>(process.argv);
  if (p.role === 'server') runChild('bulk', 'server', 30 * 60, () => server(p));
  else runChild('bulk', 'client', p.capSec + 60, () => client(p));
}
