/**
 * Fallback to TCP, both ways: a preloaded client and a server without the preload, a client without the
 * preload and a preloaded server; KBYPASS=off; a KBYPASS_PORTS allow-list that leaves the port out (on both
 * sides, and on the client alone while the server publishes its endpoint). Each connection must work, the debug
 * lines must say 'via tcp' (no 'via kbypass', no 'accept … via kbypass'), and while it is open the kernel must
 * show an ESTABLISHED TCP connection on the server's port (/proc/net/tcp) — the independent proof. A positive
 * control checks the same probe sees no TCP connection when the allow-list does include the port.
 */
import { after, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  assertBypassed, assertNotBypassed, killPrograms, PLAIN, run, startServer, tcpEstablishedOn,
  type Preload, type Program,
} from './harness';

after(killPrograms);

const opts = { timeout: 30_000 };

interface Side { preload?: Preload; env?: Record<string, string | undefined> }

/**
 * One echo connection from `client` to `server` held open while the kernel's TCP table is read; returns the
 * programs and the count of ESTABLISHED TCP connections on the server's port seen meanwhile.
 */
async function echoHeld(server: Side, client: Side | ((port: number) => Side)): Promise<{ s: Program; c: Program; port: number; tcp: number }> {
  const { p: s, port } = await startServer('echo-server.js', [], server);
  const co = typeof client === 'function' ? client(port) : client;
  const c = run('echo-client.js', [String(port), 'once', 'hold'], co);
  const echoed = await c.next('echoed', 15_000);
  assert.equal(echoed['ok'], true, `echo mismatch\n${c.describe()}`);
  // The server's accept may lag the client's connect a little over TCP: poll briefly for the entry.
  let tcp = 0;
  const end = Date.now() + 1000;
  do {
    tcp = tcpEstablishedOn(port);
    if (tcp > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < end);
  c.send({ cmd: 'end' });
  await c.next('done', 10_000);
  assert.equal((await c.exit(10_000)).code, 0, `client exit\n${c.describe()}`);
  return { s, c, port, tcp };
}

function tcpProof(t: TestContext, r: { port: number; tcp: number }): void {
  t.diagnostic(`ESTABLISHED TCP sockets on port ${r.port} while the connection was open: ${r.tcp}`);
  assert.equal(r.tcp, 1, 'exactly one TCP connection to the server port exists while the echo connection is open');
}

describe('fallback to TCP', () => {
  it('a preloaded client to a server without the preload: tcp, and it works', opts, async (t) => {
    const r = await echoHeld({ preload: 'none' }, { preload: 'cjs' });
    const tcp = assertNotBypassed(r.c, r.s, r.port);
    if (!PLAIN) {
      assert.equal(tcp.length, 1, `the client logs one 'connect 127.0.0.1:${r.port} via tcp (<reason>)'\n${r.c.describe()}`);
      assert.equal(tcp[0]!.host, '127.0.0.1');
      t.diagnostic(`reason: ${tcp[0]!.reason}`);
    }
    tcpProof(t, r);
  });

  it('a preloaded http client (keep-alive) to an http server without the preload', opts, async () => {
    const { p: s, port } = await startServer('http-server.js', [], { preload: 'none' });
    const c = run('http-client.js', [String(port), 'keepalive', '20']);
    const done = await c.next('done', 30_000);
    assert.deepEqual(done['failures'], [], c.describe());
    assert.equal((await c.exit(10_000)).code, 0);
    const tcp = assertNotBypassed(c, s, port);
    if (!PLAIN) assert.equal(tcp.length, done['sockets'], `one 'via tcp' line per socket\n${c.describe()}`);
  });

  it('a client without the preload to a preloaded server: tcp (no accept via kbypass), and it works', opts, async (t) => {
    const r = await echoHeld({ preload: 'cjs' }, { preload: 'none' });
    assertNotBypassed(r.c, r.s, r.port);
    if (!PLAIN) {
      assert.ok(r.s.decisions().published.includes(r.port), `the server still publishes its endpoint\n${r.s.describe()}`);
    }
    tcpProof(t, r);
  });

  it('KBYPASS=off on both sides: no endpoint, tcp', opts, async (t) => {
    const off = { preload: 'cjs' as const, env: { KBYPASS: 'off' } };
    const r = await echoHeld(off, off);
    assertNotBypassed(r.c, r.s, r.port);
    assert.deepEqual(r.s.decisions().published, [], `no endpoint published with KBYPASS=off\n${r.s.describe()}`);
    tcpProof(t, r);
  });

  it('KBYPASS=off on the client only (the server publishes): tcp', opts, async (t) => {
    const r = await echoHeld({ preload: 'cjs' }, { preload: 'cjs', env: { KBYPASS: 'off' } });
    assertNotBypassed(r.c, r.s, r.port);
    if (!PLAIN) assert.ok(r.s.decisions().published.includes(r.port), r.s.describe());
    tcpProof(t, r);
  });

  it('KBYPASS_PORTS leaving the port out, on both sides: no endpoint, tcp', opts, async (t) => {
    const list = { preload: 'cjs' as const, env: { KBYPASS_PORTS: '80,443,1000-1023' } };
    const r = await echoHeld(list, list);
    const tcp = assertNotBypassed(r.c, r.s, r.port);
    assert.deepEqual(r.s.decisions().published, [], `no endpoint published for a port outside KBYPASS_PORTS\n${r.s.describe()}`);
    if (!PLAIN) {
      assert.equal(tcp.length, 1, `the client logs 'connect 127.0.0.1:${r.port} via tcp (<reason>)'\n${r.c.describe()}`);
      t.diagnostic(`reason: ${tcp[0]!.reason}`);
    }
    tcpProof(t, r);
  });

  it('KBYPASS_PORTS leaving the port out on the client only (the server publishes): tcp', opts, async (t) => {
    const r = await echoHeld({ preload: 'cjs' }, (port) => ({ preload: 'cjs', env: { KBYPASS_PORTS: `80,${port - 1},${port + 1}-${port + 2}` } }));
    const tcp = assertNotBypassed(r.c, r.s, r.port);
    if (!PLAIN) {
      assert.ok(r.s.decisions().published.includes(r.port), r.s.describe());
      assert.equal(tcp.length, 1, `the client logs 'connect 127.0.0.1:${r.port} via tcp (<reason>)'\n${r.c.describe()}`);
      t.diagnostic(`reason: ${tcp[0]!.reason}`);
    }
    tcpProof(t, r);
  });

  it('control: KBYPASS_PORTS including the port → kbypass, and no TCP connection on the port', { ...opts, skip: PLAIN ? 'plain run' : false }, async (t) => {
    const r = await echoHeld(
      { preload: 'cjs', env: { KBYPASS_PORTS: '1024-65535' } },
      (port) => ({ preload: 'cjs', env: { KBYPASS_PORTS: `80, ${port - 5}-${port + 5}` } }),
    );
    assertBypassed(r.c, r.s, r.port, 1);
    t.diagnostic(`ESTABLISHED TCP sockets on port ${r.port} while the bypassed connection was open: ${r.tcp}`);
    assert.equal(r.tcp, 0, 'a bypassed connection has no TCP connection');
  });
});
