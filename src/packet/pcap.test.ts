import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePcap, PcapWriter, readPcap, type PcapRecord } from './pcap';
import { formatIpv4, parseIpv4, UdpFrameTemplate } from './frame';

const dir = mkdtempSync(join(tmpdir(), 'kbypass-pcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (): string => join(dir, `${++fileNo}.pcap`);

/** Packets of assorted lengths and contents. */
function packets(n: number, maxLen = 1514): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc((i * 7919) % (maxLen + 1));
    for (let j = 0; j < b.length; j++) b[j] = (i * 31 + j * 7) & 0xff;
    out.push(b);
  }
  return out;
}

/** A pcap file built by hand, independently of the writer: either magic, either byte order. */
function handmade(nsec: boolean, le: boolean, recs: Array<{ sec: number; frac: number; data: Buffer; orig?: number }>, snaplen = 65535): Buffer {
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(v); else b.writeUInt32BE(v); return b; };
  const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); if (le) b.writeUInt16LE(v); else b.writeUInt16BE(v); return b; };
  const parts = [u32(nsec ? 0xa1b23c4d : 0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(snaplen), u32(1)];
  for (const r of recs) parts.push(u32(r.sec), u32(r.frac), u32(r.data.length), u32(r.orig ?? r.data.length), r.data);
  return Buffer.concat(parts);
}

test('a written file reads back record for record', () => {
  const path = tmp();
  const w = PcapWriter.open(path);
  const pkts = packets(200);
  const frame = Buffer.alloc(2000);
  pkts.forEach((p, i) => {
    p.copy(frame, 100);
    w.write(frame, 100, p.length, p.length + (i % 3), 1_700_000_000 + i, (i * 123_456_789) % 1_000_000_000);
  });
  assert.equal(w.packets, 200);
  assert.equal(w.bytes, pkts.reduce((s, p) => s + p.length, 0));
  w.close();
  const recs = readPcap(path);
  assert.equal(recs.length, 200);
  recs.forEach((r, i) => {
    const p = pkts[i]!;
    assert.deepEqual(r, { tsSec: 1_700_000_000 + i, tsNsec: (i * 123_456_789) % 1_000_000_000, capLen: p.length, origLen: p.length + (i % 3), data: p }, `record ${i}`);
  });
  assert.equal(statSync(path).size, 24 + 200 * 16 + w.bytes);
});

test('the file header: nanosecond magic, version 2.4, snaplen, linktype 1, little-endian', () => {
  const path = tmp();
  const w = PcapWriter.open(path, { snaplen: 1500 });
  w.write(Buffer.from('abc'), 0, 3, 3, 5, 6);
  w.close();
  const f = readFileSync(path);
  assert.deepEqual([...f.subarray(0, 4)], [0x4d, 0x3c, 0xb2, 0xa1]);
  assert.deepEqual([f.readUInt16LE(4), f.readUInt16LE(6), f.readInt32LE(8), f.readUInt32LE(12), f.readUInt32LE(16), f.readUInt32LE(20)], [2, 4, 0, 0, 1500, 1]);
  assert.deepEqual([f.readUInt32LE(24), f.readUInt32LE(28), f.readUInt32LE(32), f.readUInt32LE(36)], [5, 6, 3, 3]);
  assert.equal(f.toString('latin1', 40), 'abc');
  assert.equal(f.length, 43);
});

test('packets longer than snaplen are cut, caplen and origlen recorded', () => {
  const path = tmp();
  const w = PcapWriter.open(path, { snaplen: 64 });
  const [a, b, c] = [Buffer.alloc(100, 1), Buffer.alloc(64, 2), Buffer.alloc(10, 3)];
  w.write(a, 0, 100, 100, 1, 0);
  w.write(b, 0, 64, 64, 2, 0);
  w.write(c, 0, 10, 9000, 3, 0); // already cut short by the caller: its wire length is kept
  w.write(a, 40, 60, 1514, 4, 0); // a part of a packet, under snaplen: kept whole, its wire length kept
  assert.equal(w.bytes, 64 + 64 + 10 + 60);
  w.close();
  const recs = readPcap(path);
  assert.deepEqual(recs.map((r) => [r.capLen, r.origLen, r.data.length]), [[64, 100, 64], [64, 64, 64], [10, 9000, 10], [60, 1514, 60]]);
  assert.deepEqual(recs[0]!.data, Buffer.alloc(64, 1));
  assert.equal(readFileSync(path).readUInt32LE(16), 64);
});

test('the 1 MiB buffer goes to the file when full, and all of it on flush and close', () => {
  const path = tmp();
  const w = PcapWriter.open(path);
  const p = Buffer.alloc(1500, 0x5a);
  w.write(p, 0, 1500, 1500, 0, 0);
  assert.equal(statSync(path).size, 0, 'nothing written before the buffer fills');
  w.flush();
  assert.equal(statSync(path).size, 24 + 16 + 1500);
  for (let i = 1; i < 1000; i++) w.write(p, 0, 1500, 1500, i, 0); // 1.5 MiB: one flush on the way
  const size = statSync(path).size;
  assert.ok(size > 1_000_000 && size < 24 + 1000 * 1516, `size ${size}`);
  w.close();
  assert.equal(statSync(path).size, 24 + 1000 * 1516);
  const recs = readPcap(path);
  assert.equal(recs.length, 1000);
  assert.ok(recs.every((r, i) => r.tsSec === i && r.data.equals(p)));
});

test('close is idempotent; write after close throws ERR_KBYPASS_PCAP_CLOSED; flush after close does nothing', () => {
  const w = PcapWriter.open(tmp());
  w.close();
  w.close();
  w.flush();
  assert.equal(w.closed, true);
  assert.throws(() => w.write(Buffer.alloc(1), 0, 1, 1, 0, 0), { code: 'ERR_KBYPASS_PCAP_CLOSED' });
});

test('a writer on an fd: writes from the current position; autoClose false leaves the fd open', () => {
  const path = tmp();
  const fd = openSync(path, 'w');
  writeSync(fd, 'PREFIX');
  const w = new PcapWriter(fd, { autoClose: false });
  w.write(Buffer.from('xyz'), 0, 3, 3, 1, 2);
  w.close();
  assert.equal(fstatSync(fd).size, 6 + 24 + 16 + 3); // still open
  closeSync(fd);
  const f = readFileSync(path);
  assert.equal(f.toString('latin1', 0, 6), 'PREFIX');
  assert.deepEqual(parsePcap(f.subarray(6)).map((r) => r.data.toString()), ['xyz']);
  const fd2 = openSync(tmp(), 'w');
  new PcapWriter(fd2).close();
  assert.throws(() => fstatSync(fd2), { code: 'EBADF' });
});

test('bad arguments throw with a code and write nothing', () => {
  assert.throws(() => PcapWriter.open(tmp(), { snaplen: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => PcapWriter.open(tmp(), { snaplen: 262145 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => PcapWriter.open(tmp(), { append: true as unknown as false }), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => new PcapWriter(-1), { code: 'ERR_INVALID_ARG_VALUE' });
  const path = tmp();
  const w = PcapWriter.open(path);
  const b = Buffer.alloc(10);
  const bad: Array<[number, number, number, number, number]> = [
    [-1, 1, 1, 0, 0], [11, 0, 0, 0, 0], [5, 6, 6, 0, 0], [0, 1.5, 2, 0, 0], // window
    [0, 10, 9, 0, 0], [0, 1, 2 ** 32, 0, 0], // origLength below length, too big
    [0, 1, 1, -1, 0], [0, 1, 1, 2 ** 32, 0], [0, 1, 1, 0, 1e9], [0, 1, 1, 0, -1], [0, 1, 1, 0, 0.5], // timestamps
  ];
  for (const [off, len, orig, sec, nsec] of bad) assert.throws(() => w.write(b, off, len, orig, sec, nsec), { code: 'ERR_OUT_OF_RANGE' }, `${off} ${len} ${orig} ${sec} ${nsec}`);
  assert.equal(w.packets, 0);
  w.write(b, 10, 0, 0, 0, 999_999_999); // an empty packet at the very end is fine
  w.close();
  assert.deepEqual(readPcap(path).map((r) => [r.capLen, r.tsNsec]), [[0, 999_999_999]]);
});

test('the reader takes both magics in both byte orders; microseconds become nanoseconds', () => {
  const recs = [{ sec: 1, frac: 999_999, data: Buffer.from('first') }, { sec: 0xffffffff, frac: 0, data: Buffer.alloc(0), orig: 60 }, { sec: 7, frac: 5, data: Buffer.from([0, 1, 2]) }];
  for (const nsec of [true, false]) {
    for (const le of [true, false]) {
      const path = tmp();
      writeFileSync(path, handmade(nsec, le, recs));
      const got: PcapRecord[] = readPcap(path);
      assert.deepEqual(got, recs.map((r) => ({ tsSec: r.sec, tsNsec: nsec ? r.frac : r.frac * 1000, capLen: r.data.length, origLen: r.orig ?? r.data.length, data: r.data })), `nsec ${nsec}, le ${le}`);
    }
  }
  assert.deepEqual(parsePcap(handmade(true, false, [])), []);
});

test('truncated and garbage files throw ERR_KBYPASS_PCAP_FORMAT, never read out of bounds', () => {
  const good = handmade(false, false, [{ sec: 1, frac: 2, data: Buffer.alloc(50, 7) }, { sec: 3, frac: 4, data: Buffer.alloc(17, 8) }]);
  const boundaries = new Set([24, 24 + 16 + 50, good.length]);
  for (let n = 0; n < good.length; n++) {
    // A copy in its own ArrayBuffer: any read past the end would throw a RangeError, not our error.
    const cut = new Uint8Array(good.subarray(0, n));
    if (boundaries.has(n)) assert.equal(parsePcap(cut).length, n === 24 ? 0 : 1, `cut at a record boundary (${n})`);
    else assert.throws(() => parsePcap(cut), { code: 'ERR_KBYPASS_PCAP_FORMAT' }, `cut at ${n}`);
  }
  const mutate = (off: number, bytes: number[]): Buffer => { const b = Buffer.from(good); b.set(bytes, off); return b; };
  const garbage: Array<[string, Uint8Array, RegExp]> = [
    ['text', Buffer.from('this is not a pcap file at all, just some text'), /bad magic/],
    ['pcapng', mutate(0, [0x0a, 0x0d, 0x0d, 0x0a]), /bad magic/],
    ['version 1', mutate(4, [0, 1]), /version/],
    ['caplen 0xffffffff', mutate(24 + 8, [0xff, 0xff, 0xff, 0xff]), /caplen/],
    ['caplen past the end', mutate(24 + 8, [0, 0, 1, 0, 0, 0, 1, 0]), /truncated packet data/],
    ['caplen above origlen', mutate(24 + 12, [0, 0, 0, 49]), /origlen/],
    ['microseconds >= 1e6', mutate(24 + 4, [0, 0x0f, 0x42, 0x40]), /fraction/],
  ];
  for (const [name, bytes, message] of garbage) assert.throws(() => parsePcap(bytes), { code: 'ERR_KBYPASS_PCAP_FORMAT', message }, name);
  const path = tmp();
  writeFileSync(path, good.subarray(0, 30));
  assert.throws(() => readPcap(path), (e: Error & { code?: string }) => e.code === 'ERR_KBYPASS_PCAP_FORMAT' && e.message.includes(path));
});

test('tshark decodes a file of built UDP frames packet for packet, checksums good', (t) => {
  const probe = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.skip(`tshark is not installed (${probe.error.message})`);
    return;
  }
  const path = tmp();
  const w = PcapWriter.open(path);
  const buf = new Uint8Array(2048);
  type Sent = { seq: number; src: string; dst: string; sport: number; dport: number; len: number; id: number; payload: string; sec: number; nsec: number };
  const sent: Sent[] = [];
  const flows = [
    { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 40000, dstPort: 40001 },
    { srcMac: '02:00:00:00:00:03', dstMac: 'ff:ff:ff:ff:ff:ff', srcIp: '192.168.1.200', dstIp: '172.16.254.1', srcPort: 50123, dstPort: 45678, ttl: 1 },
  ];
  const seqs = [0, 1, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffff0000, 0xfffffffe, 0xffffffff, 0x12345678];
  let k = 0;
  for (const flow of flows) {
    for (const payloadLength of [4, 18, 19, 100, 1472]) {
      const tpl = new UdpFrameTemplate(flow, payloadLength);
      for (const seq of seqs) {
        const n = tpl.writeTo(buf, 0, seq);
        const sec = 1_700_000_000 + k;
        const nsec = (k * 987_654_321) % 1_000_000_000;
        k++;
        w.write(buf, 0, n, n, sec, nsec);
        const payload = Buffer.from(buf.subarray(42, n)).toString('hex');
        sent.push({ seq, src: formatIpv4(parseIpv4(flow.srcIp)), dst: flow.dstIp, sport: flow.srcPort, dport: flow.dstPort, len: n, id: seq & 0xffff, payload, sec, nsec });
      }
    }
  }
  w.close();

  const fields = ['frame.number', 'frame.len', 'frame.time_epoch', 'ip.src', 'ip.dst', 'ip.id', 'udp.srcport', 'udp.dstport', 'ip.checksum.status', 'udp.checksum.status', 'data.data'];
  // Decode-as data: otherwise a heuristic dissector may claim a payload (ADwin Config takes the 100-byte ones).
  const asData = flows.flatMap((f) => ['-d', `udp.port==${f.dstPort},data`]);
  const args = ['-r', path, '-n', ...asData, '-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-T', 'fields', ...fields.flatMap((f) => ['-e', f])];
  const r = spawnSync('tshark', args, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, r.stderr);
  // As root, tshark always warns that it runs as root; that line says nothing about the file.
  assert.equal(r.stderr.replace(/^Running as user "root" and group "root"\. This could be dangerous\.\n/m, ''), '');
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, sent.length);
  lines.forEach((line, i) => {
    const s = sent[i]!;
    const GOOD = '1'; // PROTO_CHECKSUM_E_GOOD
    assert.deepEqual(line.split('\t'), [
      String(i + 1), String(s.len), `${s.sec}.${String(s.nsec).padStart(9, '0')}`, s.src, s.dst, `0x${s.id.toString(16).padStart(4, '0')}`,
      String(s.sport), String(s.dport), GOOD, GOOD, s.payload,
    ], `packet ${i + 1} (seq 0x${s.seq.toString(16)})`);
    assert.equal(s.payload.slice(0, 8), s.seq.toString(16).padStart(8, '0'));
  });
});
