/**
 * node:net's Socket addresses, from its documentation, on node:net and on kbypass/net: localAddress,
 * localPort, localFamily, remoteAddress, remotePort, remoteFamily and address() are the TCP addresses the
 * program asked for — a client connecting to 127.0.0.1:P sees 127.0.0.1, P, 'IPv4'; the server sees 127.0.0.1
 * and the client's localPort — over IPv4, over ::1 (skipped when ::1 is not usable here), and for a server
 * listening on the unspecified address.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type * as nodeNet from 'node:net';
import { forEachImpl, ipv6Usable, next, type Scope, type Sock } from './behaviour-harness';

/** Both ends of a connection agree with each other and with what was asked for. */
function checkEnds(client: Sock, peer: Sock, want: { host: string; family: 'IPv4' | 'IPv6'; port: number }): void {
  assert.equal(client.remoteAddress, want.host, 'client.remoteAddress');
  assert.equal(client.remotePort, want.port, 'client.remotePort');
  assert.equal(client.remoteFamily, want.family, 'client.remoteFamily');
  assert.equal(client.localAddress, want.host, 'client.localAddress');
  assert.equal(client.localFamily, want.family, 'client.localFamily');
  assert.equal(typeof client.localPort, 'number', 'client.localPort is a number');
  assert.ok(client.localPort! > 0 && client.localPort! < 65536 && client.localPort !== want.port, `client.localPort ${client.localPort}`);
  assert.deepEqual(client.address(), { address: want.host, family: want.family, port: client.localPort }, 'client.address()');

  assert.equal(peer.remoteAddress, want.host, 'server side remoteAddress');
  assert.equal(peer.remotePort, client.localPort, "server side remotePort is the client's localPort");
  assert.equal(peer.remoteFamily, want.family, 'server side remoteFamily');
  assert.equal(peer.localAddress, want.host, 'server side localAddress');
  assert.equal(peer.localPort, want.port, 'server side localPort is the listening port');
  assert.equal(peer.localFamily, want.family, 'server side localFamily');
  assert.deepEqual(peer.address(), { address: want.host, family: want.family, port: want.port }, 'server side address()');
}

async function twoClients(s: Scope, server: nodeNet.Server, port: number, host: string): Promise<Array<[Sock, Sock]>> {
  const out: Array<[Sock, Sock]> = [];
  for (let i = 0; i < 2; i++) {
    const accepted = next<Sock>(server, 'connection');
    const c = s.connect(port, host);
    await next(c, 'connect');
    const p = await accepted;
    s.expectBypassed(c, p);
    out.push([c, p]);
  }
  return out;
}

forEachImpl('socket addresses', (_impl, test) => {
  test("IPv4: a client of 127.0.0.1:P sees 127.0.0.1, P, 'IPv4'; the server sees 127.0.0.1 and the client's localPort", async (s) => {
    const { client, peer, port } = await s.pair();
    checkEnds(client, peer, { host: '127.0.0.1', family: 'IPv4', port });
  });

  test('IPv4: two clients at once have distinct local ports, each seen by the server as its remotePort', async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const pairs = await twoClients(s, server, port, '127.0.0.1');
    for (const [c, p] of pairs) checkEnds(c, p, { host: '127.0.0.1', family: 'IPv4', port });
    assert.notEqual(pairs[0]![0].localPort, pairs[1]![0].localPort, 'distinct client ports');
  });

  test("IPv6: a client of [::1]:P sees ::1, P, 'IPv6'; the server sees ::1 and the client's localPort", async (s, t) => {
    if (!(await ipv6Usable())) { t.skip('::1 is not usable on this machine'); return; }
    const { client, peer, port } = await s.pair({ host: '::1' });
    checkEnds(client, peer, { host: '::1', family: 'IPv6', port });
    const server = s.server();
    const port2 = await s.listen(server, 0, '::1');
    const pairs = await twoClients(s, server, port2, '::1');
    for (const [c, p] of pairs) checkEnds(c, p, { host: '::1', family: 'IPv6', port: port2 });
  });

  test('a server listening on the unspecified address (listen(0)) sees a 127.0.0.1 client as TCP shows it', async (s, t) => {
    let v6only = '0';
    try { v6only = fs.readFileSync('/proc/sys/net/ipv6/bindv6only', 'utf8').trim(); } catch { /* no IPv6 */ }
    if (v6only === '1') { t.skip('net.ipv6.bindv6only=1: a :: listener takes no IPv4 clients'); return; }
    const server = s.server();
    const listening = next(server, 'listening');
    server.listen(0);
    await listening;
    const a = server.address() as nodeNet.AddressInfo;
    assert.ok(a.address === '::' || a.address === '0.0.0.0', `listening on the unspecified address (${a.address})`);
    const accepted = next<Sock>(server, 'connection');
    const client = s.connect(a.port, '127.0.0.1');
    await next(client, 'connect');
    const peer = await accepted;
    s.expectBypassed(client, peer);
    // The client asked for 127.0.0.1: it sees IPv4 addresses.
    assert.equal(client.remoteAddress, '127.0.0.1');
    assert.equal(client.remotePort, a.port);
    assert.equal(client.remoteFamily, 'IPv4');
    assert.equal(client.localAddress, '127.0.0.1');
    // The server's socket is of the listener's family: an IPv4 client of a dual-stack :: listener is an
    // IPv4-mapped IPv6 address.
    const [host, family] = a.address === '::' ? ['::ffff:127.0.0.1', 'IPv6'] : ['127.0.0.1', 'IPv4'];
    assert.equal(peer.remoteAddress, host, 'server side remoteAddress');
    assert.equal(peer.remoteFamily, family, 'server side remoteFamily');
    assert.equal(peer.remotePort, client.localPort, "server side remotePort is the client's localPort");
    assert.equal(peer.localAddress, host, 'server side localAddress');
    assert.equal(peer.localPort, a.port, 'server side localPort');
    assert.equal(peer.localFamily, family, 'server side localFamily');
  });

  test('before connect() the addresses are undefined', async (s) => {
    const c = s.socket();
    assert.equal(c.remoteAddress, undefined);
    assert.equal(c.remotePort, undefined);
    assert.equal(c.remoteFamily, undefined);
    assert.equal(c.localAddress, undefined);
    assert.equal(c.localPort, undefined);
  });
});
