/**
 * node:net's Socket as a byte stream, from its documentation, on node:net and on kbypass/net: write() with
 * callbacks and encodings, end(data, cb); cork()/uncork() (writev: the corked writes arrive intact and in
 * order); pause()/resume(); setEncoding() (a multibyte character split across writes); bytesRead and
 * bytesWritten; a large transfer with back-pressure ('drain').
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeOf, Collector, forEachImpl, next, sleep, until, type Sock } from './behaviour-harness';

/** `n` bytes of a deterministic pseudo-random pattern (seeded xorshift). */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

forEachImpl('socket I/O', (_impl, test) => {
  test('write(data[, encoding][, cb]) and end(data, cb): callbacks run in order without error; bytes arrive as encoded', async (s) => {
    const { client, peer } = await s.pair();
    const atPeer = new Collector(peer);
    const calls: string[] = [];
    const cb = (name: string) => (err?: Error | null) => { calls.push(err == null ? name : `${name}:${err.message}`); };
    const expected = Buffer.concat([
      Buffer.from('héllo ', 'utf8'),
      Buffer.from('776f726c64', 'hex'),
      Buffer.from(', '),
      Buffer.from('ZnJvbQ==', 'base64'),
      Buffer.from([0x20, 0xe9, 0x20]),
      Buffer.from('ü', 'utf16le'),
      new Uint8Array([1, 2, 3]),
      Buffer.from('é', 'latin1'),
      Buffer.from('!'),
    ]);
    assert.equal(client.write('héllo ', cb('utf8 default')), true, 'a small write returns true');
    client.write('776f726c64', 'hex', cb('hex'));
    client.write(', ', 'utf8');
    client.write('ZnJvbQ==', 'base64', cb('base64'));
    client.write(Buffer.from([0x20, 0xe9, 0x20]), cb('Buffer'));
    client.write('ü', 'utf16le', cb('utf16le'));
    client.write(new Uint8Array([1, 2, 3]), cb('Uint8Array'));
    client.write('é', 'latin1', cb('latin1'));
    const finished = next(client, 'finish');
    assert.equal(client.end('!', cb('end')), client, 'end() returns the socket');
    await finished;
    const got = await atPeer.end();
    assert.deepEqual(got, expected);
    await sleep(5);
    assert.deepEqual(calls, ['utf8 default', 'hex', 'base64', 'Buffer', 'utf16le', 'Uint8Array', 'latin1', 'end'],
      'each callback once, in order, without an error');
  });

  test('an empty write sends nothing and does not end the stream; its callback runs', async (s) => {
    const { client, peer } = await s.pair();
    const atPeer = new Collector(peer);
    let called = 0;
    client.write(Buffer.alloc(0), () => { called++; });
    client.write('', () => { called++; });
    client.cork();
    client.write('ab');
    client.write(Buffer.alloc(0));
    client.write('cd');
    client.uncork();
    assert.deepEqual(await atPeer.bytes(4), Buffer.from('abcd'));
    await sleep(20);
    assert.equal(peer.readableEnded, false, 'no end from empty writes');
    assert.equal(called, 2);
    client.end('e');
    assert.deepEqual(await atPeer.end(), Buffer.from('abcde'));
  });

  test('write() and end() while still connecting: buffered, then delivered once connected', async (s) => {
    const server = s.server();
    const port = await s.listen(server);
    const accepted = next<Sock>(server, 'connection');
    const c = s.connect(port, '127.0.0.1');
    assert.equal(c.connecting, true);
    let written = false;
    assert.equal(c.write('early ', () => { written = true; }), true, 'write() while connecting returns true (buffered)');
    c.end('and done');
    assert.equal(c.connecting, true, 'still connecting');
    const peer = await accepted;
    const got = await new Collector(peer).end();
    assert.equal(got.toString(), 'early and done');
    assert.equal(written, true);
    s.expectBypassed(c, peer);
  });

  test('cork()/uncork(): nothing leaves while corked; then every write arrives intact and in order', async (s) => {
    const { client, peer } = await s.pair();
    const atPeer = new Collector(peer);
    const done: number[] = [];
    const parts: Buffer[] = [];
    client.cork();
    client.cork();
    assert.equal(client.writableCorked, 2);
    for (let i = 0; i < 200; i++) {
      // Strings and Buffers of many sizes, one of them larger than the highWaterMark.
      const part = i % 3 === 0 ? Buffer.from(`line ${i}\n`) : pattern(i === 100 ? 100_000 : 1 + i * 7, i + 1);
      parts.push(part);
      if (i % 3 === 0) client.write(part.toString(), () => done.push(i));
      else client.write(part, () => done.push(i));
    }
    const total = parts.reduce((n, p) => n + p.length, 0);
    assert.equal(client.writableLength, total, 'everything is buffered while corked');
    assert.equal(client.bytesWritten, total, 'bytesWritten counts the buffered bytes too');
    client.uncork();
    assert.equal(client.writableCorked, 1, 'cork() twice needs uncork() twice');
    await sleep(50);
    assert.equal(atPeer.length, 0, 'nothing arrived while corked');
    assert.deepEqual(done, [], 'no write callback while corked');
    client.uncork();
    assert.equal(client.writableCorked, 0);
    const got = await atPeer.bytes(total);
    assert.equal(got.length, total);
    assert.deepEqual(got, Buffer.concat(parts), 'all corked writes arrive intact and in order');
    await until(() => done.length === parts.length, 'all write callbacks');
    assert.deepEqual(done, parts.map((_, i) => i), 'callbacks in write order');
  });

  for (const side of ['client', 'server'] as const) {
    test(`pause() on the ${side}'s socket: no 'data' (nor 'end') while paused; resume() delivers everything intact`, async (s) => {
      const { client, peer } = await s.pair();
      const [reader, writer] = side === 'client' ? [client, peer] : [peer, client];
      const got = new Collector(reader);
      let endedAt = -1;
      reader.on('end', () => { endedAt = got.length; });
      assert.equal(reader.pause(), reader, 'pause() returns the socket');
      assert.equal(reader.isPaused(), true);
      const payload = pattern(1024 * 1024, 7);
      let written = false;
      writer.write(payload, () => { written = true; });
      await sleep(200);
      assert.equal(got.length, 0, "no 'data' while paused");
      assert.equal(reader.isPaused(), true);
      assert.equal(reader.resume(), reader, 'resume() returns the socket');
      assert.deepEqual(await got.bytes(payload.length), payload, 'everything, intact, after resume()');
      await until(() => written, 'the write callback');
      // Paused again, the peer's end: no 'end' until resumed, then 'end' after the last byte.
      reader.pause();
      writer.end('tail');
      await sleep(150);
      assert.equal(endedAt, -1, "no 'end' while paused");
      assert.equal(got.length, payload.length, "no 'data' while paused");
      reader.resume();
      await next(reader, 'end');
      assert.equal(endedAt, payload.length + 4, "'end' after the last byte");
      assert.equal(got.buffer.subarray(payload.length).toString(), 'tail');
    });
  }

  test("setEncoding('utf8'): 'data' gives strings; multibyte characters split across writes arrive whole", async (s) => {
    const { client, peer } = await s.pair();
    assert.equal(peer.setEncoding('utf8'), peer, 'setEncoding() returns the socket');
    assert.equal(peer.readableEncoding, 'utf8');
    const chunks: unknown[] = [];
    peer.on('data', (d: unknown) => chunks.push(d));
    const text = () => chunks.join('');
    const euro = Buffer.from('€'); // e2 82 ac
    const smile = Buffer.from('😀'); // f0 9f 98 80
    client.write(Buffer.concat([Buffer.from('a'), euro.subarray(0, 2)]));
    await until(() => text() === 'a', "'a'");
    client.write(euro.subarray(2));
    await until(() => text() === 'a€', "'a€'");
    client.write(Buffer.concat([Buffer.from('b'), smile.subarray(0, 1)]));
    await until(() => text() === 'a€b', "'a€b'");
    client.write(smile.subarray(1, 3));
    await sleep(50);
    assert.equal(text(), 'a€b', 'no partial character is delivered');
    client.end(smile.subarray(3));
    await next(peer, 'end');
    assert.ok(chunks.every((c) => typeof c === 'string'), 'every chunk is a string');
    assert.deepEqual(chunks, ['a', '€', 'b', '😀']);
  });

  test('bytesRead and bytesWritten count the exact bytes, strings by their encoded length', async (s) => {
    const { client, peer } = await s.pair();
    assert.equal(client.bytesRead, 0);
    assert.equal(client.bytesWritten, 0);
    assert.equal(peer.bytesRead, 0);
    assert.equal(peer.bytesWritten, 0);
    const atPeer = new Collector(peer);
    const atClient = new Collector(client);
    client.write('hello'); // 5
    client.write('€'); // 3
    client.write('ffee', 'hex'); // 2
    client.write(pattern(100, 3)); // 100
    await atPeer.bytes(110);
    await sleep(20);
    assert.equal(client.bytesWritten, 110, 'client.bytesWritten');
    assert.equal(peer.bytesRead, 110, 'server side bytesRead');
    const cc = closeOf(client);
    const pc = closeOf(peer);
    peer.write('x'.repeat(37));
    peer.end('yy');
    await atClient.end();
    assert.equal(atClient.length, 39);
    assert.equal(await cc, false);
    assert.equal(await pc, false);
    assert.equal(atPeer.length, 110, 'nothing else arrived');
    assert.equal(client.bytesWritten, 110, 'client.bytesWritten after close');
    assert.equal(client.bytesRead, 39, 'client.bytesRead after close');
    assert.equal(peer.bytesWritten, 39, 'server side bytesWritten after close');
    assert.equal(peer.bytesRead, 110, 'server side bytesRead after close');
  });

  test("8 MiB each way at once, in 64 KiB writes: both arrive byte-exact (full duplex), with 'drain'", async (s) => {
    // allowHalfOpen on both: the direction that finishes first must not end the other one.
    const { client, peer } = await s.pair({ server: { allowHalfOpen: true }, client: { allowHalfOpen: true } });
    const CHUNK = 64 * 1024;
    const N = 128;
    const run = async (writer: Sock, reader: Sock, seed: number) => {
      const sent = createHash('sha256');
      const recv = createHash('sha256');
      let received = 0;
      reader.on('data', (d: Buffer) => { recv.update(d); received += d.length; });
      const ended = next(reader, 'end', 8000);
      let drains = 0;
      for (let i = 0; i < N; i++) {
        const chunk = pattern(CHUNK, seed + i);
        sent.update(chunk);
        if (!writer.write(chunk)) {
          await next(writer, 'drain', 5000).catch((e: Error) => {
            throw new Error(`${e.message} at chunk ${i}: writer writableLength ${writer.writableLength}, needDrain ${writer.writableNeedDrain}; `
              + `reader got ${received}, flowing ${reader.readableFlowing}, readableLength ${reader.readableLength}; `
              + `other side: writableLength ${reader.writableLength}, got ${writer.bytesRead}, flowing ${writer.readableFlowing}, readableLength ${writer.readableLength}`);
          });
          drains++;
        }
      }
      writer.end();
      await ended;
      return { received, same: recv.digest('hex') === sent.digest('hex'), drains };
    };
    const [up, down] = await Promise.all([run(client, peer, 1000), run(peer, client, 5000)]);
    assert.deepEqual(up, { received: N * CHUNK, same: true, drains: up.drains }, 'client → server');
    assert.deepEqual(down, { received: N * CHUNK, same: true, drains: down.drains }, 'server → client');
    assert.ok(up.drains > 0 && down.drains > 0, `'drain' on both sides (${up.drains}, ${down.drains})`);
  });

  for (const dir of ['client → server', 'server → client'] as const) {
    test(`8 MiB in 64 KiB writes, ${dir}: arrives byte-exact (sha256), with back-pressure ('drain')`, async (s) => {
      const { client, peer } = await s.pair();
      const [writer, reader]: [Sock, Sock] = dir === 'client → server' ? [client, peer] : [peer, client];
      const CHUNK = 64 * 1024;
      const N = 128;
      const sent = createHash('sha256');
      const recv = createHash('sha256');
      let received = 0;
      reader.on('data', (d: Buffer) => { recv.update(d); received += d.length; });
      const ended = next(reader, 'end', 8000);
      let falses = 0;
      let drains = 0;
      for (let i = 0; i < N; i++) {
        const chunk = pattern(CHUNK, i + 1);
        sent.update(chunk);
        if (!writer.write(chunk)) {
          falses++;
          await next(writer, 'drain', 5000);
          drains++;
        }
      }
      writer.end();
      await ended;
      assert.equal(received, N * CHUNK, 'every byte arrived');
      assert.equal(recv.digest('hex'), sent.digest('hex'), 'byte-exact');
      assert.ok(falses > 0, 'write() returned false at least once');
      assert.equal(drains, falses, "a 'drain' followed each false");
      assert.equal(writer.bytesWritten, N * CHUNK);
      assert.equal(reader.bytesRead, N * CHUNK);
    });
  }
});
