/**
 * Lifetime: close() detaches the program and closes every fd; the same queue can be opened again at once (the
 * kernel's asynchronous teardown is retried); views kept after close read stale bytes and never crash the
 * process, before and after garbage collection; the data path after close throws ERR_KBYPASS_PORT_CLOSED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { nodeIn } from '../../bench/packet/testbed';
import { testbedFor } from '../helpers/packet';

const OPEN_FIXTURE = path.join(__dirname, '..', 'fixtures', 'packet-open.js');

for (const mode of ['xdp', 'packet'] as const) {
  test(`${mode} port: 20 open/close rounds on one queue leak nothing, views outlive close`, async (t) => {
    const tb = testbedFor(t);
    if (tb === null) return;
    const p = nodeIn(tb.nsB, OPEN_FIXTURE, [JSON.stringify([{ ifname: tb.ifB, mode }]), 'lifetime'], { nodeArgs: ['--expose-gc'] });
    const first = await p.nextJson<{ ok: boolean }>(15_000);
    assert.equal(first.ok, true);
    const { lifetime } = await p.nextJson<{ lifetime: Record<string, unknown> }>(30_000);
    await p.succeeded();
    assert.equal(lifetime['attachedWhileOpen'], mode === 'xdp');
    assert.equal(lifetime['attachedAfterClose'], false);
    assert.equal(lifetime['staleRead'], 0x5a);
    assert.equal(lifetime['receiveAfterClose'], 'ERR_KBYPASS_PORT_CLOSED');
    assert.equal(lifetime['transmitAfterClose'], 'ERR_KBYPASS_PORT_CLOSED');
    assert.equal(lifetime['statsAfterClose'], 'number');
    assert.equal(lifetime['fdsAfter'], lifetime['fdsBefore']);
  });
}
