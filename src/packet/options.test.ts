// resolvePortOptions: defaults and Node-style errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePortOptions } from './options';

test('defaults', () => {
  const o = resolvePortOptions({ ifname: 'eth0' });
  assert.deepEqual({ ...o }, {
    ifname: 'eth0', queue: 0, mode: 'auto', rx: true, tx: true, xdpMode: 'auto', copyMode: 'auto', needWakeup: true,
    frameSize: 2048, frameCount: 4096, rxRingSize: 2048, txRingSize: 2048, blockSize: 262144, blockCount: 64,
    blockTimeoutMs: 2, txFrameSize: 2048, txFrameCount: 1024, qdiscBypass: true, fanout: null, lock: false,
    publishStats: true,
  });
});

test('fanout defaults and checks', () => {
  assert.deepEqual(resolvePortOptions({ ifname: 'eth0', fanout: { id: 7 } }).fanout, { id: 7, type: 'hash', defrag: false, rollover: false });
  assert.throws(() => resolvePortOptions({ ifname: 'eth0', fanout: { id: 70000 } }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => resolvePortOptions({ ifname: 'eth0', fanout: { id: 1, type: 'x' as never } }), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => resolvePortOptions({ ifname: 'eth0', fanout: null as never }), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('bad values', () => {
  const bad: Array<[unknown, string]> = [
    [null, 'ERR_INVALID_ARG_TYPE'], ['eth0', 'ERR_INVALID_ARG_TYPE'], [{ ifname: 3 }, 'ERR_INVALID_ARG_TYPE'],
    [{ ifname: '' }, 'ERR_INVALID_ARG_VALUE'], [{ ifname: 'a/b' }, 'ERR_INVALID_ARG_VALUE'],
    [{ ifname: 'e', queue: 1.5 }, 'ERR_OUT_OF_RANGE'], [{ ifname: 'e', queue: '1' }, 'ERR_INVALID_ARG_TYPE'],
    [{ ifname: 'e', frameSize: 3000 }, 'ERR_INVALID_ARG_VALUE'], [{ ifname: 'e', frameSize: 8192 }, 'ERR_OUT_OF_RANGE'],
    [{ ifname: 'e', txRingSize: 100 }, 'ERR_INVALID_ARG_VALUE'], [{ ifname: 'e', blockSize: 5000 }, 'ERR_INVALID_ARG_VALUE'],
    [{ ifname: 'e', blockCount: 1 }, 'ERR_OUT_OF_RANGE'], [{ ifname: 'e', xdpMode: 'driver' }, 'ERR_INVALID_ARG_VALUE'],
    [{ ifname: 'e', copyMode: true }, 'ERR_INVALID_ARG_VALUE'], [{ ifname: 'e', publishStats: 'no' }, 'ERR_INVALID_ARG_TYPE'],
    [{ ifname: 'e', rx: false, tx: false }, 'ERR_INVALID_ARG_VALUE'],
    [{ ifname: 'e', frameCount: 2048 }, 'ERR_INVALID_ARG_VALUE'], // RX 2048 + TX 2048 need 4096
  ];
  for (const [o, code] of bad) assert.throws(() => resolvePortOptions(o), { code }, JSON.stringify(o));
  // one direction needs only its own ring's frames
  assert.equal(resolvePortOptions({ ifname: 'e', tx: false, frameCount: 2048 }).frameCount, 2048);
});
