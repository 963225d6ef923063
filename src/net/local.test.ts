import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { endpointPath, listenerCovers, localTarget, unmap } from './local';

test('loopback, wildcards and localhost are local; other hosts and names are not', () => {
  assert.deepEqual(localTarget('127.0.0.1'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(localTarget('127.1.2.3'), { address: '127.1.2.3', family: 4 });
  assert.deepEqual(localTarget('localhost'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(localTarget('0.0.0.0'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(localTarget('::1'), { address: '::1', family: 6 });
  assert.deepEqual(localTarget('::'), { address: '::1', family: 6 });
  assert.deepEqual(localTarget('::ffff:127.0.0.1'), { address: '127.0.0.1', family: 4 });
  assert.equal(localTarget('192.0.2.1'), null); // TEST-NET-1: never this host's
  assert.equal(localTarget('2001:db8::1'), null);
  assert.equal(localTarget('example.com'), null);
});

test("this host's interface addresses are local", () => {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4') assert.notEqual(localTarget(a.address), null, a.address);
    }
  }
});

test('a listener covers what the kernel would deliver to it', () => {
  assert.equal(listenerCovers('0.0.0.0', '127.0.0.1', 4), true);
  assert.equal(listenerCovers('0.0.0.0', '::1', 6), false);
  assert.equal(listenerCovers('::', '127.0.0.1', 4), true);
  assert.equal(listenerCovers('::', '::1', 6), true);
  assert.equal(listenerCovers('127.0.0.1', '127.0.0.1', 4), true);
  assert.equal(listenerCovers('127.0.0.1', '127.0.0.2', 4), false);
  assert.equal(listenerCovers('::1', '127.0.0.1', 4), false);
  assert.equal(listenerCovers('::ffff:127.0.0.1', '127.0.0.1', 4), true);
});

test('endpoint names are abstract and per port', () => {
  assert.equal(endpointPath(3000), '\0kbypass/net/3000');
  assert.equal(unmap('::FFFF:10.0.0.1'), '10.0.0.1');
  assert.equal(unmap('::1'), '::1');
});
