/**
 * Completion channels (ibv_comp_channel): an armed CQ raises one event for its next completion — produced by the
 * other process's requester for receive completions, by our own for send completions — or for its next
 * solicited one; events are acknowledged before the CQ can go; a channel cannot go while CQs use it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendFlags, WcOpcode, WcStatus, WrOpcode, type CompletionQueue } from '../../src/verbs';
import { pollN, withPair, withTimeout, type Side } from '../helpers/verbs';

const SIG = SendFlags.SIGNALED;
const code = (c: string) => (e: unknown): boolean => (e as { code?: string }).code === c;

/** Resolves true if `p` settles within `ms`, false otherwise (p keeps running). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.then(() => true, () => true), new Promise<boolean>((res) => { t = setTimeout(() => res(false), ms); })]);
  clearTimeout(t);
  return r;
}

function recvs(s: Side, n: number, base = 0): void {
  for (let i = 0; i < n; i++) s.qp.postRecv({ wrId: base + i, sgList: [{ addr: s.mr.addr + 64 * (base + i), length: 64, lkey: s.mr.lkey }] });
}

function send(s: Side, wrId: number, flags = 0): void {
  s.qp.postSend({ wrId, opcode: WrOpcode.SEND, sendFlags: flags, sgList: [{ addr: s.mr.addr, length: 4, lkey: s.mr.lkey }] });
}

test('requestNotify, then the peer\'s SEND: getCqEvent resolves with that CQ; one event per arm', async () => {
  await withPair({ server: { withChannel: true } }, async ({ client, server }) => {
    const channel = server.channel!;
    assert.equal(server.cq.channel, channel);
    recvs(server, 4);
    server.cq.requestNotify();
    const ev = channel.getCqEvent();
    assert.equal(await settlesWithin(ev, 20), false, 'no event before any completion');
    send(client, 1); // the client's requester completes the server's receive and raises the server's event
    const cq = await withTimeout(ev, 2000, 'getCqEvent');
    assert.equal(cq, server.cq);
    cq.ackEvents(1);
    const [wc] = await pollN(server.cq, 1);
    assert.deepEqual([wc!.wrId, wc!.status, wc!.opcode], [0, WcStatus.SUCCESS, WcOpcode.RECV]);
    // Not re-armed: the next completion raises nothing.
    const ev2 = channel.getCqEvent();
    send(client, 2);
    await pollN(server.cq, 1);
    assert.equal(await settlesWithin(ev2, 30), false, 'an unarmed CQ raises no event');
    // Re-armed: the next one does.
    server.cq.requestNotify();
    send(client, 3);
    assert.equal(await withTimeout(ev2, 2000, 'getCqEvent'), server.cq);
    server.cq.ackEvents(1);
    await pollN(server.cq, 1);
  });
});

test('an event for our own send completion (the local requester is the producer)', async () => {
  await withPair({ client: { withChannel: true } }, async ({ client, server }) => {
    client.cq.requestNotify();
    const ev = client.channel!.getCqEvent();
    client.qp.postSend({ wrId: 9, opcode: WrOpcode.RDMA_WRITE, sendFlags: SIG, sgList: [{ addr: client.mr.addr, length: 8, lkey: client.mr.lkey }], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    assert.equal(await withTimeout(ev, 2000, 'getCqEvent'), client.cq);
    client.cq.ackEvents(1);
    const [wc] = await pollN(client.cq, 1);
    assert.deepEqual([wc!.wrId, wc!.opcode], [9, WcOpcode.RDMA_WRITE]);
  });
});

test('requestNotify(solicitedOnly): a plain SEND raises no event; a SOLICITED one does', async () => {
  await withPair({ server: { withChannel: true } }, async ({ client, server }) => {
    recvs(server, 3);
    server.cq.requestNotify(true);
    const ev = server.channel!.getCqEvent();
    send(client, 1);
    send(client, 2, SendFlags.SIGNALED); // signaled is not solicited
    const plain = await pollN(server.cq, 2);
    assert.deepEqual(plain.map((w) => w.status), [0, 0]);
    assert.equal(await settlesWithin(ev, 30), false, 'unsolicited completions pass silently');
    send(client, 3, SendFlags.SOLICITED);
    assert.equal(await withTimeout(ev, 2000, 'getCqEvent'), server.cq);
    server.cq.ackEvents(1);
    const [wc] = await pollN(server.cq, 1);
    assert.equal(wc!.wrId, 2);
    // SOLICITED works with immediate data and RDMA WRITE WITH IMM too.
    recvs(server, 1, 3);
    server.cq.requestNotify(true);
    const ev2 = server.channel!.getCqEvent();
    client.qp.postSend({ wrId: 4, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: 5, sendFlags: SendFlags.SOLICITED, sgList: [], rdma: { remoteAddr: server.mr.addr, rkey: server.mr.rkey } });
    assert.equal(await withTimeout(ev2, 2000, 'getCqEvent'), server.cq);
    server.cq.ackEvents(1);
    const [w2] = await pollN(server.cq, 1);
    assert.deepEqual([w2!.wrId, w2!.opcode, w2!.immData], [3, WcOpcode.RECV_RDMA_WITH_IMM, 5]);
  });
});

test('events queued before getCqEvent are returned at once, one per event', async () => {
  await withPair({ server: { withChannel: true } }, async ({ client, server }) => {
    recvs(server, 2);
    server.cq.requestNotify();
    send(client, 1);
    await pollN(server.cq, 1);
    server.cq.requestNotify();
    send(client, 2);
    await pollN(server.cq, 1);
    const a = await withTimeout(server.channel!.getCqEvent(), 2000, 'first event');
    const b = await withTimeout(server.channel!.getCqEvent(), 2000, 'second event');
    assert.equal(a, server.cq);
    assert.equal(b, server.cq);
    assert.equal(await settlesWithin(server.channel!.getCqEvent(), 20), false, 'exactly two events');
    server.cq.ackEvents(2);
  });
});

test('ackEvents; cq.destroy() is EBUSY while events are unacknowledged or QPs use it; channel.destroy() while CQs use it', async () => {
  await withPair({ server: { withChannel: true } }, async ({ client, server }) => {
    const channel = server.channel!;
    recvs(server, 1);
    server.cq.requestNotify();
    const ev = channel.getCqEvent();
    send(client, 1);
    const cq: CompletionQueue = await withTimeout(ev, 2000, 'getCqEvent');
    assert.throws(() => cq.ackEvents(2), code('EINVAL'), 'cannot acknowledge more than received');
    assert.throws(() => cq.ackEvents(-1), code('EINVAL'));
    assert.throws(() => cq.destroy(), code('EBUSY'), 'a QP uses it');
    await client.conn!.disconnect();
    server.qp.destroy();
    assert.throws(() => cq.destroy(), code('EBUSY'), 'one event unacknowledged');
    assert.throws(() => channel.destroy(), code('EBUSY'), 'the CQ uses the channel');
    cq.ackEvents(1);
    assert.throws(() => cq.ackEvents(1), code('EINVAL'));
    cq.destroy();
    channel.destroy();
    await assert.rejects(channel.getCqEvent(), code('EBADF'));
    // (withPair's cleanup destroys the rest; destroying twice is a no-op.)
  });
});

test('requestNotify on a CQ without a channel → EINVAL', async () => {
  await withPair({}, ({ client }) => {
    assert.throws(() => client.cq.requestNotify(), code('EINVAL'));
  });
});
