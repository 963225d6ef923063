/**
 * Real programs, unmodified, both ends preloaded (`node --require dist/src/net/preload.js`, or `--import
 * esm/preload.mjs` for the ES module), server and client in separate child processes: node:http with and
 * without keep-alive, undici's fetch and request, the ws library, a 20 MiB file piped through a socket, TLS and
 * HTTPS, and node:net's ES-module named imports. Each checks the program's output, that the client exits by
 * itself, and — from the KBYPASS_DEBUG lines of both sides — that every connection went over kbypass.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  assertBypassed, killPrograms, run, startServer, tmpDir, type Message, type Program,
} from './harness';

after(killPrograms);

const opts = { timeout: 90_000 };

interface Done extends Message { failures: string[] }

/** The client's 'done' message, with no failures, and its orderly exit (a leaked handle would keep it alive). */
async function finished<T extends Done>(client: Program, ms = 60_000): Promise<T> {
  const done = await client.next<T>('done', ms);
  assert.deepEqual(done.failures, [], `${client.name} reported failures\n${client.describe()}`);
  const { code, signal } = await client.exit(10_000);
  assert.equal(code, 0, `${client.name} exit (signal ${signal})\n${client.describe()}`);
  return done;
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('real programs, both ends preloaded', () => {
  it('node:http, keep-alive Agent: 50 requests, 8 at a time, over at most 4 sockets', opts, async (t) => {
    const { p: server, port } = await startServer('http-server.js');
    const client = run('http-client.js', [String(port), 'keepalive', '50']);
    const done = await finished<Done & { sockets: number; requests: number }>(client);
    server.send({ cmd: 'stats' });
    const stats = await server.next('stats');
    t.diagnostic(`client used ${done.sockets} sockets; the server saw ${String(stats['connections'])} connections`);
    assert.equal(done.requests, 50);
    assert.ok(done.sockets >= 1 && done.sockets <= 4, `sockets used: ${done.sockets}`);
    assert.equal(stats['connections'], done.sockets, 'server connections = client sockets (keep-alive reuse)');
    assertBypassed(client, server, port, done.sockets);
  });

  it('node:http without keep-alive (agent: false): 20 requests, one connection each', opts, async () => {
    const { p: server, port } = await startServer('http-server.js');
    const client = run('http-client.js', [String(port), 'close', '20']);
    const done = await finished<Done & { sockets: number }>(client);
    assert.equal(done.sockets, 20);
    server.send({ cmd: 'stats' });
    const stats = await server.next('stats');
    assert.equal(stats['connections'], 20);
    assertBypassed(client, server, port, 20);
    // Connection: close — the server sees each connection end.
    const deadline = Date.now() + 5000;
    let open = -1;
    while (Date.now() < deadline) {
      server.send({ cmd: 'stats' });
      open = (await server.next('stats'))['open'] as number;
      if (open === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(open, 0, 'connections still open on the server 5 s after the last response');
  });

  it('undici (npm): fetch and request, sequential and concurrent', opts, async (t) => {
    const { p: server, port } = await startServer('http-server.js');
    const client = run('undici-client.js', [String(port), '10']);
    await finished(client);
    server.send({ cmd: 'stats' });
    const stats = await server.next('stats');
    const connections = stats['connections'] as number;
    t.diagnostic(`undici opened ${connections} connections`);
    assert.ok(connections >= 1);
    assertBypassed(client, server, port, connections);
  });

  it('ws: WebSocket echo of text and binary messages', opts, async () => {
    const { p: server, port } = await startServer('ws-server.js');
    const client = run('ws-client.js', [String(port), '10']);
    const done = await finished<Done & { sent: number; received: number; code: number }>(client);
    assert.equal(done.received, 20);
    assert.equal(done.code, 1000);
    server.send({ cmd: 'stats' });
    assert.equal((await server.next('stats'))['connections'], 1);
    assertBypassed(client, server, port, 1);
  });

  it('streamed file copy: fs.createReadStream(20 MiB).pipe(socket) → socket.pipe(fs.createWriteStream), sha256 equal', opts, async (t) => {
    const dir = tmpDir();
    const src = path.join(dir, 'in.bin');
    const dst = path.join(dir, 'out.bin');
    const size = 20 * 1024 * 1024 + 12345;
    fs.writeFileSync(src, crypto.randomBytes(size));
    const { p: server, port } = await startServer('sink-server.js', [dst]);
    const t0 = performance.now();
    const client = run('pipe-client.js', [String(port), src]);
    const received = await server.next('received', 60_000);
    const done = await client.next('done', 60_000);
    t.diagnostic(`copied ${size} bytes in ${(performance.now() - t0).toFixed(0)} ms (process start included)`);
    assert.equal(done['error'], null, `client socket error\n${client.describe()}`);
    assert.equal(done['bytesWritten'], size);
    assert.equal(received['bytes'], size);
    assert.equal(received['socketBytesRead'], size);
    assert.equal(sha256(dst), sha256(src), 'sha256 of the copy');
    assert.equal((await client.exit(10_000)).code, 0);
    await server.next('server-close', 10_000);
    assert.equal((await server.exit(10_000)).code, 0, `the server exits once its only connection is done\n${server.describe()}`);
    assertBypassed(client, server, port, 1);
  });

  it('the program\'s own net.Server subclass, and new net.Socket().connect(port, host)', opts, async () => {
    const { p: server, port } = await startServer('echo-server.js', ['echo', 'subclass']);
    const client = run('echo-client.js', [String(port), 'once', 'new-socket']);
    const echoed = await client.next('echoed', 15_000);
    assert.equal(echoed['ok'], true, client.describe());
    assert.equal(echoed['isNetSocket'], true, 'the socket is instanceof net.Socket');
    assert.equal(echoed['remotePort'], port, 'socket.remotePort');
    await client.next('done', 10_000);
    assert.equal((await client.exit(10_000)).code, 0);
    server.send({ cmd: 'stats' });
    const stats = await server.next('stats');
    assert.equal(stats['seen'], 1, "the subclass's own 'connection' listener saw the connection");
    assert.equal(stats['open'], 0);
    assertBypassed(client, server, port, 1);
  });

  describe('TLS over a bypassed connection', () => {
    const certs = makeCert();
    const skip = typeof certs === 'string' ? certs : false;
    const files = typeof certs === 'string' ? { key: '', cert: '' } : certs;

    it('tls.createServer + tls.connect (options and positional forms) echo 1 MiB; an unknown CA is rejected', { ...opts, skip }, async () => {
      const { p: server, port } = await startServer('tls-server.js', ['tls', files.key, files.cert]);
      const client = run('tls-client.js', ['tls', String(port), files.cert]);
      const done = await finished<Done & { unverified: string }>(client);
      assert.notEqual(done.unverified, 'connected', 'a connection without the CA must fail verification');
      assert.match(done.unverified, /SELF_SIGNED|CERT|SIGNATURE/, `verification error: ${done.unverified}`);
      assertBypassed(client, server, port, 3);
    });

    it('https.createServer + https.get and POSTs through a keep-alive https.Agent', { ...opts, skip }, async (t) => {
      const { p: server, port } = await startServer('tls-server.js', ['https', files.key, files.cert]);
      const client = run('tls-client.js', ['https', String(port), files.cert]);
      await finished(client);
      // https.get (agent: false) takes one connection; the keep-alive agent (maxSockets 1) one or a few.
      const n = assertBypassed(client, server, port, [2, 6]);
      t.diagnostic(`${n} https connections`);
    });
  });

  it('an ES module (--import esm/preload.mjs) using `import { createServer, connect } from \'node:net\'`', opts, async () => {
    const { p: server, port } = await startServer('esm-echo.mjs', ['server'], { preload: 'esm' });
    const client = run('esm-echo.mjs', ['client', String(port)], { preload: 'esm' });
    const done = await client.next('done', 20_000);
    assert.equal(done['ok'], true, `echo mismatch: ${JSON.stringify(done)}\n${client.describe()}`);
    assert.equal((await client.exit(10_000)).code, 0);
    assertBypassed(client, server, port, 1);
  });
});

/** A self-signed certificate for 127.0.0.1 / localhost made with openssl, or why there is none (skip). */
function makeCert(): { key: string; cert: string } | string {
  const v = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return `openssl is not available (${v.error?.message ?? v.stderr})`;
  const dir = tmpDir();
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `openssl req -x509 failed: ${r.error?.message ?? r.stderr}`;
  return { key, cert };
}
