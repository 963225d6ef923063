/**
 * `kbypass capture -i IF -w FILE.pcap [options]`: a tcpdump-like capture from kbypass/packet's receive rings into
 * a pcap file (nanosecond timestamps, Ethernet).
 *
 * The port is opened receive-only and its frames are delivered by the event loop (`port.start()`: libuv sleeps on
 * the socket while nothing arrives); each frame goes into a {@link PcapWriter} with its timestamp and its length
 * on the wire (`port.frameMeta()`). Progress goes to stderr once per second; the summary (packets, bytes, the
 * kernel's drops by reason, the mode used and why) to stdout, or to stderr when the pcap itself goes to stdout.
 * The capture stops on `-c` packets, after `-G` seconds, or on SIGINT/SIGTERM, and always closes the port and
 * flushes the file. Exit codes: 0 done, 1 failed, 2 bad usage.
 *
 * Errors: bad arguments are `ERR_KBYPASS_USAGE` (exit 2); a failed `openPort` is reported with its errno `code`
 * and its message (which says what to do), exit 1.
 */
import { openSync } from 'node:fs';
import { openPort, type Port, type PortMode } from '../packet/index';
import { MAX_SNAPLEN, PcapWriter } from '../packet/pcap';
import { MAX_DURATION_S, commandLine, errorText, oneOf, parseOptions, positiveNumber, usageError, wholeNumber } from './usage';

/** The error code of every bad-usage error of `kbypass capture` (and `kbypass pktgen`): see ./usage. */
export { ERR_USAGE } from './usage';

/** How long a write to a non-blocking stdout (EAGAIN) is retried before the capture fails. */
const STDOUT_STALL_MS = 10_000;
/** -B's range in KiB: 1 MiB (8 AF_PACKET blocks, 512 AF_XDP frames) to 1 GiB. */
const MIN_BUFFER_KIB = 1024;
const MAX_BUFFER_KIB = 1 << 20;
/** The AF_PACKET block and AF_XDP frame sizes the capture uses (the port's defaults). */
const BLOCK_BYTES = 1 << 18;
const XDP_FRAME_BYTES = 2048;
/** Progress lines on stderr, this often. */
const PROGRESS_MS = 1000;

/** The parsed command line of `kbypass capture`. */
export interface CaptureOptions {
  /** `-i/--interface`: the interface to capture on (in this network namespace). Required. */
  readonly ifname: string;
  /** `-w/--write`: the pcap file to create (truncated if it exists); `-` writes it to stdout. Required. */
  readonly file: string;
  /** `-q/--queue`: the receive queue (AF_XDP sees only this queue's traffic). Default 0. */
  readonly queue: number;
  /** `--mode`: 'packet' (AF_PACKET, a copy: the kernel stack still gets every packet), 'xdp' (AF_XDP: the
   *  queue's traffic is taken from the kernel stack), or 'auto' (AF_XDP, else AF_PACKET). Default 'packet'. */
  readonly mode: PortMode;
  /** `-c/--count`: stop after this many packets. Default: no limit. */
  readonly count: number | null;
  /** `-G/--duration`: stop after this many seconds (decimals allowed). Default: no limit. */
  readonly duration: number | null;
  /** `-s/--snaplen`: bytes kept of each packet, 1 to 262144. Default 262144. */
  readonly snaplen: number;
  /** `-B/--buffer-size`: the kernel-side buffer in KiB (AF_PACKET blocks, or AF_XDP UMEM frames and rings).
   *  Default null: the port's defaults (16 MiB of blocks; 8 MiB of UMEM with 2048-entry rings). */
  readonly bufferKiB: number | null;
  /** `--json`: print the summary as one JSON object (on stdout, or on stderr with `-w -`). Default false. */
  readonly json: boolean;
  /** `-h/--help`: show the help; the other options are not checked. */
  readonly help: boolean;
}

/** The help text of `kbypass capture`. */
export const CAPTURE_USAGE = `Usage: kbypass capture -i IF -w FILE.pcap [options]

Capture packets from an interface's receive rings (kbypass/packet) into a pcap file
(nanosecond timestamps, Ethernet), like tcpdump -w. Needs root (or CAP_NET_RAW, and
CAP_NET_ADMIN + CAP_BPF for --mode xdp).

Options:
  -i, --interface IF    interface to capture on (required)
  -w, --write FILE      pcap file to create, or - for stdout (required)
  -q, --queue N         receive queue (default 0; AF_XDP sees only this queue's traffic)
      --mode MODE       packet, xdp or auto (default packet):
                          packet  AF_PACKET (TPACKET_V3): sees a copy of every packet and
                                  leaves the traffic alone, like tcpdump
                          xdp     AF_XDP: TAKES the queue's traffic AWAY from the kernel
                                  stack while the capture runs (sockets on this host stop
                                  receiving it); the fastest way in
                          auto    AF_XDP if possible (so it takes the traffic too), else
                                  AF_PACKET
  -c, --count N         stop after N packets
  -G, --duration SECS   stop after SECS seconds
  -s, --snaplen BYTES   bytes kept of each packet (default ${MAX_SNAPLEN}, the most)
  -B, --buffer-size KiB the kernel's buffer for the capture, in KiB (default 16384 with
                        AF_PACKET, 8192 with AF_XDP); a bigger one rides out longer pauses
      --json            print the summary as one JSON object (on stdout; on stderr with -w -)
  -h, --help            show this help

Progress goes to stderr once per second. The capture stops on -c, -G, SIGINT or SIGTERM,
and prints what it captured and what the kernel dropped, by reason.
Exit codes: 0 done, 1 failed, 2 bad usage.
`;

/**
 * Parses the arguments that follow `kbypass capture`.
 * @throws KbypassError `ERR_KBYPASS_USAGE` for an unknown or malformed option, a missing value, a positional
 * argument, a number out of range, or a missing `-i` / `-w` (unless `-h`).
 */
export function parseCaptureArgs(argv: readonly string[]): CaptureOptions {
  const values = parseOptions(argv, {
    interface: { type: 'string', short: 'i' },
    write: { type: 'string', short: 'w' },
    queue: { type: 'string', short: 'q' },
    mode: { type: 'string' },
    count: { type: 'string', short: 'c' },
    duration: { type: 'string', short: 'G' },
    snaplen: { type: 'string', short: 's' },
    'buffer-size': { type: 'string', short: 'B' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  const help = values.help === true;
  const base = {
    queue: values.queue !== undefined ? wholeNumber('-q/--queue', values.queue, 0, 65535) : 0,
    mode: values.mode !== undefined ? oneOf<PortMode>('--mode', values.mode, ['packet', 'xdp', 'auto']) : 'packet' as PortMode,
    count: values.count !== undefined ? wholeNumber('-c/--count', values.count, 1, Number.MAX_SAFE_INTEGER) : null,
    duration: values.duration !== undefined ? positiveNumber('-G/--duration', values.duration, MAX_DURATION_S, 'seconds', false) : null,
    snaplen: values.snaplen !== undefined ? wholeNumber('-s/--snaplen', values.snaplen, 1, MAX_SNAPLEN) : MAX_SNAPLEN,
    bufferKiB: values['buffer-size'] !== undefined ? wholeNumber('-B/--buffer-size', values['buffer-size'], MIN_BUFFER_KIB, MAX_BUFFER_KIB) : null,
    json: values.json === true,
    help,
  };
  const ifname = values.interface ?? '';
  const file = values.write ?? '';
  if (!help) {
    if (ifname === '') throw usageError('-i/--interface is required: the interface to capture on');
    if (file === '') throw usageError('-w/--write is required: the pcap file to write (- for stdout)');
  }
  return { ifname, file, ...base };
}

/** Why the capture stopped. */
export type StopReason = 'count' | 'duration' | 'signal' | 'error';

/** The summary of a capture (the `--json` object). */
export interface CaptureSummary {
  interface: string;
  queue: number;
  /** The port's kind: 'xdp' or 'packet'. */
  mode: 'xdp' | 'packet';
  /** Where the XDP program ran ('native' / 'skb'); null for AF_PACKET. */
  xdpMode: 'native' | 'skb' | null;
  zeroCopy: boolean;
  /** Why a faster configuration was not used ('' when none was refused). */
  fallbackReason: string;
  file: string;
  /** Packets written to the file. */
  packets: number;
  /** Bytes written of them (at most snaplen each; pcap headers not counted). */
  bytes: number;
  /** Their lengths on the wire, summed. */
  wireBytes: number;
  seconds: number;
  /** Packets the kernel dropped on the way to the capture, all reasons together, and by reason. */
  dropped: number;
  drops: Record<string, number>;
  stoppedBy: StopReason;
}

function isUsageCode(code: unknown): boolean {
  return typeof code === 'string' && (code.startsWith('ERR_INVALID_ARG') || code === 'ERR_OUT_OF_RANGE');
}

/** Port options for a kernel buffer of `kib` KiB: AF_PACKET blocks of 256 KiB; AF_XDP 2 KiB frames (a power of
 *  two of them, at most 2^20), half of them in each of the FILL and RX rings (at most 2^16 entries each). */
function bufferOptions(kib: number | null): { blockCount?: number; frameCount?: number; rxRingSize?: number } {
  if (kib === null) return {};
  const bytes = kib * 1024;
  let frames = 1;
  while (frames * 2 * XDP_FRAME_BYTES <= bytes && frames < (1 << 20)) frames *= 2;
  return {
    blockCount: Math.max(2, Math.ceil(bytes / BLOCK_BYTES)),
    frameCount: frames,
    rxRingSize: Math.min(frames / 2, 1 << 16),
  };
}

/** Receive-side drop reasons only (a capture port never transmits). */
function rxDrops(drops: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(drops)) if (!k.startsWith('tx')) out[k] = v;
  return out;
}

function sum(r: Record<string, number>): number {
  let s = 0;
  for (const v of Object.values(r)) s += v;
  return s;
}

function describePort(port: Port): string {
  if (port.mode === 'packet') return 'AF_PACKET (TPACKET_V3), a copy: the kernel stack still gets the traffic';
  return `AF_XDP (${port.xdpMode ?? '?'} XDP, ${port.zeroCopy ? 'zero-copy' : 'copy'}): this queue's traffic is taken from the kernel stack`;
}

function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** Sleep synchronously (a stalled stdout: the capture cannot go on until it drains). */
function sleepSync(ms: number, cell: Int32Array): void {
  Atomics.wait(cell, 0, 0, ms);
}

function isEagain(e: unknown): boolean {
  return (e as { code?: unknown })?.code === 'EAGAIN';
}

/**
 * Runs `kbypass capture` with the arguments after `capture`; resolves to the exit code.
 */
export async function runCapture(argv: readonly string[]): Promise<number> {
  const o = commandLine('capture', argv, parseCaptureArgs, CAPTURE_USAGE);
  if (typeof o === 'number') return o;
  const err = process.stderr;
  const toStdout = o.file === '-';

  let port: Port;
  try {
    port = await openPort({ ifname: o.ifname, queue: o.queue, mode: o.mode, rx: true, tx: false, ...bufferOptions(o.bufferKiB) });
  } catch (e) {
    err.write(`kbypass capture: cannot open ${o.ifname} queue ${o.queue} (--mode ${o.mode}): ${errorText(e)}\n`);
    return isUsageCode((e as { code?: unknown }).code) ? 2 : 1;
  }

  let writer: PcapWriter;
  try {
    writer = toStdout ? new PcapWriter(1, { snaplen: o.snaplen, autoClose: false }) : new PcapWriter(openSync(o.file, 'w'), { snaplen: o.snaplen, autoClose: true });
  } catch (e) {
    port.close();
    err.write(`kbypass capture: cannot write ${o.file}: ${errorText(e)}\n`);
    return 1;
  }

  const sleepCell = new Int32Array(new SharedArrayBuffer(4));
  /** Write out what the writer buffers, then close it (closing the file, not stdout). A non-blocking stdout that
   *  is full (EAGAIN) is waited for, bounded; flush() keeps what it could not write, so a retry loses nothing. */
  const closeWriter = (): void => {
    const until = Date.now() + STDOUT_STALL_MS;
    for (;;) {
      try {
        writer.flush();
        break;
      } catch (e) {
        if (!isEagain(e) || Date.now() > until) { try { writer.close(); } catch { /* already failing */ } throw e; }
        sleepSync(1, sleepCell);
      }
    }
    writer.close();
  };

  // ---- the capture ----
  const meta = new Float64Array(3);
  /** [wire bytes] kept in a typed array: the handler stores doubles without allocating. */
  const wire = new Float64Array(1);
  const limit = o.count ?? Number.MAX_SAFE_INTEGER;
  let stopping = false;
  let stoppedBy: StopReason = 'signal';
  let failure: unknown = null;
  let finish: () => void = () => { /* replaced below */ };
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const stop = (why: StopReason, e?: unknown): void => {
    if (stopping) return;
    stopping = true;
    stoppedBy = why;
    if (e !== undefined) failure = e;
    port.stop();
    finish();
  };

  const handler = (bytes: Uint8Array, offset: number, length: number): void => {
    if (stopping) return;
    port.frameMeta(meta);
    const onWire = (meta[2] as number) > length ? (meta[2] as number) : length;
    try {
      writer.write(bytes, offset, length, onWire, meta[0] as number, meta[1] as number);
    } catch (e) {
      // write() drains its buffer before it adds a record that does not fit: on a stalled stdout, wait and retry.
      let retried = false;
      if (isEagain(e)) {
        const until = Date.now() + STDOUT_STALL_MS;
        while (!retried && Date.now() <= until) {
          sleepSync(1, sleepCell);
          try { writer.write(bytes, offset, length, onWire, meta[0] as number, meta[1] as number); retried = true; } catch (e2) { if (!isEagain(e2)) break; }
        }
      }
      if (!retried) { stop('error', e); return; }
    }
    wire[0] = (wire[0] as number) + onWire;
    if (writer.packets >= limit) stop('count');
  };

  const onSignal = (): void => stop('signal');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  port.on('error', (e: unknown) => stop('error', e));

  const tty = err.isTTY === true;
  const started = Date.now();
  const where = toStdout ? 'stdout' : o.file;
  err.write(`kbypass capture: listening on ${o.ifname} queue ${o.queue}, ${describePort(port)}; ` +
    `snaplen ${o.snaplen} bytes, writing ${where}\n`);
  if (port.fallbackReason) err.write(`kbypass capture: note: ${port.fallbackReason}\n`);

  const progress = setInterval(() => {
    let dropped = 0;
    try { dropped = sum(rxDrops(port.stats().drops)); } catch { /* closed meanwhile */ }
    const line = `${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${writer.packets} packets, ` +
      `${formatBytes(writer.bytes)}, ${dropped} dropped by the kernel`;
    err.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }, PROGRESS_MS);
  const timer = o.duration !== null ? setTimeout(() => stop('duration'), o.duration * 1000) : null;

  try {
    port.start(handler, { maxBatch: 64 });
  } catch (e) {
    stop('error', e);
  }
  await finished;

  clearInterval(progress);
  if (timer !== null) clearTimeout(timer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (tty) err.write('\r\x1b[K');
  const elapsed = (Date.now() - started) / 1000;

  let stats;
  try { stats = port.stats(); } catch { stats = null; }
  port.close();
  let code = 0;
  try {
    closeWriter();
  } catch (e) {
    if (!(toStdout && (e as { code?: unknown }).code === 'EPIPE')) {
      err.write(`kbypass capture: writing ${where} failed: ${errorText(e)}\n`);
      code = 1;
    }
  }
  if (failure !== null) {
    const epipe = toStdout && (failure as { code?: unknown }).code === 'EPIPE';
    if (!epipe) {
      err.write(`kbypass capture: capture failed: ${errorText(failure)}\n`);
      code = 1;
    }
  }

  const drops = rxDrops(stats?.drops ?? {});
  const summary: CaptureSummary = {
    interface: o.ifname,
    queue: o.queue,
    mode: port.mode,
    xdpMode: port.xdpMode,
    zeroCopy: port.zeroCopy,
    fallbackReason: port.fallbackReason,
    file: o.file,
    packets: writer.packets,
    bytes: writer.bytes,
    wireBytes: wire[0] as number,
    seconds: elapsed,
    dropped: sum(drops),
    drops,
    stoppedBy,
  };
  const out = toStdout ? err : process.stdout;
  if (o.json) {
    out.write(`${JSON.stringify(summary)}\n`);
  } else {
    const reasons = Object.entries(drops).map(([k, v]) => `${k} ${v}`).join(', ');
    const how = port.mode === 'xdp' ? `xdp (${port.xdpMode ?? '?'}, ${port.zeroCopy ? 'zero-copy' : 'copy'})` : 'packet';
    out.write(`${summary.packets} packets captured (${summary.bytes} bytes, ${summary.wireBytes} on the wire) in ${elapsed.toFixed(2)} s\n` +
      `${summary.dropped} packets dropped by the kernel${reasons ? ` (${reasons})` : ''}\n` +
      `mode: ${how}${summary.fallbackReason ? `; ${summary.fallbackReason}` : ''}\n` +
      `stopped by: ${stoppedBy}\n`);
  }
  return code;
}
