/**
 * node:net's Server, from its documentation, on node:net and on kbypass/net: listen() in all its forms
 * (port, host, cb / port, cb / options / listen(0) and address(), synchronous right after listen() without a
 * host); 'listening', 'connection'; close() (stops accepting, 'close' only once the open connections have
 * ended, the callback; ERR_SERVER_NOT_RUNNING when not listening); getConnections(); maxConnections (one more
 * is dropped: 'drop'); two servers on one port, one on 127.0.0.1 and one on ::1.
 */
import * as assert from 'node:assert/strict';
import type * as nodeNet from 'node:net';
import { EventEmitter } from 'node:events';
import { closeOf, codeOf, Collector, counter, forEachImpl, ipv6Usable, next, sleep, type Scope, type Sock } from './behaviour-harness';

/** Connect to `port` on `host` and return both ends; checks they are bypassed on kbypass/net. */
async function connectTo(s: Scope, server: nodeNet.Server, port: number, host = '127.0.0.1'): Promise<[Sock, Sock]> {
  const accepted = next<Sock>(server, 'connection');
  const c = s.connect(port, host);
  await next(c, 'connect');
  const p = await accepted;
  s.expectBypassed(c, p);
  return [c, p];
}

function getConnections(server: nodeNet.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    const ret = server.getConnections((err, n) => { if (err) reject(err); else resolve(n); });
    assert.equal(ret, server, 'getConnections() returns the server');
  });
}

forEachImpl('server', (impl, test) => {
  const net = impl.net;

  test("createServer() and new Server() make the module's Server, an EventEmitter", async (s) => {
    const a = s.adoptServer(net.createServer());
    const b = s.adoptServer(new net.Server());
    for (const srv of [a, b]) {
      assert.ok(srv instanceof net.Server);
      assert.ok(srv instanceof EventEmitter);
      assert.equal(srv.listening, false);
      assert.equal(srv.address(), null, 'address() is null before listen()');
    }
    // new Server() takes a connection listener too, and accepts like createServer().
    let got: Sock | null = null;
    const c = s.adoptServer(new net.Server((sock) => { got = sock as Sock; }));
    const port = await s.listen(c);
    const [client, peer] = await connectTo(s, c, port);
    assert.equal(got, peer, "the constructor's listener is a 'connection' listener");
    assert.ok(peer instanceof net.Socket);
    client.destroy();
  });

  test("listen(port, host, cb): returns the server; cb and 'listening' once; address() is { address, family, port }", async (s) => {
    const server = s.server();
    const listenings = counter(server, 'listening');
    let cbs = 0;
    const listening = next(server, 'listening');
    assert.equal(server.listen(0, '127.0.0.1', () => { cbs++; }), server, 'listen() returns the server');
    await listening;
    await sleep(10);
    assert.equal(cbs, 1, 'the callback ran once');
    assert.equal(listenings.n, 1, "'listening' once");
    assert.equal(server.listening, true);
    const a = server.address() as nodeNet.AddressInfo;
    assert.equal(a.address, '127.0.0.1');
    assert.equal(a.family, 'IPv4');
    assert.ok(Number.isInteger(a.port) && a.port > 0 && a.port < 65536, `an ephemeral port (${a.port})`);
    assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
    await connectTo(s, server, a.port);
  });

  test('listen(port, cb) without a host: the unspecified address; reachable at 127.0.0.1', async (s) => {
    const server = s.server();
    await new Promise<void>((resolve) => { server.listen(0, () => resolve()); });
    const a = server.address() as nodeNet.AddressInfo;
    assert.ok((a.address === '::' && a.family === 'IPv6') || (a.address === '0.0.0.0' && a.family === 'IPv4'), JSON.stringify(a));
    assert.ok(a.port > 0);
    await connectTo(s, server, a.port);
  });

  test('listen({ port, host }, cb) and listen({ port })', async (s) => {
    const one = s.server();
    await new Promise<void>((resolve) => { one.listen({ port: 0, host: '127.0.0.1' }, () => resolve()); });
    const a = one.address() as nodeNet.AddressInfo;
    assert.equal(a.address, '127.0.0.1');
    assert.equal(a.family, 'IPv4');
    assert.ok(a.port > 0);
    await connectTo(s, one, a.port);

    const two = s.server();
    const listening = next(two, 'listening');
    two.listen({ port: 0 });
    await listening;
    const b = two.address() as nodeNet.AddressInfo;
    assert.ok(b.port > 0 && b.port !== a.port);
    await connectTo(s, two, b.port);
  });

  for (const [form, listen] of [
    ['listen(0)', (srv: nodeNet.Server) => srv.listen(0)],
    ['listen({ port: 0 })', (srv: nodeNet.Server) => srv.listen({ port: 0 })],
  ] as const) {
    test(`${form} without a host or callback: address() is there synchronously, right after listen(); then 'listening'`, async (s) => {
      const server = s.server();
      const listening = next(server, 'listening');
      listen(server);
      const a = server.address();
      assert.ok(a !== null && typeof a === 'object', `address() right after ${form}: ${JSON.stringify(a)}`);
      assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
      assert.ok(a.port > 0, 'an ephemeral port');
      assert.ok((a.address === '::' && a.family === 'IPv6') || (a.address === '0.0.0.0' && a.family === 'IPv4'), JSON.stringify(a));
      await listening;
      assert.deepEqual(server.address(), a, 'the same address once listening');
      await connectTo(s, server, a.port);
    });
  }

  test("'connection' gives the accepted socket (the module's Socket), after the client's connect", async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const connections = counter(server, 'connection');
    const [, peer] = await connectTo(s, server, port);
    assert.ok(peer instanceof net.Socket);
    assert.equal(peer.readyState, 'open');
    await connectTo(s, server, port);
    assert.equal(connections.n, 2);
  });

  test("close(): stops accepting at once; 'close' and the callback only after the open connections end", async (s) => {
    const server = s.server(undefined, (peer) => { peer.pipe(peer); });
    const port = await s.listen(server);
    const [client] = await connectTo(s, server, port);
    let closed = false;
    server.on('close', () => { closed = true; });
    const cbErr = new Promise<unknown>((resolve) => { server.close((err) => resolve(err)); });
    assert.equal(server.listening, false, 'not listening right after close()');
    // A new connection is refused.
    const late = s.connect(port, '127.0.0.1');
    const lateErr = await next<Error>(late, 'error');
    assert.equal(codeOf(lateErr), 'ECONNREFUSED', `a connection after close(): ${String(lateErr)}`);
    await sleep(100);
    assert.equal(closed, false, "no 'close' while a connection is open");
    assert.equal(await getConnections(server), 1);
    // The open connection still works both ways.
    const echo = new Collector(client);
    client.write('still open');
    assert.equal((await echo.bytes(10)).toString(), 'still open');
    client.end();
    assert.equal(await cbErr, undefined, 'the close callback gets no error');
    assert.equal(closed, true, "'close' emitted");
  });

  test("close(): completes once the clients have gone, even when the server never reads its sockets", async (s) => {
    const server = s.server(); // no 'data' listener on any accepted socket
    const port = await s.listen(server);
    const [c1] = await connectTo(s, server, port);
    const [c2] = await connectTo(s, server, port);
    const cbErr = new Promise<unknown>((resolve) => { server.close((err) => resolve(err)); });
    c1.destroy();
    c2.end();
    const err = await Promise.race([cbErr, sleep(3000).then(() => 'still open after 3 s')]);
    assert.equal(err, undefined, 'the close callback ran, without an error');
  });

  test('close(cb) when not listening: cb gets ERR_SERVER_NOT_RUNNING (never listened, and closed twice)', async (s) => {
    const never = s.server();
    const e1 = await new Promise<unknown>((resolve) => { never.close((err) => resolve(err)); });
    assert.equal(codeOf(e1), 'ERR_SERVER_NOT_RUNNING');
    const server = s.server();
    await s.listen(server);
    const first = await new Promise<unknown>((resolve) => { server.close((err) => resolve(err)); });
    assert.equal(first, undefined);
    const e2 = await new Promise<unknown>((resolve) => { server.close((err) => resolve(err)); });
    assert.equal(codeOf(e2), 'ERR_SERVER_NOT_RUNNING');
    assert.ok(e2 instanceof Error);
  });

  test('listen() on a listening server throws ERR_SERVER_ALREADY_LISTEN; a closed server can listen again', async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    assert.throws(() => server.listen(0, '127.0.0.1'), (e: unknown) => codeOf(e) === 'ERR_SERVER_ALREADY_LISTEN');
    const [c1, p1] = await connectTo(s, server, port);
    const closed = next(server, 'close');
    server.close();
    p1.resume();
    c1.destroy();
    await closed;
    const port2 = await s.listen(server);
    assert.equal(server.listening, true);
    assert.equal((server.address() as nodeNet.AddressInfo).port, port2);
    await connectTo(s, server, port2);
  });

  test('getConnections(cb) counts the open connections', async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    assert.equal(await getConnections(server), 0);
    const [c1, p1] = await connectTo(s, server, port);
    await connectTo(s, server, port);
    assert.equal(await getConnections(server), 2);
    const closed = closeOf(p1);
    p1.resume();
    c1.destroy();
    await closed;
    assert.equal(await getConnections(server), 1);
  });

  test("maxConnections: a connection beyond it is dropped ('drop', no 'connection', the client is closed)", async (s) => {
    const server = s.server();
    server.maxConnections = 1;
    const port = await s.listen(server);
    const connections = counter(server, 'connection');
    const [c1, p1] = await connectTo(s, server, port);
    const dropped = next<Record<string, unknown>>(server, 'drop');
    const c2 = s.connect(port, '127.0.0.1');
    c2.on('error', () => { /* ECONNRESET is as good as a FIN here */ });
    const c2Data = new Collector(c2);
    const c2Closed = closeOf(c2);
    const d = await dropped;
    assert.equal(d['localAddress'], '127.0.0.1');
    assert.equal(d['localPort'], port);
    assert.equal(d['remoteAddress'], '127.0.0.1');
    assert.equal(d['remoteFamily'], 'IPv4');
    assert.equal(typeof d['remotePort'], 'number');
    await c2Closed;
    assert.equal(c2Data.length, 0);
    assert.equal(connections.n, 1, "no 'connection' for the dropped one");
    assert.equal(await getConnections(server), 1);
    // The first connection is unaffected.
    const echo = new Collector(c1);
    p1.write('ok');
    assert.equal((await echo.bytes(2)).toString(), 'ok');
    // Once it ends, a new connection is taken again.
    const p1Closed = closeOf(p1);
    p1.resume();
    c1.destroy();
    await p1Closed;
    await connectTo(s, server, port);
    assert.equal(connections.n, 2);
  });

  test('two servers on one port, on 127.0.0.1 and on ::1: each address reaches its own server', async (s, t) => {
    if (!(await ipv6Usable())) { t.skip('::1 is not usable on this machine'); return; }
    for (const [first, second] of [['127.0.0.1', '::1'], ['::1', '127.0.0.1']] as const) {
      const named = (name: string) => s.server(undefined, (peer) => { peer.end(name); });
      const a = named(first);
      const port = await s.listen(a, 0, first);
      const b = named(second);
      try {
        await s.listen(b, port, second);
      } catch (e) {
        if (codeOf(e) === 'EADDRINUSE') { t.diagnostic(`port ${port} is taken on ${second}: order ${first} first not tested`); continue; }
        throw e;
      }
      for (const host of [first, second]) {
        const c = s.connect(port, host);
        const got = new Collector(c);
        await next(c, 'connect');
        assert.equal((await got.end()).toString(), host, `a client of ${host}:${port} reached the server on ${host}`);
        t.diagnostic(`${first} first: client of ${host} bypassed=${String(c.bypassed)}`);
      }
    }
  });
});
