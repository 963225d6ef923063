/**
 * The native calls packet I/O adds (native/xdp.c, packet.c, xsk.c, region.c's mmapAnon/mmapSocket/unmapNow), one
 * at a time, where they need no network namespace: anonymous memory and its early unmapping, interface look-ups,
 * socket creation and statistics, the BPF map and programs, and argument checking that never crashes.
 *
 * Run: npx tsc -p tsconfig.json && node --expose-gc --test dist/test/native/packet-binding.test.js
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { XDP_PROG_DROP, XDP_PROG_PASS, XDP_PROG_REDIRECT, XSK_RING_FILL, native } from '../../src/native/binding';

const n = native();
const fds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('mmapAnon / unmapNow', () => {
  it('maps zeroed, writable, page-aligned memory', () => {
    const ab = n.mmapAnon(1 << 16, 0);
    const u8 = new Uint8Array(ab);
    assert.equal(u8.length, 1 << 16);
    assert.equal(u8[12345], 0);
    u8[12345] = 7;
    assert.equal(u8[12345], 7);
  });
  it('unmapNow detaches (views read as empty) and unmaps once', () => {
    const ab = n.mmapAnon(4096, 0);
    const view = new Uint32Array(ab);
    view[3] = 42;
    assert.equal(n.unmapNow(ab), true);
    assert.equal(ab.byteLength, 0);
    assert.equal(view.length, 0);
    assert.equal(view[3], undefined); // no access reaches the unmapped memory
    assert.equal(n.unmapNow(ab), false);
    (globalThis as { gc?: () => void }).gc?.(); // the finalizer must not munmap a second time
  });
  it('unmapNow refuses memory that is not its own', () => {
    assert.equal(n.unmapNow(new ArrayBuffer(64)), false);
    assert.throws(() => n.unmapNow(new Uint8Array(4) as unknown as ArrayBuffer), { code: 'ERR_INVALID_ARG_TYPE' });
  });
  it('bad sizes are EINVAL, not a crash', () => {
    assert.throws(() => n.mmapAnon(0, 0), { code: 'EINVAL', syscall: 'mmap' });
    assert.throws(() => n.mmapAnon(-1, 0), { code: 'EINVAL' });
    assert.throws(() => n.mmapSocket(-1, 4096, 0), { code: 'EBADF', syscall: 'mmap' });
    assert.throws(() => n.mmapSocket(0, 0, 0), { code: 'EINVAL' });
  });
});

describe('interfaces', () => {
  it('ifIndex finds lo and says ENODEV for a missing name', () => {
    assert.equal(n.ifIndex('lo'), Number(fs.readFileSync('/sys/class/net/lo/ifindex', 'utf8')));
    assert.throws(() => n.ifIndex('kbpnosuch0'), { code: 'ENODEV', syscall: 'if_nametoindex' });
    assert.throws(() => n.ifIndex(''), { code: 'ENODEV' });
    assert.throws(() => n.ifIndex('x'.repeat(40)), { code: 'ENODEV' });
    assert.throws(() => n.ifIndex('l\0o'), { code: 'ENODEV' });
  });
});

describe('AF_XDP and BPF set-up', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  it('a socket takes a UMEM and ring sizes, and reports its ring offsets and statistics', () => {
    const before = fds();
    const fd = n.xskSocket();
    const umem = n.mmapAnon(64 * 2048, 0);
    n.xskUmemReg(fd, umem, 2048, 0);
    n.xskRingSet(fd, XSK_RING_FILL, 64);
    assert.throws(() => n.xskRingSet(fd, 1, 100), { code: 'EINVAL' }); // not a power of two
    const off = new Float64Array(16);
    n.xskOffsets(fd, off);
    assert.ok(off[10]! > 0, 'the FILL ring has a descriptor offset'); // fr.desc
    const st = new Float64Array(6);
    assert.ok(n.xskStats(fd, st) >= 3);
    assert.throws(() => n.xskStats(fd, new Float64Array(2)), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => n.xskBind(fd, 0, 0, 0, -1), { code: 'EINVAL' });
    n.close(fd);
    assert.equal(fds(), before);
  });
  it('loads the three XDP programs and an XSKMAP; a bad program kind is EINVAL', () => {
    const map = n.bpfXskmapCreate(4);
    for (const kind of [XDP_PROG_REDIRECT, XDP_PROG_DROP, XDP_PROG_PASS]) n.close(n.xdpProgLoad(kind, map));
    assert.throws(() => n.xdpProgLoad(9, map), { code: 'EINVAL', syscall: 'bpf' });
    assert.throws(() => n.bpfMapUpdate(map, 0, 1), (e: { code?: string }) => e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP' || e.code === 'EBADF' || e.code === 'EINVAL');
    n.close(map);
  });
  it('the data-path kicks return a negative errno instead of throwing', () => {
    assert.ok(n.sendKick(-1) < 0);
    assert.ok(n.recvKick(-1) < 0);
  });
});

describe('AF_PACKET set-up', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  it('a TPACKET_V3 RX ring maps, binds to lo, and reports statistics', () => {
    const before = fds();
    const fd = n.packetSocket(0);
    n.packetSetInt(fd, 10, 2); // PACKET_VERSION = TPACKET_V3
    n.packetRing(fd, 5, Int32Array.of(1 << 16, 2, 2048, 64, 10, 0, 0));
    const ring = n.mmapSocket(fd, 2 << 16, 0);
    assert.equal(ring.byteLength, 2 << 16);
    n.packetBind(fd, n.ifIndex('lo'), 3);
    const st = new Float64Array(3);
    n.packetStats(fd, st);
    assert.ok(st[0]! >= 0);
    assert.throws(() => n.packetRing(fd, 99, new Int32Array(7)), { code: 'EINVAL' });
    assert.throws(() => n.packetRing(fd, 5, new Int32Array(3)), { code: 'ERR_OUT_OF_RANGE' });
    n.close(fd);
    assert.equal(fds(), before);
  });
});
