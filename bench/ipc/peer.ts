/**
 * The benchmark's second process: connects to the parent and echoes (latency) or counts (throughput).
 * Run by the parent as `node peer.js TRANSPORT KIND ADDRESS BYTES`; exits when the run is over.
 */
import * as net from 'node:net';
import { connect } from '../../src/index';
import { native } from '../../src/native/binding';
import { decodeArgs, jsFloorBytes, jsFloorPong, ringSizeFor, type PeerArgs } from './protocol';

/** No run takes this long: every wait below gives up then, so a peer never spins forever. */
const HARD_STOP = performance.now() + 5 * 60_000;
let spins = 0;
/** Called on each failed attempt; looks at the clock once in a million calls (off the hot path). */
function retry(): void {
  if ((++spins & 0xfffff) === 0 && performance.now() > HARD_STOP) throw new Error('gave up: the parent went quiet');
}

async function shm(a: PeerArgs): Promise<void> {
  const ch = await connect(a.address, { ringSize: ringSizeFor(a.bytes), maxMessageSize: 64 << 20 });
  const ack = new Float64Array(1);
  const ackBytes = new Uint8Array(ack.buffer);
  if (a.transport === 'shm-poll') {
    let done = false;
    let count = 0;
    const echo = (b: Uint8Array, o: number, l: number) => {
      if (l === 0) { done = true; return; }
      while (!ch.trySend(b, o, l)) retry(); // the parent reads before it sends again
    };
    const sink = (_b: Uint8Array, _o: number, l: number) => { if (l === 0) done = true; else count++; };
    const handler = a.kind === 'latency' ? echo : sink;
    while (!done && !ch.closed) if (ch.poll(handler, 1024) === 0) retry();
    if (a.kind === 'throughput') { ack[0] = count; while (!ch.trySend(ackBytes)) retry(); }
  } else {
    let count = 0;
    await new Promise<void>((resolve) => {
      ch.on('message', (m) => {
        if (m.length === 0) {
          if (a.kind === 'throughput') { ack[0] = count; ch.send(ackBytes); }
          resolve();
        } else if (a.kind === 'latency') {
          ch.send(m);
        } else {
          count++;
        }
      });
      ch.on('close', () => resolve());
    });
  }
  await ch.close();
}

/** The JS floor's pong: wait for the ping's sequence, copy its payload to our slot, publish our sequence. */
async function jsFloor(a: PeerArgs): Promise<void> {
  const buf = native().mmapShared(3, jsFloorBytes(a.bytes), 0);
  const i32 = new Int32Array(buf);
  const u8 = new Uint8Array(buf);
  const P = jsFloorPong(a.bytes);
  const pongSeq = P >> 2;
  for (let i = 1; ; i++) {
    let s: number;
    while ((s = Atomics.load(i32, 0)) !== i) { if (s < 0) return; retry(); }
    u8.copyWithin(P + 64, 64, 64 + a.bytes);
    i32[pongSeq] = i;
  }
}

async function stream(a: PeerArgs): Promise<void> {
  const sock = a.transport === 'tcp'
    ? net.connect({ host: '127.0.0.1', port: Number(a.address), allowHalfOpen: true, noDelay: true })
    : net.connect({ path: a.address, allowHalfOpen: true });
  sock.setNoDelay(true);
  let count = 0;
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      if (a.kind === 'latency') sock.write(d);
      else count += d.length;
    });
    sock.on('end', () => {
      const ack = Buffer.alloc(8);
      ack.writeDoubleLE(count);
      sock.end(ack);
    });
    sock.on('close', () => resolve());
  });
}

const args = decodeArgs(process.argv.slice(2));
(args.transport === 'tcp' || args.transport === 'unix' ? stream(args) : args.transport === 'js-floor' ? jsFloor(args) : shm(args)).then(
  () => process.exit(0),
  (e) => { process.stderr.write(`bench peer: ${e?.stack ?? e}\n`); process.exit(1); },
);
