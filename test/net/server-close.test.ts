/**
 * server.close() with bypassed connections open, both preloaded: from then on new connections are refused
 * (ECONNREFUSED, as over TCP: the endpoint is gone and so is the TCP listener), the open ones keep working until
 * the client ends them one by one, and the server's 'close' comes only after the last has ended.
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertBypassed, killPrograms, PLAIN, run, startServer, tcpEstablishedOn, type Program } from './harness';

after(killPrograms);

async function echo(client: Program, id: string, data: string): Promise<void> {
  client.send({ cmd: 'echo', id, data });
  const m = await client.next('echo', 5000).catch(async (e: Error) => {
    if (client.has('echo-failed')) throw new Error(`echo on ${id} failed: ${JSON.stringify(await client.next('echo-failed'))}`);
    throw e;
  });
  assert.equal(m['id'], id);
  assert.equal(m['data'], data, `echo on connection ${id}`);
}

async function end(client: Program, id: string): Promise<void> {
  client.send({ cmd: 'end', id });
  const m = await client.next('ended', 5000);
  assert.equal(m['id'], id);
  assert.equal(m['hadError'], false, `connection ${id} closed with an error\n${client.describe()}`);
}

describe('server.close() with open connections', () => {
  it('refuses new connections, serves the open ones until they end, then emits close', { timeout: 60_000 }, async () => {
    const { p: server, port } = await startServer('echo-server.js');
    const client = run('echo-client.js', [String(port), 'driven']);
    const ids = ['a', 'b', 'c'];
    for (const id of ids) {
      client.send({ cmd: 'open', id });
      assert.equal((await client.next('opened', 5000))['id'], id);
      await echo(client, id, `before close on ${id}`);
    }
    assertBypassed(client, server, port, 3);
    if (!PLAIN) assert.equal(tcpEstablishedOn(port), 0, 'the open connections are not TCP connections');

    server.send({ cmd: 'close' });
    await server.next('closing', 5000);

    // New connections are refused.
    for (const id of ['d', 'e']) {
      client.send({ cmd: 'open', id });
      const failed = await client.next('open-failed', 5000).catch((e: Error) => {
        throw new Error(`a connection after server.close() was not refused (${client.has('opened') ? 'it opened' : e.message})\n${client.describe()}`);
      });
      assert.equal(failed['id'], id);
      assert.equal(failed['code'], 'ECONNREFUSED');
    }

    // The open ones keep working; 'close' waits for the last of them.
    for (const id of ids) await echo(client, id, `after close on ${id}`);
    await end(client, 'a');
    await echo(client, 'b', 'b still works after a ended');
    await echo(client, 'c', 'c still works after a ended');
    await end(client, 'b');
    await echo(client, 'c', 'c still works after b ended');
    await sleep(200);
    assert.equal(server.has('server-close'), false, `'close' came while connection c was still open\n${server.describe()}`);
    server.send({ cmd: 'stats' });
    assert.equal((await server.next('stats'))['open'], 1, 'server.getConnections() with only c open');
    await end(client, 'c');
    await server.next('server-close', 5000);

    // The two refused attempts: the client's decision lines for them (no endpoint any more) say tcp.
    if (!PLAIN) {
      const d = client.decisions();
      assert.equal(d.connectKbypass.length, 3, client.describe());
      assert.equal(d.connectTcp.length, 2, `the refused connections are logged 'via tcp (…)'\n${client.describe()}`);
      assert.equal(server.decisions().accept.length, 3);
    }
    client.send({ cmd: 'quit' });
    assert.equal((await client.exit(5000)).code, 0);
  });
});
