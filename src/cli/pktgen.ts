/**
 * `kbypass pktgen -i IF --dst-ip A --dst-mac M [options]`: a UDP traffic generator on kbypass/packet's TX ring.
 *
 * One flow of Ethernet/IPv4/UDP frames from a {@link UdpFrameTemplate}: headers computed once, frame i carries
 * sequence number i (the payload's first 4 bytes, big-endian) and its checksums are updated incrementally. The
 * send loop calls `port.transmit(fill, batch)` until the count or the duration is reached, paced to `--rate` when
 * given, and gives the event loop a turn every few milliseconds (so SIGINT and the progress timer run). At the end
 * it waits (at most 2 s) until the kernel has completed every frame submitted, and reports submitted / completed.
 * Progress (pps, Mbit/s) goes to stderr once per second; the summary to stdout. Exit codes: 0 done, 1 failed
 * (the port could not be opened, the kernel reported a send error, or frames were left uncompleted), 2 bad usage.
 *
 * Rates count Ethernet frames as written (headers and payload, no FCS, preamble or padding to 60 bytes).
 */
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { interfaceInfo, openPort, type Port, type PortMode, type PortOptions } from '../packet/index';
import { MAX_PAYLOAD, MIN_PAYLOAD, PAYLOAD_OFF, UdpFrameTemplate, parseIpv4, parseMac } from '../packet/frame';
import { TX_DATA_OFFSET } from '../packet/tpacket-layout';
import { MAX_DURATION_S, commandLine, errorText, oneOf, parseOptions, positiveNumber, usageError, wholeNumber } from './usage';

/** IPv4 + UDP headers: what the MTU must hold besides the payload. */
const IP_UDP_HEADERS = 28;
/** The largest AF_XDP frame (a UMEM frame is 2048 or 4096 bytes). */
const MAX_XDP_FRAME = 4096;
/** The largest PACKET_MMAP TX slot (txFrameSize), its header included. */
const MAX_PACKET_SLOT = 65536;
/** The send loop gives the event loop a turn at least this often. */
const SLICE_MS = 4;
/** transmit() calls per slice at most (a second bound on the slice, besides the clock). */
const MAX_CALLS_PER_SLICE = 100_000;
/** Unpaced, the clock is read every this many transmit() calls. */
const CLOCK_EVERY = 16;
/** Paced, frames are sent in quanta of this many milliseconds' worth (at least 1 frame, at most --batch). */
const PACE_QUANTUM_MS = 0.05;
/** Paced waits this long or longer go to a timer (the event loop runs); shorter ones are a futex sleep. */
const TIMER_MIN_MS = 2;
/** At the end, how long to wait for the kernel to complete every frame submitted. */
const DRAIN_MS = 2000;
const PROGRESS_MS = 1000;

/** The parsed command line of `kbypass pktgen`. */
export interface PktgenOptions {
  /** `-i/--interface`: the interface to send on (in this network namespace). Required. */
  readonly ifname: string;
  /** `--src-ip`: default the interface's first IPv4 address (null here: looked up at run time). */
  readonly srcIp: string | null;
  /** `--dst-ip`. Required. */
  readonly dstIp: string;
  /** `--src-mac`: default the interface's MAC (null here: looked up at run time). */
  readonly srcMac: string | null;
  /** `--dst-mac`. Required. */
  readonly dstMac: string;
  /** `--src-port`. Default 9000. */
  readonly srcPort: number;
  /** `--dst-port`. Default 9001. */
  readonly dstPort: number;
  /** `-s/--size`: UDP payload bytes, sequence number included (4 to 65507; the MTU is checked at run time). Default 64. */
  readonly size: number;
  /** `-c/--count`: frames to send. Default: no limit (then the duration applies). */
  readonly count: number | null;
  /** `-d/--duration`: seconds to send. Default 10 when no count is given, else no limit. */
  readonly duration: number | null;
  /** `--rate`: frames per second. Default: as fast as the ring takes them (null). */
  readonly rate: number | null;
  /** `--mode`: 'xdp', 'packet' or 'auto'. Default 'auto'. */
  readonly mode: PortMode;
  /** `-q/--queue`: the queue (AF_XDP binds to one). Default 0. */
  readonly queue: number;
  /** `--batch`: frames per transmit() call, 1 to 4096. Default 64. */
  readonly batch: number;
  /** `--json`: print the summary as one JSON object on stdout. */
  readonly json: boolean;
  /** `-h/--help`: show the help; the other options are not checked. */
  readonly help: boolean;
}

/** The help text of `kbypass pktgen`. */
export const PKTGEN_USAGE = `Usage: kbypass pktgen -i IF --dst-ip A --dst-mac M [options]

Send one flow of UDP frames from an interface's TX ring (kbypass/packet), as fast as
the ring takes them or at --rate. Each frame's payload starts with its sequence number
(0, 1, 2, ... as 4 bytes, big-endian). Needs root (or CAP_NET_RAW).

Options:
  -i, --interface IF    interface to send on (required)
      --dst-ip A        destination IPv4 address (required)
      --dst-mac M       destination MAC address, aa:bb:cc:dd:ee:ff (required: no ARP is done)
      --src-ip A        source IPv4 address (default: the interface's)
      --src-mac M       source MAC address (default: the interface's)
      --src-port N      UDP source port (default 9000)
      --dst-port N      UDP destination port (default 9001)
  -s, --size BYTES      UDP payload bytes, at least ${MIN_PAYLOAD} (default 64; the IPv4 packet must fit the MTU)
  -c, --count N         send N frames
  -d, --duration SECS   send for SECS seconds (default 10 when no count is given)
      --rate PPS        frames per second (default: unlimited)
      --mode MODE       xdp (AF_XDP), packet (AF_PACKET, PACKET_MMAP) or auto (default auto:
                        AF_XDP, else AF_PACKET, saying why)
  -q, --queue N         queue (default 0)
      --batch N         frames per transmit call, 1 to 4096 (default 64)
      --json            print the summary as one JSON object on stdout
  -h, --help            show this help

Progress (pps, Mbit/s of Ethernet frames without FCS) goes to stderr once per second.
At the end pktgen waits (at most 2 s) for the kernel to complete every frame, then
prints frames sent, bytes, seconds, pps and the mode used. SIGINT/SIGTERM stop early.
Exit codes: 0 done, 1 failed, 2 bad usage.
`;

function checked<T>(name: string, s: string, parse: (s: string, name: string) => T): T {
  try {
    return parse(s, name);
  } catch (e) {
    const reason = /^The argument '[^']*' (.*)\. Received /.exec((e as Error).message)?.[1] ?? (e as Error).message;
    throw usageError(`${name} ${reason}, got '${s}'`);
  }
}

/**
 * Parses the arguments that follow `kbypass pktgen`.
 * @throws KbypassError `ERR_KBYPASS_USAGE` for an unknown or malformed option, a missing value, a positional
 * argument, a number out of range, a bad address, or a missing `-i`, `--dst-ip` or `--dst-mac` (unless `-h`).
 */
export function parsePktgenArgs(argv: readonly string[]): PktgenOptions {
  const v = parseOptions(argv, {
    interface: { type: 'string', short: 'i' },
    'src-ip': { type: 'string' },
    'dst-ip': { type: 'string' },
    'src-mac': { type: 'string' },
    'dst-mac': { type: 'string' },
    'src-port': { type: 'string' },
    'dst-port': { type: 'string' },
    size: { type: 'string', short: 's' },
    count: { type: 'string', short: 'c' },
    duration: { type: 'string', short: 'd' },
    rate: { type: 'string' },
    mode: { type: 'string' },
    queue: { type: 'string', short: 'q' },
    batch: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  const help = v.help === true;
  const mode = v.mode !== undefined ? oneOf<PortMode>('--mode', v.mode, ['xdp', 'packet', 'auto']) : 'auto';
  const count = v.count !== undefined ? wholeNumber('-c/--count', v.count, 1, Number.MAX_SAFE_INTEGER) : null;
  const duration = v.duration !== undefined ? positiveNumber('-d/--duration', v.duration, MAX_DURATION_S, 'seconds') : null;
  const o: PktgenOptions = {
    ifname: v.interface ?? '',
    srcIp: v['src-ip'] !== undefined ? (checked('--src-ip', v['src-ip'], parseIpv4), v['src-ip']) : null,
    dstIp: v['dst-ip'] ?? '',
    srcMac: v['src-mac'] !== undefined ? (checked('--src-mac', v['src-mac'], parseMac), v['src-mac']) : null,
    dstMac: v['dst-mac'] ?? '',
    srcPort: v['src-port'] !== undefined ? wholeNumber('--src-port', v['src-port'], 0, 65535) : 9000,
    dstPort: v['dst-port'] !== undefined ? wholeNumber('--dst-port', v['dst-port'], 0, 65535) : 9001,
    size: v.size !== undefined ? wholeNumber('-s/--size', v.size, MIN_PAYLOAD, MAX_PAYLOAD) : 64,
    count,
    duration: duration ?? (count === null ? 10 : null),
    rate: v.rate !== undefined ? positiveNumber('--rate', v.rate, 1e9, 'frames per second') : null,
    mode,
    queue: v.queue !== undefined ? wholeNumber('-q/--queue', v.queue, 0, 65535) : 0,
    batch: v.batch !== undefined ? wholeNumber('--batch', v.batch, 1, 4096) : 64,
    json: v.json === true,
    help,
  };
  if (!help) {
    if (o.ifname === '') throw usageError('-i/--interface is required: the interface to send on');
    if (o.dstIp === '') throw usageError('--dst-ip is required');
    if (o.dstMac === '') throw usageError('--dst-mac is required (pktgen does no ARP)');
    checked('--dst-ip', o.dstIp, parseIpv4);
    checked('--dst-mac', o.dstMac, parseMac);
  }
  return o;
}

/** The summary of a run (the `--json` object). */
export interface PktgenSummary {
  interface: string;
  queue: number;
  /** The port's kind: 'xdp' or 'packet'. */
  mode: 'xdp' | 'packet';
  zeroCopy: boolean;
  /** Why 'auto' (or AF_XDP itself) fell back ('' when nothing was refused). */
  fallbackReason: string;
  /** Ethernet frame length (no FCS) and UDP payload length. */
  frameBytes: number;
  payloadBytes: number;
  /** Frames given to the kernel, and those it reported sent. */
  submitted: number;
  completed: number;
  /** Bytes of the completed frames. */
  bytes: number;
  /** From the first transmit to the last completion. */
  seconds: number;
  pps: number;
  mbps: number;
  stoppedBy: 'count' | 'duration' | 'signal';
  /** The errno of the last failed send kick, 0 if none. */
  txError: number;
}

function ipv4Of(ifname: string): string | null {
  const addrs = os.networkInterfaces()[ifname] ?? [];
  for (const a of addrs) if (a.family === 'IPv4') return a.address;
  return null;
}

const pow2AtLeast = (n: number): number => { let p = 1; while (p < n) p *= 2; return p; };

/** Runs `kbypass pktgen` with the arguments after `pktgen`; resolves to the exit code. */
export async function runPktgen(argv: readonly string[]): Promise<number> {
  const o = commandLine('pktgen', argv, parsePktgenArgs, PKTGEN_USAGE);
  if (typeof o === 'number') return o;
  const err = process.stderr;
  const fail = (message: string, code: number): number => { err.write(`kbypass pktgen: ${message}\n`); return code; };

  let info;
  try {
    info = interfaceInfo(o.ifname);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return fail(errorText(e), typeof code === 'string' && code.startsWith('ERR_INVALID_ARG') ? 2 : 1);
  }
  const srcIp = o.srcIp ?? ipv4Of(o.ifname);
  if (srcIp === null) return fail(`--src-ip is required: ${o.ifname} has no IPv4 address in this network namespace`, 2);
  const srcMac = o.srcMac ?? (info.mac !== '' ? info.mac : null);
  if (srcMac === null) return fail(`--src-mac is required: the MAC address of ${o.ifname} is unknown`, 2);
  if (o.size + IP_UDP_HEADERS > info.mtu) {
    return fail(`-s ${o.size} makes ${o.size + IP_UDP_HEADERS}-byte IPv4 packets, more than the MTU of ${o.ifname} (${info.mtu}): ` +
      `use -s ${info.mtu - IP_UDP_HEADERS} or less`, 2);
  }
  let tpl: UdpFrameTemplate;
  try {
    tpl = new UdpFrameTemplate({ srcMac, dstMac: o.dstMac, srcIp, dstIp: o.dstIp, srcPort: o.srcPort, dstPort: o.dstPort }, o.size);
  } catch (e) {
    return fail(errorText(e), 2);
  }
  const frameLength = tpl.frameLength;

  // Frames big enough for the template: UMEM frames of 2048 or 4096 bytes; PACKET_MMAP slots of a power of two
  // holding the frame after the slot's header.
  if (frameLength + TX_DATA_OFFSET > MAX_PACKET_SLOT) {
    return fail(`-s ${o.size} makes ${frameLength}-byte frames; a TX ring slot holds at most ${MAX_PACKET_SLOT - TX_DATA_OFFSET}: ` +
      `use -s ${MAX_PACKET_SLOT - TX_DATA_OFFSET - PAYLOAD_OFF} or less`, 2);
  }
  let mode = o.mode;
  let reason = '';
  if (frameLength > MAX_XDP_FRAME) {
    if (mode === 'xdp') return fail(`AF_XDP frames are at most ${MAX_XDP_FRAME} bytes: use -s ${MAX_XDP_FRAME - PAYLOAD_OFF} or less, or --mode packet`, 2);
    if (mode === 'auto') { mode = 'packet'; reason = `AF_XDP unavailable: ${frameLength}-byte frames do not fit its ${MAX_XDP_FRAME}-byte UMEM frames`; }
  }
  const portOptions: PortOptions = {
    ifname: o.ifname, queue: o.queue, mode, rx: false, tx: true,
    frameSize: frameLength > 2048 ? 4096 : 2048,
    txFrameSize: Math.max(2048, pow2AtLeast(frameLength + TX_DATA_OFFSET)),
  };
  let port: Port;
  try {
    port = await openPort(portOptions);
  } catch (e) {
    return fail(`cannot open ${o.ifname} queue ${o.queue} (--mode ${o.mode}): ${errorText(e)}`, 1);
  }
  const fallbackReason = [reason, port.fallbackReason].filter((s) => s !== '').join('; ');

  // ---- the send loop ----
  const limit = o.count ?? Number.MAX_SAFE_INTEGER;
  /** [next sequence number]: in a typed array, so that the filler stores it without allocating. */
  const next = new Float64Array(1);
  const fill = (bytes: Uint8Array, offset: number, capacity: number): number => {
    const seq = next[0] as number;
    if (seq >= limit || capacity < frameLength) return 0;
    next[0] = seq + 1;
    return tpl.writeTo(bytes, offset, seq >>> 0);
  };

  let stopping = false;
  const onSignal = (): void => { stopping = true; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const how = port.mode === 'xdp' ? `AF_XDP (${port.zeroCopy ? 'zero-copy' : 'copy'})` : 'AF_PACKET (PACKET_MMAP)';
  err.write(`kbypass pktgen: sending on ${o.ifname} queue ${o.queue} via ${how}: ${srcIp}:${o.srcPort} -> ${o.dstIp}:${o.dstPort}, ` +
    `${o.size}-byte payloads (${frameLength}-byte frames)` +
    `${o.count !== null ? `, ${o.count} frames` : ''}${o.duration !== null ? `, ${o.duration} s at most` : ''}` +
    `${o.rate !== null ? `, ${o.rate} pps` : ''}\n`);
  if (fallbackReason) err.write(`kbypass pktgen: note: ${fallbackReason}\n`);

  const tty = err.isTTY === true;
  const t0 = performance.now();
  let lastT = t0;
  let lastDone = 0;
  const progress = setInterval(() => {
    const now = performance.now();
    let done = 0;
    try { done = port.stats().txCompleted; } catch { return; }
    const dt = (now - lastT) / 1000;
    const pps = dt > 0 ? (done - lastDone) / dt : 0;
    lastT = now;
    lastDone = done;
    const line = `${((now - t0) / 1000).toFixed(0).padStart(4)} s  ${Math.round(pps)} pps, ${((pps * frameLength * 8) / 1e6).toFixed(1)} Mbit/s, ${done} frames sent`;
    err.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }, PROGRESS_MS);

  const deadline = o.duration !== null ? t0 + o.duration * 1000 : Number.POSITIVE_INFINITY;
  const ratePerMs = o.rate !== null ? o.rate / 1000 : 0;
  const batch = o.batch;
  // Paced, frames go out in quanta of about PACE_QUANTUM_MS worth (1 to `batch` frames), and the wait for the next
  // quantum is a futex sleep (Atomics.wait) when it is short: no clock read, no allocation per frame.
  const quantum = ratePerMs > 0 ? Math.max(1, Math.min(batch, Math.floor(ratePerMs * PACE_QUANTUM_MS))) : batch;
  const sleepCell = new Int32Array(new SharedArrayBuffer(4));
  try {
    // Each slice (one event-loop turn) is bounded by SLICE_MS and MAX_CALLS_PER_SLICE; the whole loop by the count
    // or the duration (a run with neither cannot be asked for: the duration defaults to 10 s) and by SIGINT/SIGTERM.
    // The clock is read once per transmit() call when paced, once per CLOCK_EVERY calls otherwise: never per frame.
    for (;;) {
      let now = performance.now();
      const sliceEnd = now + SLICE_MS;
      let waitMs = 0; // > 0: sleep that long on a timer before the next slice (pacing); else an immediate turn
      let finished = false;
      for (let i = 0; i < MAX_CALLS_PER_SLICE; i++) {
        const sent = next[0] as number;
        if (stopping || sent >= limit) { finished = true; break; }
        if (ratePerMs > 0 || i % CLOCK_EVERY === 0) {
          now = performance.now();
          if (now >= deadline) { finished = true; break; }
          if (now >= sliceEnd) break;
        }
        let want = batch;
        if (ratePerMs > 0) {
          const left = limit - sent;
          const allowed = Math.floor((now - t0) * ratePerMs) + 1 - sent;
          const need = quantum < left ? quantum : left;
          if (allowed < need) {
            const wait = (need - allowed) / ratePerMs;
            if (wait >= TIMER_MIN_MS) { waitMs = wait; break; }
            Atomics.wait(sleepCell, 0, 0, wait);
            continue;
          }
          if (allowed < want) want = allowed;
        }
        if (port.transmit(fill, want) === 0) port.flush();
      }
      if (finished) break;
      if (waitMs > 0) await sleep(Math.min(waitMs - 1, 100));
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // Wait for the kernel to complete what was submitted (it stops at DRAIN_MS).
    const until = performance.now() + DRAIN_MS;
    for (;;) {
      port.flush();
      port.reap();
      const s = port.stats();
      if (s.txCompleted >= s.txSubmitted || performance.now() >= until) break;
      await sleep(1);
    }
  } catch (e) {
    clearInterval(progress);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (tty) err.write('\r\x1b[K');
    port.close();
    return fail(`sending failed: ${errorText(e)}`, 1);
  }
  clearInterval(progress);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (tty) err.write('\r\x1b[K');
  const end = performance.now();
  const stats = port.stats();
  const txError = port.txError;
  port.close();

  const stoppedBy: PktgenSummary['stoppedBy'] = (next[0] as number) >= limit ? 'count' : stopping ? 'signal' : 'duration';
  const seconds = (end - t0) / 1000;
  const completed = stats.txCompleted;
  const summary: PktgenSummary = {
    interface: o.ifname,
    queue: o.queue,
    mode: port.mode,
    zeroCopy: port.zeroCopy,
    fallbackReason,
    frameBytes: frameLength,
    payloadBytes: o.size,
    submitted: stats.txSubmitted,
    completed,
    bytes: completed * frameLength,
    seconds,
    pps: seconds > 0 ? completed / seconds : 0,
    mbps: seconds > 0 ? (completed * frameLength * 8) / seconds / 1e6 : 0,
    stoppedBy,
    txError,
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    const modeText = port.mode === 'xdp' ? `xdp (${port.zeroCopy ? 'zero-copy' : 'copy'})` : 'packet';
    process.stdout.write(`${completed} frames sent (${summary.submitted} submitted), ${summary.bytes} bytes in ${seconds.toFixed(3)} s: ` +
      `${Math.round(summary.pps)} pps, ${summary.mbps.toFixed(1)} Mbit/s\n` +
      `mode: ${modeText}${fallbackReason ? `; ${fallbackReason}` : ''}\n` +
      `stopped by: ${stoppedBy}\n`);
  }
  let code = 0;
  if (txError !== 0) {
    const name = errnoName(txError);
    err.write(`kbypass pktgen: the kernel refused to send: errno ${txError}${name ? ` (${name})` : ''}\n`);
    code = 1;
  }
  if (completed < summary.submitted) {
    err.write(`kbypass pktgen: ${summary.submitted - completed} frames were not completed within ${DRAIN_MS / 1000} s of the end\n`);
    code = 1;
  }
  return code;
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return '';
}
