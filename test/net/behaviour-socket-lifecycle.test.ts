/**
 * node:net's Socket lifecycle, from its documentation, on node:net and on kbypass/net: the Socket is a
 * stream.Duplex; every connect form; 'connect' then 'ready'; connecting / pending / readyState from 'opening'
 * to 'open', 'readOnly' / 'writeOnly' after a half-close, and 'closed'; end() with half-open per allowHalfOpen
 * (true: the other side can still write; false: it ends by itself); 'end', 'finish' and 'close'(hadError) in
 * order; destroy() with and without an error.
 */
import * as assert from 'node:assert/strict';
import * as nodeNet from 'node:net';
import { Duplex } from 'node:stream';
import { closeOf, Collector, counter, forEachImpl, next, sleep, type Sock } from './behaviour-harness';

forEachImpl('socket lifecycle', (impl, test) => {
  const net = impl.net;

  test('Socket is a stream.Duplex and a net.Socket; Stream is Socket; createConnection connects', async () => {
    const s = new net.Socket();
    try {
      assert.ok(s instanceof Duplex, 'a stream.Duplex');
      assert.ok(s instanceof nodeNet.Socket, "an instance of node:net's Socket");
      assert.equal((net as { Stream?: unknown }).Stream, net.Socket, 'net.Stream is net.Socket');
      assert.equal(typeof net.createConnection, 'function');
      assert.equal(typeof net.connect, 'function');
      assert.equal(s.pending, true, 'pending before connect() is called');
      assert.equal(s.connecting, false, 'not connecting before connect() is called');
    } finally {
      s.destroy();
    }
  });

  test('every connect form reaches the server: connect, createConnection, new Socket().connect, with port/host or options', async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const forms: Array<[string, () => Sock]> = [
      ['connect(port, host)', () => s.connect(port, '127.0.0.1')],
      ['connect({ port, host })', () => s.connect({ port, host: '127.0.0.1' })],
      ['createConnection(port, host)', () => s.track(net.createConnection(port, '127.0.0.1') as Sock)],
      ['createConnection({ port, host })', () => s.track(net.createConnection({ port, host: '127.0.0.1' }) as Sock)],
      ['new Socket().connect(port, host)', () => s.socket().connect(port, '127.0.0.1')],
      ['new Socket().connect({ port, host })', () => s.socket().connect({ port, host: '127.0.0.1' })],
    ];
    for (const [form, make] of forms) {
      const accepted = next<Sock>(server, 'connection');
      const c = make();
      assert.ok(c instanceof net.Socket, `${form}: returns the module's Socket`);
      await next(c, 'connect');
      const peer = await accepted;
      assert.ok(peer instanceof net.Socket, `${form}: the server's 'connection' gives the module's Socket`);
      s.expectBypassed(c, peer);
      // The connection carries bytes both ways.
      const got = new Collector(c);
      peer.write(form);
      assert.equal((await got.bytes(Buffer.byteLength(form))).toString(), form);
      const pc = closeOf(peer);
      peer.resume();
      c.destroy();
      assert.equal(await pc, false, `${form}: the server's socket closes after the client's destroy()`);
    }
  });

  test("connect(port, host, cb): connecting/pending/readyState 'opening', then cb, 'connect', 'ready' and 'open'", async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const order: string[] = [];
    const c = s.connect(port, '127.0.0.1', () => { order.push(`cb:${c.readyState}`); });
    c.on('connect', () => order.push('connect'));
    c.on('ready', () => order.push('ready'));
    assert.equal(c.connecting, true, 'connecting right after connect()');
    assert.equal(c.pending, true, 'pending while connecting');
    assert.equal(c.readyState, 'opening');
    const accepted = next<Sock>(server, 'connection');
    await next(c, 'ready');
    const peer = await accepted;
    assert.deepEqual(order, ['cb:open', 'connect', 'ready'], "the callback is a 'connect' listener; 'ready' follows 'connect'");
    assert.equal(c.connecting, false);
    assert.equal(c.pending, false);
    assert.equal(c.readyState, 'open');
    assert.equal(c.readable, true);
    assert.equal(c.writable, true);
    assert.equal(peer.readyState, 'open');
    assert.equal(peer.pending, false);
    assert.equal(peer.connecting, false);
    s.expectBypassed(c, peer);
    await sleep(20);
    assert.deepEqual(order, ['cb:open', 'connect', 'ready'], "'connect' and 'ready' are emitted once");
  });

  test("an orderly exchange: 'data', 'end', 'finish', then 'close'(false) last on both sides", async (s) => {
    const { client, peer } = await s.pair();
    const log = (sock: Sock, out: string[]) => {
      for (const ev of ['end', 'finish', 'error', 'timeout']) sock.on(ev, () => out.push(ev));
      sock.on('data', (d: Buffer) => out.push(`data:${d.toString()}`));
      sock.on('close', (hadError: boolean) => out.push(`close:${hadError}`));
    };
    const cl: string[] = [];
    const pl: string[] = [];
    log(client, cl);
    log(peer, pl);
    peer.on('data', (d: Buffer) => peer.write(d)); // echo; the server (allowHalfOpen false) then ends by itself
    const cc = closeOf(client);
    const pc = closeOf(peer);
    client.end('ping');
    assert.equal(await cc, false);
    assert.equal(await pc, false);
    await sleep(10);
    assert.deepEqual(cl.filter((e) => e.startsWith('data:')).join(''), 'data:ping', 'the client got the echo');
    for (const [side, events] of [['client', cl], ['server', pl]] as const) {
      assert.equal(events.at(-1), 'close:false', `${side}: 'close' is last (${events.join(', ')})`);
      assert.equal(events.filter((e) => e.startsWith('close')).length, 1, `${side}: one 'close'`);
      assert.equal(events.filter((e) => e === 'end').length, 1, `${side}: one 'end' (${events.join(', ')})`);
      assert.equal(events.filter((e) => e === 'finish').length, 1, `${side}: one 'finish' (${events.join(', ')})`);
      assert.ok(!events.includes('error'), `${side}: no 'error'`);
      const lastData = events.map((e) => e.startsWith('data:')).lastIndexOf(true);
      assert.ok(lastData < events.indexOf('end'), `${side}: 'data' before 'end' (${events.join(', ')})`);
    }
    assert.equal(client.readyState, 'closed');
    assert.equal(peer.readyState, 'closed');
    assert.equal(client.destroyed, true);
    assert.equal(peer.destroyed, true);
  });

  test("allowHalfOpen true on both: client end() → server 'end' yet still writable; its reply reaches the client", async (s) => {
    const { client, peer } = await s.pair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
    const atPeer = new Collector(peer);
    const atClient = new Collector(client);
    const clientFinish = next(client, 'finish');
    const peerEnd = next(peer, 'end');
    client.end('question');
    assert.equal(client.writable, false, 'not writable once end() is called');
    assert.equal(client.readyState, 'readOnly', "readyState 'readOnly' after end()");
    await clientFinish;
    await peerEnd;
    assert.equal(atPeer.text, 'question');
    assert.equal(peer.readyState, 'writeOnly', "the server's socket is 'writeOnly' after 'end'");
    assert.equal(peer.writable, true);
    await sleep(50);
    assert.equal(peer.writableEnded, false, 'allowHalfOpen: the server did not end its side by itself');
    assert.equal(peer.destroyed, false);
    assert.equal(client.destroyed, false, 'the client stays open for reading');
    assert.equal(client.readyState, 'readOnly');
    const cc = closeOf(client);
    const pc = closeOf(peer);
    peer.write('answer, part 1');
    await atClient.bytes('answer, part 1'.length);
    peer.end(' and part 2');
    assert.equal((await atClient.end()).toString(), 'answer, part 1 and part 2');
    assert.equal(await cc, false);
    assert.equal(await pc, false);
    assert.equal(client.readyState, 'closed');
    assert.equal(peer.readyState, 'closed');
  });

  test('allowHalfOpen false (the default) on the server: after the client\'s end() the server ends its side by itself', async (s) => {
    const { client, peer } = await s.pair({ client: { allowHalfOpen: true } });
    const atClient = new Collector(client);
    const atPeer = new Collector(peer);
    const peerEnd = next(peer, 'end');
    const peerFinish = next(peer, 'finish');
    const clientEnd = next(client, 'end');
    const cc = closeOf(client);
    const pc = closeOf(peer);
    client.end('bye');
    await peerEnd;
    await peerFinish; // nobody called peer.end()
    assert.equal(peer.writableEnded, true, 'the server side ended automatically');
    await clientEnd;
    assert.equal(atPeer.text, 'bye');
    assert.equal(atClient.length, 0);
    assert.equal(await pc, false);
    assert.equal(await cc, false);
  });

  test("'end' is emitted without a 'data' listener when the peer ends having sent nothing", async (s) => {
    const { client, peer } = await s.pair();
    // The client has no 'data' / 'readable' listener: a net.Socket reads by itself, so a FIN still gives 'end'.
    const ended = next(client, 'end');
    const cc = closeOf(client);
    peer.end();
    await ended;
    assert.equal(await cc, false);
  });

  test("destroy() without an error: 'close'(false), no 'error'; the peer gets 'end' then 'close'(false)", async (s) => {
    const { client, peer } = await s.pair();
    const errors = counter(client, 'error');
    const peerData = new Collector(peer);
    const peerEnd = next(peer, 'end');
    const cc = closeOf(client);
    const pc = closeOf(peer);
    client.write('last');
    assert.equal(client.destroy(), client, 'destroy() returns the socket');
    assert.equal(client.destroyed, true);
    assert.equal(client.readyState, 'closed');
    assert.equal(await cc, false, 'close(hadError) is false');
    await peerEnd;
    assert.equal(peerData.text, 'last', 'what was written before destroy() arrives');
    assert.equal(await pc, false);
    assert.equal(errors.n, 0);
  });

  test("destroy(err): 'error' with that very error, then 'close'(true); the peer still closes cleanly", async (s) => {
    const { client, peer } = await s.pair();
    const order: string[] = [];
    const why = new Error('because');
    let got: unknown;
    client.on('error', (e) => { got = e; order.push('error'); });
    client.on('close', (h: boolean) => order.push(`close:${h}`));
    new Collector(peer);
    const pc = closeOf(peer);
    const cc = closeOf(client);
    client.destroy(why);
    assert.equal(client.destroyed, true);
    assert.equal(await cc, true);
    assert.equal(got, why, "'error' carries the error given to destroy()");
    assert.deepEqual(order, ['error', 'close:true']);
    assert.equal(await pc, false, "the peer's close has no error");
  });

  test("destroy() while connecting: no 'connect', 'close'(false)", async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const c = s.connect(port, '127.0.0.1');
    const connects = counter(c, 'connect');
    const errors = counter(c, 'error');
    const cc = closeOf(c);
    assert.equal(c.connecting, true);
    c.destroy();
    assert.equal(c.connecting, false, 'no longer connecting');
    assert.equal(await cc, false);
    await sleep(100);
    assert.equal(connects.n, 0, "no 'connect' after destroy()");
    assert.equal(errors.n, 0);
    assert.equal(c.readyState, 'closed');
  });
});
