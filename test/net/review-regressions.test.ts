// Regressions for the problems an internal review of src/net found (one test each; the review's numbering).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as nodeNet from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as knet from '../../src/net';
import { connect as channelConnect } from '../../src/channel/connect';
import { encodeHello, KIND_HELLO } from '../../src/net/hello';
import { endpointPath } from '../../src/net/local';

const NET = path.join(__dirname, '..', '..', 'src', 'net', 'index.js');
const PRELOAD = path.join(__dirname, '..', '..', 'src', 'net', 'preload.js');
const opts = { timeout: 20_000 };

async function server(handler: (s: nodeNet.Socket) => void, o: nodeNet.ServerOpts = {}): Promise<{ srv: knet.Server; port: number }> {
  const srv = knet.createServer(o, handler);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, port: (srv.address() as nodeNet.AddressInfo).port };
}

function child(args: string[], code: string, timeout = 10_000): { status: number | null; out: string; err: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [...args, '-e', code], { encoding: 'utf8', timeout, env: { ...process.env, KBYPASS_DEBUG: '' } });
  return { status: r.status, out: r.stdout, err: r.stderr, ms: Date.now() - t0 };
}

test('2: a client that sends HELLO and leaves at once does not crash the server', opts, async () => {
  const { srv, port } = await server((s) => s.end());
  let uncaught: unknown = null;
  const onUncaught = (e: unknown): void => { uncaught = e; };
  process.on('uncaughtException', onUncaught);
  try {
    for (let i = 0; i < 20; i++) {
      const ch = await channelConnect(endpointPath(port));
      ch.send(encodeHello({ kind: KIND_HELLO, family: 4, reason: 0, dstAddress: '127.0.0.1', dstPort: port, srcAddress: '127.0.0.1', srcPort: 40000 + i }));
      if (i % 2 === 0) ch.destroy(); else void ch.close();
    }
    await sleep(300);
    assert.equal(uncaught, null);
    // Still serving.
    const c = knet.connect(port, '127.0.0.1');
    await once(c, 'end');
    assert.equal(c.bypassed, true);
    c.destroy();
  } finally {
    process.off('uncaughtException', onUncaught);
    srv.close();
  }
});

test('4: bytes the peer wrote before its process exited all reach a paused reader', opts, async () => {
  const total = 24 * 65536;
  let got = 0;
  let sock: nodeNet.Socket | null = null;
  const { srv, port } = await server((s) => { sock = s; s.pause(); });
  try {
    const code = `const net = require(${JSON.stringify(NET)});
      const c = net.connect(${port}, '127.0.0.1', () => {
        for (let i = 0; i < 24; i++) c.write(Buffer.alloc(65536, i));
        c.end(() => process.exit(0));
      });`;
    const p = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    await once(p, 'exit');
    await sleep(100);
    assert.ok(sock, 'the server saw the connection');
    const s = sock as nodeNet.Socket;
    s.on('data', (d: Buffer) => { got += d.length; });
    s.resume();
    await once(s, 'end');
    assert.equal(got, total);
  } finally {
    srv.close();
  }
});

test("5: localPort / localAddress / lookup go over TCP, where node honours them", opts, async () => {
  const { srv, port } = await server((s) => s.end());
  try {
    const c = knet.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' });
    await once(c, 'connect');
    assert.equal(c.bypassed, false);
    c.destroy();
  } finally {
    srv.close();
  }
  // An option node:net refuses, on the way to TCP (no endpoint there): the socket fails with node's code
  // instead of the process crashing on an unhandled rejection.
  const plain = nodeNet.createServer((s) => s.destroy());
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  try {
    const bad = knet.connect({ port: (plain.address() as nodeNet.AddressInfo).port, host: '127.0.0.1', autoSelectFamily: 'yes' as unknown as boolean });
    const [e] = await once(bad, 'error') as [{ code?: string }];
    assert.equal(e.code, 'ERR_INVALID_ARG_TYPE');
  } finally {
    plain.close();
  }
});

test('6: unref() before a fallback to TCP still lets the process exit', opts, async () => {
  const plain = nodeNet.createServer(() => { /* holds the connection */ });
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  const port = (plain.address() as nodeNet.AddressInfo).port;
  try {
    const r = await new Promise<{ code: number | null; ms: number }>((resolve) => {
      const t0 = Date.now();
      const p = spawn(process.execPath, ['-e', `const net = require(${JSON.stringify(NET)}); net.connect(${port}, '127.0.0.1').unref();`], { stdio: 'ignore' });
      const timer = setTimeout(() => p.kill('SIGKILL'), 8000);
      p.on('exit', (code) => { clearTimeout(timer); resolve({ code, ms: Date.now() - t0 }); });
    });
    assert.equal(r.code, 0, 'the child exited by itself');
  } finally {
    plain.close();
  }
});

test('7: server.unref() does not unref the connections it accepted', opts, () => {
  const code = `const net = require(${JSON.stringify(NET)});
    const srv = net.createServer((s) => { srv.unref(); setTimeout(() => { s.end('late'); }, 300); });
    srv.listen(0, '127.0.0.1', () => {
      const c = net.connect(srv.address().port, '127.0.0.1');
      c.unref();
      c.on('data', (d) => { console.log(String(d)); c.destroy(); });
    });`;
  const r = child([], code);
  assert.equal(r.out, 'late\n', r.err);
});

test('8: a socket destroyed while it decides fails its waiting writes and end() as node:net does', opts, async () => {
  const { srv, port } = await server(() => { /* never answers */ });
  try {
    const c = knet.connect(port, '127.0.0.1');
    const codes: Array<string | undefined> = [];
    c.on('error', () => { /* destroy() without an error emits none */ });
    c.write('a', (e) => codes.push((e as { code?: string } | null | undefined)?.code));
    c.end((e?: Error | null) => codes.push((e as { code?: string } | null | undefined)?.code ?? 'end-cb'));
    c.destroy();
    await sleep(100);
    assert.ok(codes.includes('ERR_SOCKET_CLOSED_BEFORE_CONNECTION'), JSON.stringify(codes));
  } finally {
    srv.close();
  }
});

test('9: a bypassed socket can connect again after it closed (over TCP)', opts, async () => {
  const { srv, port } = await server((s) => s.end('hi'));
  try {
    const c = knet.connect(port, '127.0.0.1');
    c.resume();
    await once(c, 'close');
    let text = '';
    c.on('data', (d: Buffer) => { text += d; });
    const closed = once(c, 'close');
    c.connect(port, '127.0.0.1');
    await Promise.race([closed, sleep(5000).then(() => { throw new Error(`no second 'close' (got '${text}')`); })]);
    assert.equal(text, 'hi');
  } finally {
    srv.close();
  }
});

test('10: util.inherits subclasses of net.Socket work under the preload', opts, () => {
  const code = `const net = require('net'); const util = require('util');
    function MySock(o) { net.Socket.call(this, o); }
    util.inherits(MySock, net.Socket);
    const srv = net.createServer((s) => s.end('ok'));
    srv.listen(0, '127.0.0.1', () => {
      const c = new MySock();
      c.connect(srv.address().port, '127.0.0.1');
      c.on('data', (d) => { console.log(String(d), c.bytesRead); srv.close(); });
    });`;
  const r = child(['--require', PRELOAD], code);
  assert.equal(r.out, 'ok 2\n', r.err);
});

test('11: TLS over a bypassed socket reports the TCP addresses on both ends', opts, () => {
  const v = spawnSync('openssl', ['version']);
  if (v.status !== 0) return; // no openssl: programs.test.ts says so
  const dir = path.join(require('node:os').tmpdir(), `kbypass-tls-${process.pid}`);
  require('node:fs').mkdirSync(dir, { recursive: true });
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const code = `const tls = require('tls'); const fs = require('fs');
    const srv = tls.createServer({ key: fs.readFileSync(${JSON.stringify(key)}), cert: fs.readFileSync(${JSON.stringify(cert)}) }, (s) => {
      console.log('server', s.remoteAddress, typeof s.remotePort, s.localPort === srv.address().port);
      s.end();
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: srv.address().port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
        console.log('client', c.remoteAddress, c.remotePort === srv.address().port);
      });
      c.on('close', () => srv.close());
      c.resume();
    });`;
  const r = child(['--require', PRELOAD], code);
  require('node:fs').rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(r.out.trim().split('\n').sort(), ['client 127.0.0.1 true', 'server 127.0.0.1 number true'], r.err);
});

test("1: an endpoint bound by another user is not trusted: the client goes over TCP", opts, async (t) => {
  if (process.getuid?.() !== 0) { t.skip('needs root to run a child as another user'); return; }
  const chanIndex = path.join(__dirname, '..', '..', 'src', 'index.js');
  const readable = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(chanIndex)})`], { uid: 65534, gid: 65534 });
  if (readable.status !== 0) { t.skip('uid 65534 cannot read this checkout'); return; }
  // A plain TCP server on a port; another user squats on that port's endpoint name.
  const plain = nodeNet.createServer((s) => s.end('tcp'));
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  const port = (plain.address() as nodeNet.AddressInfo).port;
  const squatter = spawn(process.execPath, ['-e', `
    const { listen } = require(${JSON.stringify(chanIndex)});
    const s = listen(${JSON.stringify(endpointPath(port))}, { authorize: () => true });
    s.on('listening', () => console.log('ready'));
    s.on('channel', (ch) => ch.on('message', () => { console.log('STOLE'); }));
  `], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    squatter.stdout!.on('data', (d: Buffer) => { out += d; });
    const t0 = Date.now();
    while (!out.includes('ready') && Date.now() - t0 < 5000) await sleep(20);
    assert.ok(out.includes('ready'), 'the squatter listens');
    const c = knet.connect(port, '127.0.0.1');
    let text = '';
    c.on('data', (d: Buffer) => { text += d; });
    await once(c, 'close');
    assert.equal(text, 'tcp');
    assert.equal(c.bypassed, false);
    await sleep(100);
    assert.ok(!out.includes('STOLE'), 'the squatter got nothing');
  } finally {
    squatter.kill('SIGKILL');
    plain.close();
  }
});
