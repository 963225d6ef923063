/**
 * TX child of `kbypass bench packet`, run in the sending namespace: sends 64 B UDP datagrams as fast as the path
 * goes for `seconds` and reports frames/s the kernel completed in that time (for node:dgram, send() callbacks
 * without an error: the kernel has taken the datagram).
 */
import * as dgram from 'node:dgram';
import { openPort } from '../../src/packet/index';
import { UdpFrameTemplate } from '../../src/packet/frame';
import type { PeerArgs, PeerDone } from './protocol';
import { DST_PORT, SRC_PORT } from './protocol';

function done(r: PeerDone): void { process.stdout.write(`${JSON.stringify(r)}\n`); }

async function ports(a: PeerArgs): Promise<void> {
  const port = await openPort({ ifname: a.ifname, mode: a.path === 'xdp-js' ? 'xdp' : 'packet', rx: false, txRingSize: 4096, frameCount: 4096, txFrameCount: 4096 });
  const tpl = new UdpFrameTemplate({ srcMac: a.srcMac, dstMac: a.dstMac, srcIp: a.srcIp, dstIp: a.dstIp, srcPort: SRC_PORT, dstPort: DST_PORT }, a.payload);
  let seq = 0;
  const fill = (bytes: Uint8Array, offset: number): number => tpl.writeTo(bytes, offset, seq++);
  process.stdout.write(`${JSON.stringify({ ready: true, mode: port.mode })}\n`);
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(a.seconds * 1e9));
  const base = port.stats().txCompleted;
  let now = t0;
  while (now < end) {
    for (let i = 0; i < 16; i++) port.transmit(fill, a.batch);
    now = process.hrtime.bigint();
  }
  port.reap();
  const packets = port.stats().txCompleted - base;
  const seconds = Number(now - t0) / 1e9;
  port.close();
  done({ done: true, packets, seconds, pps: packets / seconds, detail: { submitted: seq } });
}

function viaDgram(a: PeerArgs): void {
  const sock = dgram.createSocket('udp4');
  const payload = Buffer.alloc(a.payload);
  let completed = 0;
  let errors = 0;
  let t0 = 0n;
  let end = 0n;
  let measuring = true;
  const onSent = (err: Error | null): void => { if (!measuring) return; if (err) errors++; else completed++; };
  const pump = (): void => {
    const now = process.hrtime.bigint();
    if (now >= end) {
      measuring = false;
      const seconds = Number(now - t0) / 1e9;
      sock.close();
      done({ done: true, packets: completed, seconds, pps: completed / seconds, detail: { errors } });
      return;
    }
    for (let i = 0; i < a.batch; i++) {
      payload.writeUInt32BE(i, 0);
      sock.send(payload, onSent);
    }
    setImmediate(pump);
  };
  sock.bind(SRC_PORT, a.srcIp, () => {
    sock.connect(DST_PORT, a.dstIp, () => {
      process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
      t0 = process.hrtime.bigint();
      end = t0 + BigInt(Math.round(a.seconds * 1e9));
      pump();
    });
  });
}

const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs;
if (args.path === 'dgram') viaDgram(args);
else ports(args).catch((e: Error) => { process.stderr.write(`${e.stack ?? e.message}\n`); process.exit(1); });
