/**
 * Argument validation (TypeError ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE, RangeError ERR_OUT_OF_RANGE)
 * and rendezvous failures: ENOENT, ECONNREFUSED, EADDRINUSE, a stale socket file taken over, timeouts, aborts.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, listen } from '../../src/index';
import { native } from '../../src/native/binding';
import { isEventfd } from '../../src/channel/rendezvous';
import { killPeers, spawnPeer } from '../helpers/peer';
import { collect, next, pair, startServer, tmpSocketPath, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
after(killPeers);

type Coded = Error & { code?: string };
const typeErr = (e: unknown) => e instanceof TypeError && (e as Coded).code === 'ERR_INVALID_ARG_TYPE';
const valueErr = (e: unknown) => e instanceof TypeError && (e as Coded).code === 'ERR_INVALID_ARG_VALUE';
const rangeErr = (e: unknown) => e instanceof RangeError && (e as Coded).code === 'ERR_OUT_OF_RANGE';
const sysErr = (code: string) => (e: unknown) => (e as Coded).code === code;

describe('argument validation', () => {
  it('listen() checks its path and options synchronously', opts, () => {
    const p = tmpSocketPath();
    const bad: [unknown, unknown, (e: unknown) => boolean][] = [
      [undefined, undefined, typeErr],
      [42, undefined, typeErr],
      ['', undefined, valueErr],
      ['/tmp/a\0b', undefined, valueErr],
      ['\0', undefined, valueErr],
      [`/tmp/${'x'.repeat(200)}`, undefined, valueErr],
      [p, 'options', typeErr],
      [p, { ringSize: 5000 }, valueErr],     // not a power of two
      [p, { ringSize: 1024 }, rangeErr],     // below 4 KiB
      [p, { ringSize: 2 ** 31 }, rangeErr],  // above 1 GiB
      [p, { ringSize: '4096' }, typeErr],
      [p, { ringSize: 4096.5 }, rangeErr],
      [p, { ringSize: NaN }, rangeErr],
      [p, { maxRingSize: 3 << 12 }, valueErr],
      [p, { maxMessageSize: 0 }, rangeErr],
      [p, { maxMessageSize: 2 ** 31 }, rangeErr],
      [p, { mode: 0o1000 }, rangeErr],
      [p, { mode: '666' }, typeErr],
      [p, { backlog: 0 }, rangeErr],
      [p, { hugePages: 1 }, typeErr],
      [p, { lock: 'yes' }, typeErr],
      [p, { populate: 0 }, typeErr],
      [p, { authorize: true }, typeErr],
      [p, { handshakeTimeout: 0 }, rangeErr],
      [p, { closeTimeout: -1 }, rangeErr],
      [p, { idle: 5 }, typeErr],
      [p, { idle: { spinMicros: -1 } }, rangeErr],
      [p, { idle: { spinMicros: 2e6 } }, rangeErr],
      [p, { idle: { yieldMicros: 'x' } }, typeErr],
    ];
    for (const [path_, options, check] of bad) {
      assert.throws(() => listen(path_ as string, options as object), check, `listen(${JSON.stringify(path_)}, ${JSON.stringify(options)})`);
    }
    assert.equal(fs.existsSync(p), false, 'nothing was created');
  });

  it('connect() rejects bad arguments with the same codes', opts, async () => {
    const p = tmpSocketPath();
    const bad: [unknown, unknown, (e: unknown) => boolean][] = [
      [null, undefined, typeErr],
      ['', undefined, valueErr],
      ['a\0b', undefined, valueErr],
      [p, 7, typeErr],
      [p, { ringSize: 3000 }, valueErr],
      [p, { ringSize: 1 << 31 }, rangeErr],
      [p, { timeout: 0 }, rangeErr],
      [p, { timeout: '1' }, typeErr],
      [p, { signal: {} }, typeErr],
      [p, { maxMessageSize: -5 }, rangeErr],
      [p, { idle: { yieldMicros: -1 } }, rangeErr],
    ];
    for (const [path_, options, check] of bad) {
      let promise: Promise<unknown> | undefined;
      assert.doesNotThrow(() => { promise = connect(path_ as string, options as object); }, 'connect() never throws');
      await assert.rejects(promise!, check, `connect(${JSON.stringify(path_)}, ${JSON.stringify(options)})`);
    }
  });

  it('send / trySend / claim / poll / commit check their arguments', opts, async () => {
    const p = await pair();
    try {
      const ch = p.cli;
      const b = new Uint8Array(10);
      assert.throws(() => ch.send(42 as unknown as string), typeErr);
      assert.throws(() => ch.send(null as unknown as string), typeErr);
      assert.throws(() => ch.send([1, 2] as unknown as Uint8Array), typeErr);
      assert.throws(() => ch.send(new ArrayBuffer(4) as unknown as Uint8Array), typeErr);
      assert.throws(() => ch.send(b, -1), rangeErr);
      assert.throws(() => ch.send(b, 11), rangeErr);
      assert.throws(() => ch.send(b, 1.5), rangeErr);
      assert.throws(() => ch.send(b, 0, 11), rangeErr);
      assert.throws(() => ch.send(b, 5, 6), rangeErr);
      assert.throws(() => ch.send(b, 0, -1), rangeErr);
      assert.throws(() => ch.send(b, '1' as unknown as number), typeErr);
      assert.throws(() => ch.send(b, 0, '1' as unknown as number), typeErr);
      assert.throws(() => ch.trySend('str' as unknown as Uint8Array), typeErr, 'trySend takes no strings');
      assert.throws(() => ch.trySend(b, 2, 9), rangeErr);
      assert.throws(() => ch.trySend(b, NaN), rangeErr);
      assert.throws(() => ch.trySend(b, undefined, '3' as unknown as number), typeErr);
      assert.throws(() => ch.claim(-1), rangeErr);
      assert.throws(() => ch.claim(2.5), rangeErr);
      assert.throws(() => ch.claim(Infinity), rangeErr);
      assert.throws(() => ch.claim('5' as unknown as number), typeErr);
      assert.throws(() => ch.claim(undefined as unknown as number), typeErr);
      assert.throws(() => ch.poll(null as unknown as () => void), typeErr);
      assert.throws(() => ch.poll(() => {}, 0), rangeErr);
      assert.throws(() => ch.poll(() => {}, -1), rangeErr);
      assert.throws(() => ch.poll(() => {}, 1.5), rangeErr);
      assert.throws(() => ch.poll(() => {}, NaN), rangeErr);
      assert.throws(() => ch.poll(() => {}, '10' as unknown as number), typeErr);
      const c = ch.claim(4)!;
      assert.throws(() => c.commit(5), rangeErr);
      assert.throws(() => c.commit(-1), rangeErr);
      assert.throws(() => c.commit('2' as unknown as number), typeErr);
      c.abort();
      // Nothing of the refused calls was sent; the channel still works.
      const got = collect(p.srv, 1);
      assert.equal(ch.send(b, 2, 3), true);
      assert.equal((await got)[0]!.length, 3);
    } finally {
      await p.close();
    }
  });

  it('poll(handler, limit) is bounded by limit: 1 hands over exactly one', opts, async () => {
    const p = await pair();
    try {
      for (let i = 0; i < 5; i++) p.cli.send('m');
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(p.srv.poll(() => {}, 1), 1);
      assert.equal(p.srv.poll(() => {}, Infinity), 4);
    } finally {
      await p.close();
    }
  });
});

describe('rendezvous failures', () => {
  it('isEventfd: a peer doorbell must be a non-blocking eventfd; any other fd is refused', () => {
    const n = native();
    const efd = n.eventfd();
    const file = fs.openSync(__filename, 'r');
    const memfd = n.memfdCreate('kbypass-test', 4096, 0);
    try {
      assert.equal(isEventfd(efd), true);
      assert.equal(isEventfd(file), false, 'a regular file');
      assert.equal(isEventfd(memfd), false, 'a memfd');
      assert.equal(isEventfd(-1), false, 'no fd');
    } finally {
      for (const fd of [efd, memfd]) n.close(fd);
      fs.closeSync(file);
    }
  });

  it('connect to a missing path rejects with ENOENT', opts, async () => {
    await assert.rejects(connect(tmpSocketPath()), (e: Coded & { syscall?: string }) => e.code === 'ENOENT' && e.syscall === 'connect');
  });

  it('a dead server leaves its socket file: connect gets ECONNREFUSED; a new listen() takes it over', opts, async () => {
    const p = tmpSocketPath();
    const child = spawnPeer('streamer', ['server', p]);
    await child.next('listening');
    await child.kill('SIGKILL');
    assert.ok(fs.lstatSync(p).isSocket(), 'the dead server left its socket file');
    await assert.rejects(connect(p), sysErr('ECONNREFUSED'));

    const server = await startServer(undefined, p);
    try {
      const accepted = next(server, 'channel');
      const c = await connect(p);
      await accepted;
      c.destroy();
    } finally {
      await server.close();
    }
  });

  it("listen twice on one path: the second emits 'error' EADDRINUSE; the first keeps serving", opts, async () => {
    const first = await startServer();
    try {
      const second = listen(first.address());
      const error = await next<Coded>(second, 'error');
      assert.equal(error.code, 'EADDRINUSE');
      assert.equal(second.listening, false);
      assert.ok(fs.existsSync(first.address()), 'the first server keeps its file');
      await second.close();
      assert.ok(fs.existsSync(first.address()), "closing the failed server does not remove the first one's file");
      const accepted = next(first, 'channel');
      const c = await connect(first.address());
      await accepted;
      c.destroy();
    } finally {
      await first.close();
    }
  });

  it('listen on a regular file: EADDRINUSE, and the file is left alone', opts, async () => {
    const p = tmpSocketPath();
    fs.writeFileSync(p, 'precious');
    const server = listen(p);
    assert.equal((await next<Coded>(server, 'error')).code, 'EADDRINUSE');
    assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
  });

  it("listen in a missing directory: 'error' ENOENT", opts, async () => {
    const server = listen(path.join(tmpSocketPath(), 'nope', 'x.sock'));
    assert.equal((await next<Coded>(server, 'error')).code, 'ENOENT');
  });

  it('connect to a listener that never answers: ETIMEDOUT after options.timeout; abort: AbortError', opts, async () => {
    const n = native();
    const p = tmpSocketPath();
    const fd = n.unixListen(p, false, 0o600, 8); // accepts into the backlog, never answers
    try {
      const t0 = Date.now();
      await assert.rejects(connect(p, { timeout: 100 }), sysErr('ETIMEDOUT'));
      const ms = Date.now() - t0;
      assert.ok(ms >= 90 && ms < 2000, `timed out after ${ms} ms`);
      const ac = new AbortController();
      const pending = connect(p, { signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(pending, (e: Coded) => e.name === 'AbortError' && e.code === 'ABORT_ERR');
      await assert.rejects(connect(p, { signal: AbortSignal.abort() }), (e: Coded) => e.name === 'AbortError');
    } finally {
      n.close(fd);
      fs.rmSync(p, { force: true });
    }
  });
});
