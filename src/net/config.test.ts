import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFrom, parsePorts, portAllowed } from './config';

test('KBYPASS_PORTS: ports and ranges', () => {
  assert.deepEqual(parsePorts('3000, 8000-8002,,9'), [[3000, 3000], [8000, 8002], [9, 9]]);
  for (const bad of ['0', '65536', '10-5', 'http', '1-2-3', '-5']) {
    assert.throws(() => parsePorts(bad), { code: 'ERR_KBYPASS_BAD_CONFIG' }, bad);
  }
});

test('the allow-list decides which ports are bypassed', () => {
  const c = configFrom({ KBYPASS_PORTS: '3000,8000-8002' });
  assert.equal(c.enabled, true);
  assert.deepEqual([2999, 3000, 3001, 8000, 8002, 8003].map((p) => portAllowed(p, c)), [false, true, false, true, true, false]);
  const all = configFrom({});
  assert.equal(portAllowed(1, all), true);
  assert.equal(portAllowed(65535, all), true);
});

test('KBYPASS=off (and its spellings) turns everything off; other values leave it on', () => {
  for (const v of ['off', 'OFF', '0', 'false', 'no']) assert.equal(configFrom({ KBYPASS: v }).enabled, false, v);
  for (const v of ['on', '1', '', 'yes']) assert.equal(configFrom({ KBYPASS: v }).enabled, true, v);
  assert.equal(portAllowed(3000, configFrom({ KBYPASS: 'off' })), false);
});

test('a bad allow-list turns the bypass off (fail safe) instead of throwing', () => {
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => { writes.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    assert.equal(configFrom({ KBYPASS_PORTS: '80,nope' }).enabled, false);
  } finally {
    process.stderr.write = orig;
  }
  assert.match(writes.join(''), /KBYPASS_PORTS: 'nope' is not a port.*kernel bypass is off/);
});

test('KBYPASS_DEBUG', () => {
  assert.equal(configFrom({ KBYPASS_DEBUG: '1' }).debug, true);
  assert.equal(configFrom({}).debug, false);
});
