// The -e loops' wait (loops-events.ts, pollEv): with nothing in the CQ it arms the CQ and yields to the event
// loop instead of spinning; the peer's SEND then raises the event and the wait returns that completion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WcOpcode, WcStatus, WrOpcode } from '../verbs';
import { withPair, withTimeout } from '../../test/helpers/verbs';
import { pollEv } from './loops-events';

test('pollEv sleeps on the channel while the CQ is empty, and wakes with the completion the event announced', { timeout: 20_000 }, async () => {
  await withPair({ server: { withChannel: true } }, async ({ client, server }) => {
    server.qp.postRecv({ wrId: 7, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    let settled = false;
    const wait = pollEv(server.cq, server.channel!, 1).then((n) => { settled = true; return n; });
    // Several event-loop turns with nothing sent: still waiting (a spinning wait would never let this run).
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'nothing to take yet');
    client.qp.postSend({ wrId: 1, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 16, lkey: client.mr.lkey }] });
    assert.equal(await withTimeout(wait, 5000, 'pollEv'), 1);
    const wc = server.cq.wc[0]!;
    assert.deepEqual([wc.wrId, wc.status, wc.opcode, wc.byteLen], [7, WcStatus.SUCCESS, WcOpcode.RECV, 16]);
    // The completion is there already: no sleep at all.
    server.qp.postRecv({ wrId: 8, sgList: [{ addr: server.mr.addr, length: 64, lkey: server.mr.lkey }] });
    client.qp.postSend({ wrId: 2, opcode: WrOpcode.SEND, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }] });
    assert.equal(await pollEv(server.cq, server.channel!, 4), 1);
    assert.equal(server.cq.wc[0]!.wrId, 8);
  });
});
