/**
 * node:net's Socket options, from its documentation, on node:net and on kbypass/net: setTimeout() ('timeout'
 * on idle, the socket stays open; cleared by setTimeout(0); the callback form; activity postpones it),
 * setNoDelay() and setKeepAlive() (return the socket), ref()/unref() (a process exits with an unref'd open
 * socket — tested in a child process that requires the module by absolute path).
 */
import * as assert from 'node:assert/strict';
import { Collector, counter, forEachImpl, next, runChild, sleep, type ChildResult, type Sock } from './behaviour-harness';

forEachImpl('socket options', (impl, test) => {
  test("setTimeout(ms): 'timeout' after ms of idleness; the socket stays open and usable", async (s) => {
    const { client, peer } = await s.pair();
    const t0 = Date.now();
    assert.equal(client.setTimeout(100), client, 'setTimeout() returns the socket');
    assert.equal(client.timeout, 100);
    await next(client, 'timeout', 2000);
    const ms = Date.now() - t0;
    assert.ok(ms >= 90, `'timeout' after ${ms} ms`);
    assert.equal(client.destroyed, false, "'timeout' does not close the socket");
    assert.equal(client.readyState, 'open');
    const got = new Collector(peer);
    client.write('still here');
    assert.equal((await got.bytes(10)).toString(), 'still here');
  });

  test("connect({ timeout }): the socket's idle timeout is set from the option", async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const accepted = next<Sock>(server, 'connection');
    const t0 = Date.now();
    const c = s.connect({ port, host: '127.0.0.1', timeout: 150 });
    assert.equal(c.timeout, 150);
    await next(c, 'connect');
    s.expectBypassed(c, await accepted);
    await next(c, 'timeout', 2000);
    const ms = Date.now() - t0;
    assert.ok(ms >= 140, `'timeout' after ${ms} ms`);
    assert.equal(c.destroyed, false);
  });

  test('setTimeout(0) disables the idle timeout', async (s) => {
    const { client } = await s.pair();
    const timeouts = counter(client, 'timeout');
    client.setTimeout(80);
    assert.equal(client.setTimeout(0), client);
    assert.equal(client.timeout, 0);
    await sleep(300);
    assert.equal(timeouts.n, 0, "no 'timeout' once disabled");
  });

  test("setTimeout(ms, cb): cb is a one-time 'timeout' listener", async (s) => {
    const { client } = await s.pair();
    let calls = 0;
    const before = client.listenerCount('timeout');
    client.setTimeout(60, () => { calls++; });
    assert.equal(client.listenerCount('timeout'), before + 1);
    await next(client, 'timeout', 2000);
    await sleep(200);
    assert.equal(calls, 1);
    assert.equal(client.listenerCount('timeout'), before, 'the listener is removed once it ran');
  });

  test('activity postpones the timeout: bytes written (client) and bytes received (server) reset the idle timer', async (s) => {
    const { client, peer } = await s.pair();
    new Collector(peer);
    const clientTimeouts = counter(client, 'timeout');
    const peerTimeouts = counter(peer, 'timeout');
    client.setTimeout(300);
    peer.setTimeout(300);
    // Twelve writes 50 ms apart: 600 ms of activity, never 300 ms idle.
    for (let i = 0; i < 12; i++) {
      client.write(`tick ${i}`);
      await sleep(50);
    }
    assert.equal(clientTimeouts.n, 0, "no 'timeout' on the writing side while it writes");
    assert.equal(peerTimeouts.n, 0, "no 'timeout' on the reading side while bytes arrive");
    const t0 = Date.now();
    await Promise.all([next(client, 'timeout', 2000), next(peer, 'timeout', 2000)]);
    const ms = Date.now() - t0;
    assert.ok(ms >= 200, `then 'timeout' on both, ${ms} ms after the last write`);
  });

  test('setNoDelay() and setKeepAlive() return the socket, before and after connecting; data still flows', async (s) => {
    const server = s.server(undefined, (peer) => { peer.pipe(peer); });
    const port = await s.listen(server);
    const c = s.socket();
    assert.equal(c.setNoDelay(true), c);
    assert.equal(c.setKeepAlive(true, 1000), c);
    c.connect(port, '127.0.0.1');
    const accepted = next(server, 'connection');
    await next(c, 'connect');
    s.expectBypassed(c, await accepted as typeof c);
    assert.equal(c.setNoDelay(), c);
    assert.equal(c.setNoDelay(false), c);
    assert.equal(c.setNoDelay(true), c);
    assert.equal(c.setKeepAlive(false), c);
    assert.equal(c.setKeepAlive(true), c);
    assert.equal(c.setKeepAlive(true, 500), c);
    const echo = new Collector(c);
    c.write('echo me');
    assert.equal((await echo.bytes(7)).toString(), 'echo me');
  });

  // --- ref / unref, in a child process ------------------------------------------------------------------------

  /** A child: a server and a client of `net` connected to each other, then `then` runs (client, peer, server). */
  const child = (then: string, timeoutMs: number): ChildResult => runChild(impl, `
    const server = net.createServer();
    let client, peer;
    const accepted = new Promise((r) => server.once('connection', r));
    server.listen(0, '127.0.0.1', async () => {
      client = net.connect(server.address().port, '127.0.0.1');
      await new Promise((r) => client.once('connect', r));
      peer = await accepted;
      process.stdout.write(JSON.stringify({ type: 'connected', client: client.bypassed ?? null, peer: peer.bypassed ?? null }) + '\\n');
      ${then}
      process.stdout.write(JSON.stringify({ type: 'idle' }) + '\\n');
    });
    process.on('exit', () => {
      process.stdout.write(JSON.stringify({ type: 'exit', clientOpen: !!client && !client.destroyed, peerOpen: !!peer && !peer.destroyed }) + '\\n');
    });`, timeoutMs);

  const describeChild = (r: ChildResult) => `status ${r.status}, signal ${r.signal}, ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

  const expectConnected = (r: ChildResult) => {
    const connected = r.lines.find((l) => l['type'] === 'connected');
    assert.ok(connected, `the child connected\n${describeChild(r)}`);
    assert.ok(r.lines.some((l) => l['type'] === 'idle'), `the child reached idle\n${describeChild(r)}`);
    if (impl.bypass) {
      assert.deepEqual([connected['client'], connected['peer']], [true, true], `both ends bypassed in the child\n${describeChild(r)}`);
    }
  };

  test("unref() on both sockets and the server: the process exits by itself with the connection still open", async () => {
    const r = child('client.unref(); peer.unref(); server.unref();', 8000);
    expectConnected(r);
    assert.equal(r.signal, null, `the child exited by itself (was not killed)\n${describeChild(r)}`);
    assert.equal(r.status, 0, describeChild(r));
    const exit = r.lines.find((l) => l['type'] === 'exit');
    assert.deepEqual(exit, { type: 'exit', clientOpen: true, peerOpen: true }, `it exited with both sockets open\n${describeChild(r)}`);
  });

  test('a ref\'d socket keeps the process alive (server and the other socket unref\'d)', async () => {
    const r = child('peer.unref(); server.unref();', 2500);
    expectConnected(r);
    assert.equal(r.signal, 'SIGKILL', `the child was still running after 2.5 s and had to be killed\n${describeChild(r)}`);
  });

  test('ref() after unref() keeps the process alive again', async () => {
    const r = child('client.unref(); peer.unref(); server.unref(); client.ref();', 2500);
    expectConnected(r);
    assert.equal(r.signal, 'SIGKILL', `the child was still running after 2.5 s and had to be killed\n${describeChild(r)}`);
  });

  test('ref() and unref() return the socket', async (s) => {
    const { client } = await s.pair();
    assert.equal(client.unref(), client);
    assert.equal(client.ref(), client);
  });
});
