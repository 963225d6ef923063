/**
 * Leaks across many short connections between two preloaded processes: 10 000 cycles of connect, write, read
 * the echo, end (4 at a time), within 120 s. Afterwards both processes' open fds (/proc/<pid>/fd) and memfd
 * mappings (/proc/<pid>/maps lines with 'memfd:') are back near their start (the children report their own
 * counts, after GC), the server holds no connection, every connection went over kbypass (debug lines on both
 * sides), and nothing new is in /dev/shm.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertBypassed, killPrograms, run, shmEntries, startServer, type Message, type Program } from './harness';

after(killPrograms);

const CYCLES = 10_000;
const PARALLEL = 4;
const WARMUP = 20;
const LIMIT_MS = 120_000;
/** Allowed growth after the cycles: a few fds / mappings of lazily created, process-wide state. */
const FD_SLACK = 4;
const MEMFD_SLACK = 4;

interface Counts extends Message { fds: number; memfd: number }

async function stats(p: Program): Promise<Counts> {
  p.send({ cmd: 'stats' });
  return p.next<Counts>('stats', 10_000);
}

/** Ask for counts (after GC) until both are within the slack of `start`, for at most `ms`; the last counts. */
async function settled(p: Program, start: Counts, ms: number): Promise<Counts> {
  const end = Date.now() + ms;
  for (;;) {
    const c = await stats(p);
    if ((c.fds <= start.fds + FD_SLACK && c.memfd <= start.memfd + MEMFD_SLACK) || Date.now() > end) return c;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('leaks', () => {
  it(`${CYCLES} short connections (${PARALLEL} at a time): bounded in time, fds and memfd mappings back to the start`, { timeout: LIMIT_MS + 60_000 }, async (t) => {
    const shmBefore = shmEntries();
    const { p: server, port } = await startServer('echo-server.js', [], { nodeArgs: ['--expose-gc'] });
    const client = run('echo-client.js', [String(port), 'cycles', String(CYCLES), String(PARALLEL)], { nodeArgs: ['--expose-gc'] });
    const ready = await client.next<Counts & { failures: string[] }>('ready', 30_000);
    assert.deepEqual(ready.failures, [], `warm-up failures\n${client.describe()}`);
    const serverStart = await stats(server);
    const clientStart: Counts = ready;
    t.diagnostic(`start: client ${clientStart.fds} fds / ${clientStart.memfd} memfd maps; server ${serverStart.fds} fds / ${serverStart.memfd} memfd maps`);

    client.send({ cmd: 'go' });
    const done = await client.next<Message & { elapsedMs: number; failures: number; firstFailures: string[]; peak: { fds: number; memfd: number } }>('cycles-done', LIMIT_MS);
    t.diagnostic(`${CYCLES} cycles in ${done.elapsedMs} ms (${(done.elapsedMs * 1000 / CYCLES).toFixed(0)} µs each); ` +
      `client peak sampled: ${done.peak.fds} fds, ${done.peak.memfd} memfd maps`);
    assert.equal(done.failures, 0, `failed cycles: ${JSON.stringify(done.firstFailures)}\n${client.describe()}`);
    assert.ok(done.elapsedMs < LIMIT_MS, `${CYCLES} cycles took ${done.elapsedMs} ms (limit ${LIMIT_MS} ms)`);

    // Every connection (warm-up included) went over kbypass.
    assertBypassed(client, server, port, CYCLES + WARMUP);

    const clientEnd = await settled(client, clientStart, 10_000);
    const serverEnd = await settled(server, serverStart, 10_000);
    t.diagnostic(`end: client ${clientEnd.fds} fds / ${clientEnd.memfd} memfd maps; server ${serverEnd.fds} fds / ${serverEnd.memfd} memfd maps, ` +
      `${String(serverEnd['open'])} open connections, ${String(serverEnd['accepted'])} accepted`);
    assert.equal(serverEnd['open'], 0, 'server.getConnections() after the cycles');
    assert.equal(serverEnd['accepted'], CYCLES + WARMUP, "the server's 'connection' events");
    assert.ok(clientEnd.fds <= clientStart.fds + FD_SLACK, `client fds: ${clientStart.fds} at the start, ${clientEnd.fds} after`);
    assert.ok(serverEnd.fds <= serverStart.fds + FD_SLACK, `server fds: ${serverStart.fds} at the start, ${serverEnd.fds} after`);
    assert.ok(clientEnd.memfd <= clientStart.memfd + MEMFD_SLACK, `client memfd mappings: ${clientStart.memfd} at the start, ${clientEnd.memfd} after`);
    assert.ok(serverEnd.memfd <= serverStart.memfd + MEMFD_SLACK, `server memfd mappings: ${serverStart.memfd} at the start, ${serverEnd.memfd} after`);

    client.send({ cmd: 'quit' });
    assert.equal((await client.exit(5000)).code, 0);
    await server.kill();
    assert.deepEqual(shmEntries(), shmBefore, 'no new files in /dev/shm');
  });
});
