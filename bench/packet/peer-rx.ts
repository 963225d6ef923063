/**
 * RX child of `kbypass bench packet`, run in the receiving namespace: receives the flood on one path and reports
 * packets/s over `seconds` from the first packet. Every frame is touched (its last byte read) on every path,
 * as the C floor does, so no path is credited for not looking at the data.
 */
import * as dgram from 'node:dgram';
import { openPort } from '../../src/packet/index';
import type { PeerArgs, PeerDone } from './protocol';
import { DST_PORT } from './protocol';

const FIRST_PACKET_TIMEOUT_MS = 10_000;

function done(r: PeerDone): void { process.stdout.write(`${JSON.stringify(r)}\n`); }

async function ports(a: PeerArgs): Promise<void> {
  const port = await openPort({ ifname: a.ifname, mode: a.path === 'xdp-js' ? 'xdp' : 'packet', tx: false, xdpMode: 'native', rxRingSize: 4096, frameCount: 4096, blockSize: 1 << 20, blockCount: 32 });
  let packets = 0;
  let sink = 0;
  const handler = (bytes: Uint8Array, offset: number, length: number): void => { sink ^= bytes[offset + length - 1] as number; };
  process.stdout.write(`${JSON.stringify({ ready: true, mode: port.mode, xdpMode: port.xdpMode })}\n`);
  const give = Date.now() + FIRST_PACKET_TIMEOUT_MS;
  while (port.receive(handler, a.batch) === 0) {
    if (Date.now() > give) throw new Error('no packet arrived within 10 s');
  }
  packets = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(a.seconds * 1e9));
  let now = t0;
  while (now < end) {
    for (let i = 0; i < 64; i++) packets += port.receive(handler, a.batch);
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - t0) / 1e9;
  const stats = port.stats();
  port.close();
  done({ done: true, packets, seconds, pps: packets / seconds, detail: { drops: stats.drops, sink } });
}

function viaDgram(a: PeerArgs): void {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 32 << 20 });
  let packets = 0;
  let t0 = 0n;
  let sink = 0;
  sock.on('message', (msg) => {
    sink ^= msg[msg.length - 1] as number;
    if (t0 === 0n) { t0 = process.hrtime.bigint(); return; }
    packets++;
  });
  const give = setTimeout(() => { process.stderr.write('no packet arrived within 10 s\n'); process.exit(1); }, FIRST_PACKET_TIMEOUT_MS);
  const check = setInterval(() => {
    if (t0 === 0n) return;
    clearTimeout(give);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (seconds < a.seconds) return;
    clearInterval(check);
    sock.close();
    done({ done: true, packets, seconds, pps: packets / seconds, detail: { sink } });
  }, 10);
  sock.bind(DST_PORT, a.dstIp, () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
}

const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs;
if (args.path === 'dgram') viaDgram(args);
else ports(args).catch((e: Error) => { process.stderr.write(`${e.stack ?? e.message}\n`); process.exit(1); });
