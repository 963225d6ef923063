/**
 * node:net's error codes, on node:net and on kbypass/net: ECONNREFUSED (nobody listens on the port),
 * EADDRINUSE (a second server on the same port), write after destroy() (ERR_STREAM_DESTROYED on Node 20),
 * write on a socket that was never connected (ERR_SOCKET_CLOSED), ERR_STREAM_WRITE_AFTER_END,
 * ERR_INVALID_ARG_TYPE / ERR_STREAM_NULL_VALUES / ERR_SOCKET_BAD_PORT / ERR_MISSING_ARGS (thrown at once), and
 * EPIPE for a write after the peer ended a socket that does not allow half-open. Each expectation is what
 * node:net itself gives.
 */
import * as assert from 'node:assert/strict';
import * as nodeNet from 'node:net';
import * as os from 'node:os';
import { closeOf, codeOf, Collector, counter, forEachImpl, next, sleep, type Scope } from './behaviour-harness';

/** A system error of node:net (errors.md: error.address and error.port for network errors). */
type SysError = NodeJS.ErrnoException & { address?: string; port?: number };

/** A port on 127.0.0.1 that nobody listens on: one `make()` server listened on it and has closed. */
async function freedPort(s: Scope, make: () => nodeNet.Server): Promise<number> {
  const server = s.adoptServer(make());
  const port = await s.listen(server);
  await new Promise<void>((resolve, reject) => { server.close((err) => (err ? reject(err) : resolve())); });
  return port;
}

forEachImpl('error codes', (impl, test) => {
  const net = impl.net;

  for (const [who, make] of [
    ['a plain node:net server', () => nodeNet.createServer()],
    ["this module's server", () => net.createServer()],
  ] as const) {
    test(`ECONNREFUSED: connect to a port nobody listens on (${who} was there and closed)`, async (s) => {
      const port = await freedPort(s, make);
      const c = s.connect(port, '127.0.0.1');
      const connects = counter(c, 'connect');
      const closed = closeOf(c);
      const err = await next<SysError>(c, 'error');
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.errno, -os.constants.errno.ECONNREFUSED);
      assert.equal(err.syscall, 'connect');
      assert.equal(err.address, '127.0.0.1');
      assert.equal(err.port, port);
      assert.equal(await closed, true, "'close'(hadError true)");
      assert.equal(connects.n, 0);
      assert.equal(c.destroyed, true);
      assert.equal(c.readyState, 'closed');
    });
  }

  test('EADDRINUSE: a second server on the same port gets it as an \'error\'; the first keeps serving', async (s) => {
    const first = s.server(undefined, (peer) => { peer.end('first'); });
    const port = await s.listen(first);
    const second = s.server(undefined, (peer) => { peer.end('second'); });
    const listenings = counter(second, 'listening');
    second.listen(port, '127.0.0.1');
    const err = await next<SysError>(second, 'error');
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.errno, -os.constants.errno.EADDRINUSE);
    assert.equal(err.syscall, 'listen');
    assert.equal(err.address, '127.0.0.1');
    assert.equal(err.port, port);
    assert.equal(second.listening, false);
    assert.equal(listenings.n, 0);
    const accepted = next(first, 'connection');
    const c = s.connect(port, '127.0.0.1');
    const got = new Collector(c);
    await next(c, 'connect');
    s.expectBypassed(c, await accepted as typeof c);
    assert.equal((await got.end()).toString(), 'first');
  });

  test("write after destroy(): false, the callback gets ERR_STREAM_DESTROYED, no 'error'", async (s) => {
    const { client } = await s.pair();
    const errors = counter(client, 'error');
    client.destroy();
    let cbErr: unknown;
    const r = client.write('x', (e) => { cbErr = e; });
    assert.equal(r, false);
    await sleep(20);
    assert.equal(codeOf(cbErr), 'ERR_STREAM_DESTROYED');
    assert.equal(errors.n, 0);
  });

  test("write on a socket that never connected: ERR_SOCKET_CLOSED, to the callback and as 'error'", async (s) => {
    const c = s.socket();
    const errP = next<Error>(c, 'error');
    let cbErr: unknown;
    c.write('x', (e) => { cbErr = e; });
    const err = await errP;
    await sleep(5);
    assert.equal(codeOf(err), 'ERR_SOCKET_CLOSED');
    assert.equal(codeOf(cbErr), 'ERR_SOCKET_CLOSED');
  });

  test("write after end(): false, ERR_STREAM_WRITE_AFTER_END to the callback and as 'error', then 'close'(true)", async (s) => {
    const { client, peer } = await s.pair();
    new Collector(peer);
    const errP = next<Error>(client, 'error');
    const closed = closeOf(client);
    client.end();
    let cbErr: unknown;
    assert.equal(client.write('x', (e) => { cbErr = e; }), false);
    const err = await errP;
    assert.equal(codeOf(err), 'ERR_STREAM_WRITE_AFTER_END');
    assert.equal(await closed, true);
    assert.equal(codeOf(cbErr), 'ERR_STREAM_WRITE_AFTER_END');
  });

  test('bad arguments throw at once: ERR_INVALID_ARG_TYPE, ERR_STREAM_NULL_VALUES, ERR_SOCKET_BAD_PORT, ERR_MISSING_ARGS', async (s) => {
    const { client } = await s.pair();
    const errors = counter(client, 'error');
    const is = (code: string, type: ErrorConstructor) => (e: unknown) => {
      assert.ok(e instanceof type, `${String(e)} is a ${type.name}`);
      assert.equal(codeOf(e), code);
      return true;
    };
    assert.throws(() => client.write(123 as unknown as string), is('ERR_INVALID_ARG_TYPE', TypeError));
    assert.throws(() => client.write({} as unknown as string), is('ERR_INVALID_ARG_TYPE', TypeError));
    assert.throws(() => client.write(null as unknown as string), is('ERR_STREAM_NULL_VALUES', TypeError));
    assert.throws(() => client.end(123 as unknown as string), is('ERR_INVALID_ARG_TYPE', TypeError));
    assert.throws(() => s.connect({ port: 70000, host: '127.0.0.1' }), is('ERR_SOCKET_BAD_PORT', RangeError));
    assert.throws(() => s.connect(-1, '127.0.0.1'), is('ERR_SOCKET_BAD_PORT', RangeError));
    assert.throws(() => s.connect({}), is('ERR_MISSING_ARGS', TypeError));
    assert.throws(() => s.server().listen(-1), is('ERR_SOCKET_BAD_PORT', RangeError));
    assert.throws(() => s.server().listen({ port: 65536 }), is('ERR_SOCKET_BAD_PORT', RangeError));
    await sleep(20);
    assert.equal(errors.n, 0, "no 'error' on the socket");
    assert.equal(client.destroyed, false, 'the socket is still open after the bad write');
  });

  test("EPIPE: a write after the peer ended a socket without allowHalfOpen (it has ended itself)", async (s) => {
    const { client, peer } = await s.pair({ client: { allowHalfOpen: true } });
    peer.on('error', () => { /* the EPIPE below, if emitted */ });
    new Collector(client);
    new Collector(peer);
    const ended = next(peer, 'end');
    const finished = next(peer, 'finish');
    client.end();
    await ended;
    await finished;
    let cbErr: Error | undefined;
    const r = peer.write('too late', (e) => { cbErr = e ?? undefined; });
    assert.equal(r, false);
    await sleep(20);
    assert.equal(codeOf(cbErr), 'EPIPE');
    assert.equal(cbErr?.message, 'This socket has been ended by the other party');
  });
});
