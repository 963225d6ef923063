/**
 * A fair A/B of ring record layouts under a moving vCPU placement: `node dist/bench/ring/layout-ab.js`.
 *
 * Two processes ping-pong through several variants in turn, `slice` round trips each, for `laps` laps, so every
 * variant sees the same mix of placements (on this VM the two vCPUs move between near and distant cores from one
 * second to the next, and figures taken seconds apart are not comparable). Variants (N: payload bytes, 1–1024):
 * - `floor`, `floorN`: the bare JavaScript ping-pong of `bench ipc`: fixed slots, a sequence line, then the
 *   payload from the next line on (64 B by default); `freshN` the same with new bytes in every payload line each
 *   time; `mixedN` with the payload starting in the sequence's line (8 bytes after it);
 * - `walkS`, `walkSaK`: the bare loop again, but each message goes `S` bytes further on through 64 KiB (a ring's
 *   access pattern without its records), 64 B payload; with `aK` the writer writes a zero into the slot K
 *   messages ahead after each one (what the ring's producer does in "Writing ahead", src/ring/layout.ts);
 * - `rN`: RingProducer.offer / RingConsumer.poll (src/ring, no channel layer) on a 64 KiB ring: a record takes
 *   one cache line up to N = 56, two from N = 57 to 120; the producer as it comes (writing ahead off by
 *   default). `rNwB`: writing ahead at B bytes (WRITE_AHEAD_BYTES is 320), `rNn`: explicitly off.
 * Each round trip is timed with one performance.now() (its mean cost subtracted, as in `bench ipc`). Prints one
 * line: each variant's p50 in µs, and per lap with `--laps-detail`. The first lap is warm-up.
 *
 *   node dist/bench/ring/layout-ab.js [--variants floor,r64,r64w320] [--laps 40] [--slice 2000] [--laps-detail]
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { createRegion } from '../../src/memory/region';
import { native } from '../../src/native/binding';
import { RingConsumer } from '../../src/ring/consumer';
import { RingProducer } from '../../src/ring/producer';
import { RING_CONTROL_BYTES } from '../../src/ring/layout';
import { jsClockCost } from '../ipc/runs';

const CAP = 1 << 16;
const FLOOR_BYTES = 4096;
/** Control words at the start of the region: [0] stop (1: the parent is done or gone). */
const CONTROL_BYTES = 64;
/** No run takes this long: the child gives up then, so it never spins forever. */
const HARD_STOP_MS = 10 * 60_000;

interface Plan { variants: string[]; laps: number; slice: number }

function regionBytes(p: Plan): number {
  return CONTROL_BYTES + FLOOR_BYTES * p.variants.length + p.variants.length * 2 * (RING_CONTROL_BYTES + CAP);
}

/** A variant as named on the command line (see the header). */
type Spec =
  | { kind: 'floor'; bytes: number; at: number; fresh: boolean }
  | { kind: 'walk'; stride: number; ahead: number }
  | { kind: 'ring'; bytes: number; writeAhead: number | null };

/** Parse one variant name; null if it is not one. */
export function parseVariant(name: string): Spec | null {
  let m = /^(floor|fresh|mixed)(\d*)$/.exec(name);
  if (m) {
    const bytes = m[2] === '' ? 64 : Number(m[2]);
    return bytes >= 1 && bytes <= 1024 ? { kind: 'floor', bytes, at: m[1] === 'mixed' ? 8 : 64, fresh: m[1] === 'fresh' } : null;
  }
  m = /^walk(\d+)(?:a(\d+))?$/.exec(name);
  if (m) {
    const stride = Number(m[1]);
    const ahead = m[2] === undefined ? 0 : Number(m[2]);
    return stride >= 8 && stride <= 1024 && stride % 8 === 0 && ahead <= 64 ? { kind: 'walk', stride, ahead } : null;
  }
  m = /^r(\d+)(n|w(\d+))?$/.exec(name);
  if (m) {
    const bytes = Number(m[1]);
    const writeAhead = m[2] === undefined ? null : m[2] === 'n' ? 0 : Number(m[3]);
    return bytes >= 1 && bytes <= 1024 && (writeAhead === null || writeAhead <= CAP / 4) ? { kind: 'ring', bytes, writeAhead } : null;
  }
  return null;
}

type Variant =
  | { kind: 'floor'; i32: Int32Array; u8: Uint8Array; bytes: number; fresh: boolean; at: number }
  | { kind: 'ring'; tx: RingProducer; rx: RingConsumer; bytes: number }
  | { kind: 'walk'; out: Int32Array; in: Int32Array; outU8: Uint8Array; inU8: Uint8Array; stride: number; ahead: number };

function variants(buf: ArrayBuffer, p: Plan, child: boolean): Variant[] {
  const rings = CONTROL_BYTES + FLOOR_BYTES * p.variants.length;
  return p.variants.map((name, i) => {
    const spec = parseVariant(name)!;
    if (spec.kind === 'floor') {
      const at = CONTROL_BYTES + i * FLOOR_BYTES;
      return { ...spec, i32: new Int32Array(buf, at, FLOOR_BYTES >> 2), u8: new Uint8Array(buf, at, FLOOR_BYTES) };
    }
    const r0 = rings + i * 2 * (RING_CONTROL_BYTES + CAP);
    const r1 = r0 + RING_CONTROL_BYTES + CAP;
    if (spec.kind === 'walk') {
      const [o, n] = child ? [r1, r0] : [r0, r1];
      return { ...spec, out: new Int32Array(buf, o, CAP >> 2), in: new Int32Array(buf, n, CAP >> 2),
        outU8: new Uint8Array(buf, o, CAP), inU8: new Uint8Array(buf, n, CAP) };
    }
    const tx = new RingProducer(buf, child ? r1 : r0, CAP, () => {});
    if (spec.writeAhead !== null) tx.writeAheadBytes = spec.writeAhead;
    const rx = new RingConsumer(buf, child ? r0 : r1, CAP, CAP, () => {});
    tx.setSibling(rx.bytes);
    return { kind: 'ring', tx, rx, bytes: spec.bytes };
  });
}

/** Floor slots: ping sequence at +0, ping payload at +64, pong sequence at +2048, pong payload at +2112. */
const PONG = 2048;

function childMain(p: Plan): void {
  const buf = native().mmapShared(3, regionBytes(p), 0);
  const control = new Int32Array(buf, 0, CONTROL_BYTES >> 2);
  const vs = variants(buf, p, true);
  const hardStop = performance.now() + HARD_STOP_MS;
  let spins = 0;
  const keepWaiting = (): boolean => {
    if ((++spins & 0xffff) !== 0) return true;
    if (Atomics.load(control, 0) !== 0 || performance.now() > hardStop) process.exit(0);
    return true;
  };
  let seq = 0;
  for (let lap = 0; lap < p.laps; lap++) {
    for (const v of vs) {
      if (v.kind === 'floor') {
        for (let i = 0; i < p.slice; i++) {
          seq++;
          while (Atomics.load(v.i32, 0) !== seq) keepWaiting();
          v.u8.copyWithin(PONG + v.at, v.at, v.at + v.bytes);
          v.i32[PONG >> 2] = seq;
        }
      } else if (v.kind === 'walk') {
        for (let i = 0; i < p.slice; i++) {
          seq++;
          const at = (seq * v.stride) % (CAP - 128);
          while (Atomics.load(v.in, at >> 2) !== seq) keepWaiting();
          v.outU8.set(v.inU8.subarray(at + 8, at + 72), at + 8);
          v.out[at >> 2] = seq;
          if (v.ahead !== 0) touchAhead(v.out, seq + v.ahead, v.stride);
        }
      } else {
        let n = 0;
        const { tx, rx } = v;
        const echo = (b: Uint8Array, o: number, l: number): void => { while (!tx.offer(2, b, o, l)) keepWaiting(); n++; };
        while (n < p.slice) if (rx.poll(echo, 1) === 0) keepWaiting();
      }
    }
  }
  process.exit(0);
}

async function parentMain(p: Plan, detail: boolean): Promise<void> {
  const region = createRegion(regionBytes(p), { populate: true, name: 'kbypass-layout-ab' });
  const control = new Int32Array(region.buffer, 0, CONTROL_BYTES >> 2);
  const stop = (): void => { Atomics.store(control, 0, 1); };
  process.on('exit', stop);
  const child = spawn(process.execPath, [__filename, '--child', JSON.stringify(p)], { stdio: ['ignore', 'inherit', 'inherit', region.fd] });
  native().close(region.fd);
  const vs = variants(region.buffer, p, false);
  const clockMs = jsClockCost() / 1e6;
  const samples = vs.map(() => new Float64Array((p.laps - 1) * p.slice));
  const perLap = vs.map(() => [] as number[]);
  const payload = new Uint8Array(1024).fill(0x5a);
  const deadline = performance.now() + HARD_STOP_MS;
  let seq = 0;
  try {
    for (let lap = 0; lap < p.laps; lap++) {
      vs.forEach((v, vi) => {
        const out = samples[vi]!;
        const base = (lap - 1) * p.slice;
        let t0 = performance.now();
        for (let i = 0; i < p.slice; i++) {
          if (v.kind === 'floor') {
            seq++;
            if (v.fresh) for (let k = 0; k < v.bytes; k += 64) payload[k] = seq;
            v.u8.set(payload.subarray(0, v.bytes), v.at);
            v.i32[0] = seq;
            for (let s = 0; Atomics.load(v.i32, PONG >> 2) !== seq; s++) {
              if ((s & 0xfffff) === 0xfffff && (child.exitCode !== null || performance.now() > deadline)) throw new Error('the peer went away');
            }
          } else if (v.kind === 'walk') {
            seq++;
            const at = (seq * v.stride) % (CAP - 128);
            v.outU8.set(payload.subarray(0, 64), at + 8);
            v.out[at >> 2] = seq;
            if (v.ahead !== 0) touchAhead(v.out, seq + v.ahead, v.stride);
            for (let s = 0; Atomics.load(v.in, at >> 2) !== seq; s++) {
              if ((s & 0xfffff) === 0xfffff && (child.exitCode !== null || performance.now() > deadline)) throw new Error('the peer went away');
            }
          } else {
            let got = false;
            const on = (): void => { got = true; };
            for (let s = 0; !v.tx.offer(2, payload, 0, v.bytes); s++) {
              if ((s & 0xfffff) === 0xfffff && (child.exitCode !== null || performance.now() > deadline)) throw new Error('the peer went away');
            }
            for (let s = 0; !got; s++) {
              if (v.rx.poll(on, 1) === 0 && (s & 0xfffff) === 0xfffff && (child.exitCode !== null || performance.now() > deadline)) throw new Error('the peer went away');
            }
          }
          const t = performance.now();
          if (lap > 0) out[base + i] = t - t0 - clockMs;
          t0 = t;
        }
        if (lap > 0) perLap[vi]!.push(median(out.subarray(base, base + p.slice)));
      });
    }
  } finally {
    stop();
  }
  const us = (ms: number): string => (ms * 1000).toFixed(3);
  process.stdout.write(`${p.variants.map((n, i) => `${n} ${us(median(samples[i]!))}`).join('  ')}  (µs, p50 of each variant's round trips)\n`);
  if (detail) for (let i = 0; i < vs.length; i++) process.stdout.write(`  ${p.variants[i]} by lap: ${perLap[i]!.map(us).join(' ')}\n`);
}

/** Write zeros over the slot of sequence `seq` (its seq word never matches 0): its lines become ours. */
function touchAhead(out: Int32Array, seq: number, stride: number): void {
  const at = (seq * stride) % (CAP - 128);
  for (let b = at; b < at + 72; b += 16) out[b >> 2] = 0;
}

function median(a: Float64Array): number {
  const s = Float64Array.from(a).sort();
  return s[s.length >> 1] ?? NaN;
}

function parsePlan(argv: string[]): { plan: Plan; detail: boolean } {
  const { values } = parseArgs({ args: argv, options: {
    variants: { type: 'string', default: 'floor,r64,r64w320' },
    laps: { type: 'string', default: '40' },
    slice: { type: 'string', default: '2000' },
    'laps-detail': { type: 'boolean', default: false },
  } });
  const variants = values.variants.split(',');
  for (const v of variants) {
    if (parseVariant(v) === null) throw new RangeError(`unknown variant ${JSON.stringify(v)} (see the header of bench/ring/layout-ab.ts)`);
  }
  const laps = Number(values.laps);
  const slice = Number(values.slice);
  if (!Number.isInteger(laps) || laps < 2 || laps > 10_000) throw new RangeError('--laps: an integer from 2 to 10000');
  if (!Number.isInteger(slice) || slice < 1 || slice > 1_000_000) throw new RangeError('--slice: an integer from 1 to 1000000');
  return { plan: { variants, laps, slice }, detail: values['laps-detail'] };
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    childMain(JSON.parse(process.argv[3]!) as Plan);
  } else {
    try {
      const { plan, detail } = parsePlan(process.argv.slice(2));
      parentMain(plan, detail).then(() => process.exit(0), (e: unknown) => { process.stderr.write(`layout-ab: ${String(e)}\n`); process.exit(1); });
    } catch (e) {
      process.stderr.write(`layout-ab: ${(e as Error).message}\n`);
      process.exit(2);
    }
  }
}
