/**
 * Peer death over a bypassed connection, both preloaded: a server streaming to a client is killed with SIGKILL
 * mid-stream, and the client's socket must end / close within a bounded time (not hang), the client must then
 * exit by itself, and nothing is left in /dev/shm. The other way round too: the client killed mid-stream, the
 * server's socket closes, its connection count drops to 0, and it keeps serving new (bypassed) connections.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertBypassed, killPrograms, PLAIN, run, shmEntries, startServer, until } from './harness';

after(killPrograms);

const opts = { timeout: 60_000 };
/** How long after the SIGKILL the survivor's socket must have closed. */
const LIMIT_MS = 2000;

describe('peer death (SIGKILL mid-stream)', () => {
  it('server killed: the client socket ends/closes within the limit and the client exits', opts, async (t) => {
    const shmBefore = shmEntries();
    const { p: server, port } = await startServer('echo-server.js', ['stream']);
    const client = run('echo-client.js', [String(port), 'sink']);
    const streaming = await client.next('streaming', 20_000);
    assertBypassed(client, server, port, 1);
    const closed = client.next('closed', LIMIT_MS + 5000);
    const t0 = performance.now();
    await server.kill('SIGKILL');
    const c = await closed;
    const ms = performance.now() - t0;
    t.diagnostic(`client 'close' ${ms.toFixed(1)} ms after the SIGKILL (sawEnd ${String(c['sawEnd'])}, ` +
      `hadError ${String(c['hadError'])}, code ${String(c['code'])}, ${String(c['bytes'])} bytes; ${String(streaming['bytes'])} when killed)`);
    assert.ok(ms < LIMIT_MS, `the client's socket closed ${ms.toFixed(0)} ms after the kill (limit ${LIMIT_MS} ms)`);
    assert.ok((c['bytes'] as number) >= (streaming['bytes'] as number));
    const exit = await client.exit(5000);
    assert.equal(exit.code, 0, `the client exits by itself once its socket closed\n${client.describe()}`);
    assert.deepEqual(shmEntries(), shmBefore, 'no new files in /dev/shm');
  });

  it('client killed: the server socket closes within the limit, and the server keeps serving', opts, async (t) => {
    const shmBefore = shmEntries();
    const { p: server, port } = await startServer('echo-server.js', ['stream']);
    const client = run('echo-client.js', [String(port), 'sink']);
    await client.next('streaming', 20_000);
    assertBypassed(client, server, port, 1);
    const closed = server.next('conn-closed', LIMIT_MS + 5000);
    const t0 = performance.now();
    await client.kill('SIGKILL');
    const c = await closed;
    const ms = performance.now() - t0;
    t.diagnostic(`server connection 'close' ${ms.toFixed(1)} ms after the SIGKILL (hadError ${String(c['hadError'])}, ` +
      `code ${String(c['code'])}, ${String(c['bytesWritten'])} bytes written)`);
    assert.ok(ms < LIMIT_MS, `the server's socket closed ${ms.toFixed(0)} ms after the kill (limit ${LIMIT_MS} ms)`);
    server.send({ cmd: 'stats' });
    assert.equal((await server.next('stats'))['open'], 0, 'server.getConnections() after the peer died');

    // A new client is served (over kbypass again).
    const second = run('echo-client.js', [String(port), 'sink']);
    await second.next('streaming', 20_000);
    if (!PLAIN) {
      assert.equal(second.decisions().connectKbypass.length, 1, second.describe());
      assert.equal(server.decisions().accept.filter((a) => a.port === port).length, 2, server.describe());
    }
    const closed2 = server.next('conn-closed', LIMIT_MS + 5000);
    await second.kill('SIGKILL');
    await closed2;
    await until(async () => {
      server.send({ cmd: 'stats' });
      return (await server.next('stats'))['open'] === 0;
    }, 2000, 'the server to count no connection');
    await server.kill('SIGKILL');
    assert.deepEqual(shmEntries(), shmBefore, 'no new files in /dev/shm');
  });
});
