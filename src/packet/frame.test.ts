import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createUdpInfo, formatIpv4, formatMac, parseIpv4, parseMac, parseUdp, readSeq, UdpFrameTemplate,
  ETH_TYPE, IP_OFF, IP_CSUM, IP_FRAG, IP_PROTO, IP_TOTAL_LEN, IP_TTL, IP_VER_IHL, PAYLOAD_OFF, UDP_CSUM, UDP_LEN, UDP_OFF,
  type UdpFrameSpec,
} from './frame';

const spec: UdpFrameSpec = { srcMac: '02:00:00:00:00:01', dstMac: 'aa:bb:cc:dd:ee:ff', srcIp: '10.1.2.3', dstIp: '192.168.200.254', srcPort: 40000, dstPort: 9 };

// ---- an independent reference: the frame built field by field with Buffer methods, checksums summed in full

function onesSum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

function ipOf(s: string): number[] {
  return s.split('.').map(Number);
}

/** The pseudo-header followed by the UDP segment of an untagged frame. */
function udpCheckBytes(frame: Uint8Array, ipOff = IP_OFF): Buffer {
  const ihl = (frame[ipOff]! & 0x0f) * 4;
  const udp = Buffer.from(frame.subarray(ipOff + ihl, ipOff + ihl + ((frame[ipOff + ihl + 4]! << 8) | frame[ipOff + ihl + 5]!)));
  const pseudo = Buffer.alloc(12);
  Buffer.from(frame.subarray(ipOff + 12, ipOff + 20)).copy(pseudo, 0);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udp.length, 10);
  return Buffer.concat([pseudo, udp]);
}

function reference(s: UdpFrameSpec, payloadLength: number, seq: number): Buffer {
  const f = Buffer.alloc(42 + payloadLength);
  Buffer.from((s.dstMac as string).split(':').map((h) => parseInt(h, 16))).copy(f, 0);
  Buffer.from((s.srcMac as string).split(':').map((h) => parseInt(h, 16))).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(28 + payloadLength, 16);
  f.writeUInt16BE(seq % 65536, 18);
  f.writeUInt16BE(0x4000, 20); // DF
  f[22] = s.ttl ?? 64;
  f[23] = 17;
  Buffer.from(ipOf(s.srcIp as string)).copy(f, 26);
  Buffer.from(ipOf(s.dstIp as string)).copy(f, 30);
  f.writeUInt16BE(0xffff - onesSum(f.subarray(14, 34)), 24);
  f.writeUInt16BE(s.srcPort, 34);
  f.writeUInt16BE(s.dstPort, 36);
  f.writeUInt16BE(8 + payloadLength, 38);
  f.writeUInt32BE(seq, 42);
  for (let i = 4; i < payloadLength; i++) f[42 + i] = i % 256;
  if (s.udpChecksum !== false) {
    const c = 0xffff - onesSum(udpCheckBytes(f));
    f.writeUInt16BE(c === 0 ? 0xffff : c, 40);
  }
  return f;
}

const wrapSeqs = [0, 1, 2, 0xfffe, 0xffff, 0x10000, 0x10001, 0x7fffffff, 0x80000000, 0xfffeffff, 0xffff0000, 0xffff0001, 0xfffffffe, 0xffffffff];

/** A seeded xorshift32, so that a failure is reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

// ---- addresses

test('MAC and IPv4 addresses parse and format', () => {
  assert.deepEqual([...parseMac('aa:BB:0c:dd:ee:01')], [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x01]);
  assert.equal(formatMac(Uint8Array.from([9, 0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x01]), 1), 'aa:bb:0c:dd:ee:01');
  assert.equal(parseIpv4('192.0.2.1'), 0xc0000201);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  assert.equal(formatIpv4(0xc0000201), '192.0.2.1');
  assert.equal(formatIpv4(0xffffffff), '255.255.255.255');
  assert.throws(() => formatMac(new Uint8Array(6), 1), { code: 'ERR_OUT_OF_RANGE' });
});

test('bad addresses throw ERR_INVALID_ARG_VALUE', () => {
  for (const s of ['', 'aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa-bb-cc-dd-ee-ff', 'aa:bb:cc:dd:ee:fg', ' aa:bb:cc:dd:ee:ff', 'a:bb:cc:dd:ee:ff0', 42]) {
    assert.throws(() => parseMac(s as string), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, String(s));
  }
  for (const s of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-4', '1.2.3.4 ', '0x1.2.3.4', '1..3.4', null]) {
    assert.throws(() => parseIpv4(s as string), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, String(s));
  }
  for (const n of [-1, 2 ** 32, 1.5, NaN, '1']) assert.throws(() => formatIpv4(n as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
});

// ---- building

test('writeTo writes the frame field by field as the reference builds it, for many sequence numbers', () => {
  const next = rng(1);
  const specs: UdpFrameSpec[] = [spec, { ...spec, ttl: 1, srcPort: 0, dstPort: 65535 }, { ...spec, srcIp: '255.255.255.255', dstIp: '0.0.0.0', ttl: 255 }, { ...spec, udpChecksum: false }];
  for (const s of specs) {
    for (const payloadLength of [4, 5, 17, 18, 19, 1472, 8972]) {
      const t = new UdpFrameTemplate(s, payloadLength);
      assert.equal(t.frameLength, 42 + payloadLength);
      assert.equal(t.payloadLength, payloadLength);
      const buf = new Uint8Array(t.frameLength);
      const seqs = [...wrapSeqs];
      for (let i = 0; i < 300; i++) seqs.push(next());
      for (const seq of seqs) {
        assert.equal(t.writeTo(buf, 0, seq), t.frameLength);
        assert.deepEqual(Buffer.from(buf), reference(s, payloadLength, seq), `payload ${payloadLength}, seq 0x${seq.toString(16)}`);
      }
    }
  }
});

test('the incremental checksums verify by a full one\'s-complement sum across 100 000 sequence numbers', () => {
  const next = rng(7);
  for (const payloadLength of [4, 33, 1000]) {
    const t = new UdpFrameTemplate(spec, payloadLength);
    const buf = new Uint8Array(t.frameLength);
    const seqs = [...wrapSeqs];
    for (let i = 0; i < 100_000 / 3; i++) seqs.push(next());
    for (let i = 0; i < 2000; i++) seqs.push(0xffff0000 + i, 0xffffffff - i, 0xfffe + i); // across the 16-bit carries
    for (const seq of seqs) {
      t.writeTo(buf, 0, seq);
      assert.equal(onesSum(buf.subarray(IP_OFF, UDP_OFF)), 0xffff, `IPv4 header, seq 0x${seq.toString(16)}`);
      assert.equal(onesSum(udpCheckBytes(buf)), 0xffff, `UDP, seq 0x${seq.toString(16)}`);
      assert.equal(readSeq(buf, PAYLOAD_OFF), seq);
      assert.equal((buf[IP_OFF + 4]! << 8) | buf[IP_OFF + 5]!, seq & 0xffff, 'identification');
    }
  }
});

test('a UDP checksum that computes to 0 is sent as 0xffff (RFC 768)', () => {
  const t = new UdpFrameTemplate(spec, 20);
  const buf = new Uint8Array(t.frameLength);
  t.writeTo(buf, 0, 0);
  buf[UDP_OFF + UDP_CSUM] = 0;
  buf[UDP_OFF + UDP_CSUM + 1] = 0;
  const base = onesSum(udpCheckBytes(buf)); // with seq 0 and no checksum
  const seq = 0xffff - base; // the low word that brings the sum to 0xffff: a computed checksum of 0
  t.writeTo(buf, 0, seq);
  assert.equal((buf[UDP_OFF + UDP_CSUM]! << 8) | buf[UDP_OFF + UDP_CSUM + 1]!, 0xffff);
  assert.equal(onesSum(udpCheckBytes(buf)), 0xffff);
  // The sum that needs two end-around carries: base + 0xffff + low word = 0x1ffff.
  const twoCarries = (0xffff0000 + (0x10000 - base)) >>> 0;
  t.writeTo(buf, 0, twoCarries);
  assert.equal(onesSum(udpCheckBytes(buf)), 0xffff);
  assert.deepEqual(Buffer.from(buf), reference(spec, 20, twoCarries));
});

test('udpChecksum: false writes 0; ttl defaults to 64; the DF flag is set', () => {
  const buf = new Uint8Array(100);
  new UdpFrameTemplate({ ...spec, udpChecksum: false }, 10).writeTo(buf, 0, 12345);
  assert.equal(buf[UDP_OFF + UDP_CSUM]! | buf[UDP_OFF + UDP_CSUM + 1]!, 0);
  assert.equal(buf[IP_OFF + IP_TTL], 64);
  assert.equal(buf[IP_OFF + IP_FRAG], 0x40);
  assert.equal(onesSum(buf.subarray(IP_OFF, UDP_OFF)), 0xffff);
});

test('MACs and addresses given as bytes and u32 make the same frame', () => {
  const a = new Uint8Array(60);
  const b = new Uint8Array(60);
  new UdpFrameTemplate(spec, 18).writeTo(a, 0, 99);
  new UdpFrameTemplate({ ...spec, srcMac: parseMac(spec.srcMac as string), dstMac: parseMac(spec.dstMac as string), srcIp: 0x0a010203, dstIp: 0xc0a8c8fe }, 18).writeTo(b, 0, 99);
  assert.deepEqual(a, b);
});

test('writeTo writes exactly frameLength bytes at offset; short frames are not padded', () => {
  const t = new UdpFrameTemplate(spec, 4);
  assert.equal(t.frameLength, 46); // under Ethernet's 60: the NIC pads
  const buf = new Uint8Array(200).fill(0xa5);
  assert.equal(t.writeTo(buf, 77, 5), 46);
  assert.ok(buf.subarray(0, 77).every((x) => x === 0xa5));
  assert.ok(buf.subarray(77 + 46).every((x) => x === 0xa5));
  assert.deepEqual(Buffer.from(buf.subarray(77, 77 + 46)), reference(spec, 4, 5));
  assert.equal(t.writeTo(buf, 200 - 46, 6), 46); // flush against the end
});

test('writeTo refuses an offset or seq out of range, writing nothing', () => {
  const t = new UdpFrameTemplate(spec, 18);
  const buf = new Uint8Array(100);
  for (const off of [-1, 41, 1.5, NaN, Infinity]) assert.throws(() => t.writeTo(buf, off, 0), { code: 'ERR_OUT_OF_RANGE' }, String(off));
  for (const seq of [-1, 2 ** 32, 0.5, NaN]) assert.throws(() => t.writeTo(buf, 0, seq), { code: 'ERR_OUT_OF_RANGE' }, String(seq));
  assert.ok(buf.every((x) => x === 0));
  assert.throws(() => t.writeTo(new Uint8Array(59), 0, 0), { code: 'ERR_OUT_OF_RANGE' });
});

test('a bad spec or payload length throws with a code', () => {
  const bad: Array<[Partial<UdpFrameSpec>, string]> = [
    [{ srcMac: 'nope' }, 'ERR_INVALID_ARG_VALUE'],
    [{ dstMac: new Uint8Array(5) }, 'ERR_INVALID_ARG_VALUE'],
    [{ srcIp: '1.2.3' }, 'ERR_INVALID_ARG_VALUE'],
    [{ dstIp: -1 }, 'ERR_INVALID_ARG_VALUE'],
    [{ srcPort: 65536 }, 'ERR_OUT_OF_RANGE'],
    [{ dstPort: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ dstPort: '80' as unknown as number }, 'ERR_INVALID_ARG_TYPE'],
    [{ ttl: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ ttl: 256 }, 'ERR_OUT_OF_RANGE'],
    [{ udpChecksum: 1 as unknown as boolean }, 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [change, code] of bad) assert.throws(() => new UdpFrameTemplate({ ...spec, ...change }, 18), { code }, JSON.stringify(change));
  for (const n of [3, 65508, 10.5]) assert.throws(() => new UdpFrameTemplate(spec, n), { code: 'ERR_OUT_OF_RANGE' });
  const max = new UdpFrameTemplate(spec, 65507);
  const buf = new Uint8Array(max.frameLength);
  max.writeTo(buf, 0, 0xdeadbeef);
  assert.equal((buf[IP_OFF + IP_TOTAL_LEN]! << 8) | buf[IP_OFF + IP_TOTAL_LEN + 1]!, 0xffff);
  assert.equal(onesSum(udpCheckBytes(buf)), 0xffff);
});

// ---- parsing

/** A view of `buf` that throws on any index read outside [lo, hi): catches an out-of-bounds read. */
function guarded(buf: Uint8Array, lo: number, hi: number): Uint8Array {
  return new Proxy(buf, {
    get(target, key) {
      if (typeof key === 'string' && String(Number(key)) === key) {
        const i = Number(key);
        if (!(i >= lo && i < hi)) throw new Error(`read outside the window: [${key}] not in [${lo}, ${hi})`);
        return target[i];
      }
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

function frame(s: UdpFrameSpec, payloadLength: number, seq: number): Uint8Array {
  const t = new UdpFrameTemplate(s, payloadLength);
  const b = new Uint8Array(t.frameLength);
  t.writeTo(b, 0, seq);
  return b;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

function fixIpChecksum(b: Uint8Array, ipOff: number): void {
  const ihl = (b[ipOff]! & 0x0f) * 4;
  put16(b, ipOff + IP_CSUM, 0);
  put16(b, ipOff + IP_CSUM, 0xffff - onesSum(b.subarray(ipOff, ipOff + ihl)));
}

test('parseUdp reads back what writeTo wrote, at any offset in a larger buffer', () => {
  const t = new UdpFrameTemplate(spec, 100);
  const buf = new Uint8Array(1000).fill(0xee);
  const info = createUdpInfo();
  for (const seq of wrapSeqs) {
    t.writeTo(buf, 333, seq);
    assert.equal(parseUdp(guarded(buf, 333, 333 + t.frameLength), 333, t.frameLength, info), true);
    assert.deepEqual(info, {
      srcIp: 0x0a010203, dstIp: 0xc0a8c8fe, srcPort: 40000, dstPort: 9, payloadOffset: 333 + PAYLOAD_OFF, payloadLength: 100,
      ipChecksumOk: true, udpChecksumOk: true, vlanId: -1,
    });
    assert.equal(readSeq(buf, info.payloadOffset), seq);
  }
});

test('parseUdp reports bad checksums without refusing the frame; a zero UDP checksum is "none"', () => {
  const info = createUdpInfo();
  const f = frame(spec, 30, 1234);
  f[PAYLOAD_OFF + 10]! ^= 1;
  assert.equal(parseUdp(f, 0, f.length, info), true);
  assert.deepEqual([info.ipChecksumOk, info.udpChecksumOk], [true, false]);
  const g = frame(spec, 30, 1234);
  g[IP_OFF + IP_TTL]! -= 1; // a router that forgot the checksum: the UDP pseudo-header does not cover the TTL
  assert.equal(parseUdp(g, 0, g.length, info), true);
  assert.deepEqual([info.ipChecksumOk, info.udpChecksumOk], [false, true]);
  const h = frame({ ...spec, udpChecksum: false }, 30, 1234);
  h[PAYLOAD_OFF + 10]! ^= 1;
  assert.equal(parseUdp(h, 0, h.length, info), true);
  assert.deepEqual([info.ipChecksumOk, info.udpChecksumOk], [true, true]);
});

test('parseUdp: Ethernet padding is not payload; IP options; one 802.1Q tag', () => {
  const info = createUdpInfo();
  const padded = new Uint8Array(60);
  padded.set(frame(spec, 4, 77));
  assert.equal(parseUdp(padded, 0, 60, info), true);
  assert.deepEqual([info.payloadOffset, info.payloadLength, info.udpChecksumOk], [PAYLOAD_OFF, 4, true]);

  const plain = frame(spec, 20, 0xabcdef01);
  const opts = new Uint8Array(plain.length + 4);
  opts.set(plain.subarray(0, UDP_OFF));
  opts.set([1, 1, 1, 0], UDP_OFF); // NOP, NOP, NOP, end of options
  opts.set(plain.subarray(UDP_OFF), UDP_OFF + 4);
  opts[IP_OFF + IP_VER_IHL] = 0x46;
  put16(opts, IP_OFF + IP_TOTAL_LEN, 20 + 4 + 8 + 20);
  fixIpChecksum(opts, IP_OFF);
  assert.equal(parseUdp(opts, 0, opts.length, info), true);
  assert.deepEqual([info.payloadOffset, info.payloadLength, info.ipChecksumOk, info.udpChecksumOk], [PAYLOAD_OFF + 4, 20, true, true]);
  assert.equal(readSeq(opts, info.payloadOffset), 0xabcdef01);

  const tagged = new Uint8Array(plain.length + 4);
  tagged.set(plain.subarray(0, ETH_TYPE));
  tagged.set([0x81, 0x00, 0x20 | 0x0f, 0xfe], ETH_TYPE); // priority 1, VLAN 0xffe
  tagged.set(plain.subarray(ETH_TYPE), ETH_TYPE + 4);
  assert.equal(parseUdp(tagged, 0, tagged.length, info), true);
  assert.deepEqual([info.vlanId, info.payloadOffset, info.payloadLength, info.ipChecksumOk, info.udpChecksumOk], [0xffe, PAYLOAD_OFF + 4, 20, true, true]);
  assert.equal(readSeq(tagged, info.payloadOffset), 0xabcdef01);
  const qinq = Uint8Array.from(tagged);
  qinq[ETH_TYPE] = 0x88;
  qinq[ETH_TYPE + 1] = 0xa8;
  assert.equal(parseUdp(qinq, 0, qinq.length, info), false, '802.1ad is refused');
  for (let n = 0; n < tagged.length; n++) assert.equal(parseUdp(guarded(tagged, 0, n), 0, n, info), false, `tagged, truncated to ${n}`);
});

test('parseUdp returns false for malformed frames, without throwing or reading outside the window', () => {
  const good = frame(spec, 18, 42); // 60 bytes
  const info = createUdpInfo();
  const cases: Array<[string, (b: Uint8Array) => void]> = [
    ['IPv6 ethertype', (b) => put16(b, ETH_TYPE, 0x86dd)],
    ['ARP', (b) => put16(b, ETH_TYPE, 0x0806)],
    ['IP version 6', (b) => (b[IP_OFF + IP_VER_IHL] = 0x65)],
    ['IHL 4', (b) => (b[IP_OFF + IP_VER_IHL] = 0x44)],
    ['IHL 0', (b) => (b[IP_OFF + IP_VER_IHL] = 0x40)],
    ['IHL 15, beyond the datagram', (b) => (b[IP_OFF + IP_VER_IHL] = 0x4f)],
    ['total length past the frame', (b) => put16(b, IP_OFF + IP_TOTAL_LEN, 47)],
    ['total length 0xffff', (b) => put16(b, IP_OFF + IP_TOTAL_LEN, 0xffff)],
    ['total length under IP + UDP headers', (b) => put16(b, IP_OFF + IP_TOTAL_LEN, 27)],
    ['total length 0', (b) => put16(b, IP_OFF + IP_TOTAL_LEN, 0)],
    ['TCP', (b) => (b[IP_OFF + IP_PROTO] = 6)],
    ['more fragments', (b) => put16(b, IP_OFF + IP_FRAG, 0x2000)],
    ['fragment offset', (b) => put16(b, IP_OFF + IP_FRAG, 0x0001)],
    ['UDP length 7', (b) => put16(b, UDP_OFF + UDP_LEN, 7)],
    ['UDP length past the datagram', (b) => put16(b, UDP_OFF + UDP_LEN, 27)],
    ['UDP length 0xffff', (b) => put16(b, UDP_OFF + UDP_LEN, 0xffff)],
    ['VLAN tag, then not IPv4', (b) => put16(b, ETH_TYPE, 0x8100)],
  ];
  for (const [name, mutate] of cases) {
    const b = Uint8Array.from(good);
    mutate(b);
    assert.equal(parseUdp(guarded(b, 0, b.length), 0, b.length, info), false, name);
  }
  for (let n = 0; n < good.length; n++) assert.equal(parseUdp(guarded(good, 0, n), 0, n, info), false, `truncated to ${n}`);
  const bigger = new Uint8Array(100);
  bigger.set(good, 40);
  for (let n = 0; n < good.length; n++) assert.equal(parseUdp(guarded(bigger, 40, 40 + n), 40, n, info), false, `truncated to ${n} at 40`);
  // windows that are not inside the buffer
  for (const [off, len] of [[1, 60], [0, 61], [-1, 10], [NaN, 60], [0, NaN], [0.5, 50], [0, Infinity], [Infinity, 0], [0, -5]] as const) {
    assert.equal(parseUdp(guarded(good, 0, 60), off, len, info), false, `window ${off}, ${len}`);
  }
  assert.equal(parseUdp(good, 0, good.length, info), true, 'the unmutated frame parses');
});

test('parseUdp on random and mutated bytes: never throws, never reads outside, results inside the window', () => {
  const next = rng(42);
  const info = createUdpInfo();
  const base = frame(spec, 40, 7);
  const buf = new Uint8Array(256);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const off = next() % 64;
    let len: number;
    if (i % 2 === 0) {
      // random bytes, often shaped like IPv4/UDP so that the deeper checks run
      len = next() % (buf.length - off + 1);
      for (let j = 0; j < buf.length; j++) buf[j] = next() & 0xff;
      if (next() % 2 === 0) {
        put16(buf, off + ETH_TYPE, 0x0800);
        buf[off + IP_OFF] = 0x45;
        buf[off + IP_OFF + IP_PROTO] = 17;
        buf[off + IP_OFF + IP_FRAG] = 0;
        buf[off + IP_OFF + IP_FRAG + 1] = 0;
      }
    } else {
      // a good frame with a few bytes changed, and a length that may cut it
      buf.fill(0);
      buf.set(base, off);
      for (let k = next() % 4; k >= 0; k--) buf[off + (next() % base.length)] = next() & 0xff;
      len = next() % 3 === 0 ? next() % (base.length + 1) : base.length;
    }
    let ok: boolean;
    try {
      ok = parseUdp(guarded(buf, off, off + len), off, len, info);
    } catch (e) {
      assert.fail(`iteration ${i}: threw ${String(e)}`);
    }
    if (ok) {
      accepted++;
      assert.ok(info.payloadOffset >= off + PAYLOAD_OFF && info.payloadOffset + info.payloadLength <= off + len, `iteration ${i}: payload outside the window`);
      assert.ok(info.payloadLength >= 0);
    }
  }
  assert.ok(accepted > 1000, `some inputs should parse (${accepted})`);
});

test('readSeq refuses an offset that does not leave 4 bytes', () => {
  const b = Uint8Array.from([1, 2, 3, 4, 5]);
  assert.equal(readSeq(b, 1), 0x02030405);
  for (const off of [2, -1, 0.5, NaN]) assert.throws(() => readSeq(b, off), { code: 'ERR_OUT_OF_RANGE' });
});
