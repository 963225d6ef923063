import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHello, encodeHello, helloVersion, HELLO_FIXED, KIND_ACCEPT, KIND_HELLO, KIND_REFUSE, type Hello } from './hello';

const hello: Hello = { kind: KIND_HELLO, family: 4, reason: 0, dstAddress: '127.0.0.1', dstPort: 3000, srcAddress: '127.0.0.1', srcPort: 40000 };

test('an opening message round-trips, v4 and v6', () => {
  assert.deepEqual(decodeHello(encodeHello(hello)), hello);
  const v6: Hello = { ...hello, kind: KIND_ACCEPT, family: 6, dstAddress: '::1', srcAddress: 'fe80::1', dstPort: 65535, srcPort: 1 };
  assert.deepEqual(decodeHello(encodeHello(v6)), v6);
  const refuse: Hello = { ...hello, kind: KIND_REFUSE, reason: 3, dstAddress: '', srcAddress: '' };
  assert.deepEqual(decodeHello(encodeHello(refuse)), refuse);
});

test('the layout: magic, version, kind, family, ports little-endian, lengths', () => {
  const b = encodeHello(hello);
  assert.equal(b.toString('latin1', 0, 4), 'KBNT');
  assert.deepEqual([b[4], b[5], b[6], b[7]], [1, KIND_HELLO, 4, 0]);
  assert.equal(b.readUInt16LE(8), 3000);
  assert.equal(b.readUInt16LE(10), 40000);
  assert.deepEqual([b[12], b[13]], [9, 9]);
  assert.equal(b.length, HELLO_FIXED + 18);
});

test('malformed messages decode to null (a hostile or buggy peer)', () => {
  const good = encodeHello(hello);
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['short', good.subarray(0, HELLO_FIXED - 1)],
    ['truncated address', good.subarray(0, good.length - 1)],
    ['trailing byte', Buffer.concat([good, Buffer.from([0])])],
    ['huge', Buffer.alloc(4096)],
  ];
  const mutate = (i: number, v: number, name: string): void => { const c = Buffer.from(good); c[i] = v; cases.push([name, c]); };
  mutate(0, 0, 'bad magic');
  mutate(4, 2, 'other version');
  mutate(5, 0, 'kind 0');
  mutate(5, 9, 'kind 9');
  mutate(6, 5, 'family 5');
  mutate(6, 6, 'family says v6, addresses are v4');
  mutate(12, 200, 'length beyond the message');
  mutate(HELLO_FIXED, 0x41, 'not an address');
  for (const [name, m] of cases) assert.equal(decodeHello(m), null, name);
});

test('helloVersion tells a newer peer from garbage', () => {
  const newer = encodeHello(hello);
  newer[4] = 7;
  assert.equal(helloVersion(newer), 7);
  assert.equal(helloVersion(Buffer.from('GET / HTTP/1.1')), -1);
  assert.equal(helloVersion(Buffer.alloc(2)), -1);
});
