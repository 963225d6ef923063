/**
 * Options of {@link openPort}, with their defaults, and their validation (all of it here, in TypeScript: the
 * native core gets checked integers only).
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';

/** How a port reaches the packets. */
export type PortMode = 'xdp' | 'packet' | 'auto';
/** Where the XDP program runs: in the driver ('native'), or after the kernel built an skb ('skb'). */
export type XdpAttachMode = 'native' | 'skb' | 'auto';
/** AF_XDP data copies: 'zerocopy' needs driver support (veth has none). */
export type XdpCopyMode = 'copy' | 'zerocopy' | 'auto';
/** PACKET_FANOUT algorithms. */
export type FanoutType = 'hash' | 'lb' | 'cpu' | 'rollover' | 'random' | 'qm';

/** Options of {@link openPort}. */
export interface PortOptions {
  /** The network interface, e.g. 'eth0' (in the calling process's network namespace). Required. */
  readonly ifname: string;
  /** The receive queue to bind (AF_XDP sees only this queue's traffic). Default 0. */
  readonly queue?: number;
  /** 'xdp' (AF_XDP), 'packet' (PACKET_MMAP, TPACKET_V3) or 'auto' (AF_XDP, else PACKET_MMAP with the reason in
   *  `port.fallbackReason`). Default 'auto'. */
  readonly mode?: PortMode;
  /** Receive frames. Default true. */
  readonly rx?: boolean;
  /** Send frames. Default true. */
  readonly tx?: boolean;

  // ---- AF_XDP ----
  /** Attach the redirect program in the driver or in generic (skb) mode; 'auto' tries native first. Default 'auto'. */
  readonly xdpMode?: XdpAttachMode;
  /** 'auto' tries zero-copy, then copy. Default 'auto'. */
  readonly copyMode?: XdpCopyMode;
  /** Bind with XDP_USE_NEED_WAKEUP: syscalls only when the kernel asks. Default true. */
  readonly needWakeup?: boolean;
  /** UMEM frame size: 2048 or 4096. Default 2048. */
  readonly frameSize?: number;
  /** UMEM frames (a power of two, at least the RX plus TX ring sizes). Default 4096. */
  readonly frameCount?: number;
  /** RX ring and FILL ring entries (power of two). Default 2048. */
  readonly rxRingSize?: number;
  /** TX ring and COMPLETION ring entries (power of two). Default 2048. */
  readonly txRingSize?: number;

  // ---- PACKET_MMAP ----
  /** TPACKET_V3 RX block size in bytes (a multiple of the page size, power of two). Default 262144 (256 KiB). */
  readonly blockSize?: number;
  /** TPACKET_V3 RX blocks. Default 64 (16 MiB). */
  readonly blockCount?: number;
  /** Milliseconds after which the kernel hands over a block that is not full. Default 2. */
  readonly blockTimeoutMs?: number;
  /** TX ring frame size in bytes (power of two, ≥ 2048). Default 2048. */
  readonly txFrameSize?: number;
  /** TX ring frames. Default 1024. */
  readonly txFrameCount?: number;
  /** PACKET_QDISC_BYPASS: TX frames go straight to the driver. Default true. */
  readonly qdiscBypass?: boolean;
  /** Join a PACKET_FANOUT group: sockets with the same id share the interface's traffic. Default none. */
  readonly fanout?: Readonly<{ id: number; type?: FanoutType; defrag?: boolean; rollover?: boolean }>;

  /** Pin the UMEM / rings counted against RLIMIT_MEMLOCK. AF_XDP always pins its UMEM. Default false. */
  readonly lock?: boolean;
  /** Publish the port's statistics once a second for `kbypass stat` (a small file in /dev/shm/kbypass-stats, or
   *  $KBYPASS_STATS_DIR). Default true. */
  readonly publishStats?: boolean;
}

/** Options with every default applied. */
export interface ResolvedPortOptions {
  ifname: string; queue: number; mode: PortMode; rx: boolean; tx: boolean;
  xdpMode: XdpAttachMode; copyMode: XdpCopyMode; needWakeup: boolean;
  frameSize: number; frameCount: number; rxRingSize: number; txRingSize: number;
  blockSize: number; blockCount: number; blockTimeoutMs: number; txFrameSize: number; txFrameCount: number;
  qdiscBypass: boolean; fanout: { id: number; type: FanoutType; defrag: boolean; rollover: boolean } | null;
  lock: boolean;
  publishStats: boolean;
}

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidArgValue(name, v, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return v as T;
}

function bool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgType(name, 'of type boolean', v);
  return v;
}

function int(name: string, v: unknown, dflt: number, min: number, max: number, pow2 = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, v);
  if (pow2 && !isPow2(v)) throw invalidArgValue(name, v, 'must be a power of two');
  return v;
}

/** Check every option and apply the defaults. */
export function resolvePortOptions(options: unknown): ResolvedPortOptions {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as Record<string, unknown>;
  const ifname = o['ifname'];
  if (typeof ifname !== 'string') throw invalidArgType('options.ifname', 'of type string', ifname);
  if (ifname.length === 0 || ifname.length > 15 || /[\s/\0:]/.test(ifname)) {
    throw invalidArgValue('options.ifname', ifname, 'must be an interface name (1 to 15 characters, no spaces, / or :)');
  }
  const r: ResolvedPortOptions = {
    ifname,
    queue: int('options.queue', o['queue'], 0, 0, 65535),
    mode: oneOf('options.mode', o['mode'], ['xdp', 'packet', 'auto'] as const, 'auto'),
    rx: bool('options.rx', o['rx'], true),
    tx: bool('options.tx', o['tx'], true),
    xdpMode: oneOf('options.xdpMode', o['xdpMode'], ['native', 'skb', 'auto'] as const, 'auto'),
    copyMode: oneOf('options.copyMode', o['copyMode'], ['copy', 'zerocopy', 'auto'] as const, 'auto'),
    needWakeup: bool('options.needWakeup', o['needWakeup'], true),
    frameSize: int('options.frameSize', o['frameSize'], 2048, 2048, 4096, true),
    frameCount: int('options.frameCount', o['frameCount'], 4096, 64, 1 << 20, true),
    rxRingSize: int('options.rxRingSize', o['rxRingSize'], 2048, 64, 1 << 16, true),
    txRingSize: int('options.txRingSize', o['txRingSize'], 2048, 64, 1 << 16, true),
    blockSize: int('options.blockSize', o['blockSize'], 1 << 18, 4096, 1 << 26, true),
    blockCount: int('options.blockCount', o['blockCount'], 64, 2, 1 << 16),
    blockTimeoutMs: int('options.blockTimeoutMs', o['blockTimeoutMs'], 2, 1, 1000),
    txFrameSize: int('options.txFrameSize', o['txFrameSize'], 2048, 2048, 1 << 16, true),
    txFrameCount: int('options.txFrameCount', o['txFrameCount'], 1024, 8, 1 << 16),
    qdiscBypass: bool('options.qdiscBypass', o['qdiscBypass'], true),
    fanout: null,
    lock: bool('options.lock', o['lock'], false),
    publishStats: bool('options.publishStats', o['publishStats'], true),
  };
  if (!r.rx && !r.tx) throw invalidArgValue('options', 'rx: false, tx: false', 'must enable rx or tx');
  const need = (r.rx ? r.rxRingSize : 0) + (r.tx ? r.txRingSize : 0);
  if (r.frameCount < need) {
    throw invalidArgValue('options.frameCount', r.frameCount, `must be at least the RX plus TX ring sizes (${need})`);
  }
  const f = o['fanout'];
  if (f !== undefined) {
    if (f === null || typeof f !== 'object') throw invalidArgType('options.fanout', 'of type object', f);
    const fo = f as Record<string, unknown>;
    r.fanout = {
      id: int('options.fanout.id', fo['id'], -1, 0, 65535),
      type: oneOf('options.fanout.type', fo['type'], ['hash', 'lb', 'cpu', 'rollover', 'random', 'qm'] as const, 'hash'),
      defrag: bool('options.fanout.defrag', fo['defrag'], false),
      rollover: bool('options.fanout.rollover', fo['rollover'], false),
    };
    if (r.fanout.id < 0) throw invalidArgType('options.fanout.id', 'of type number', fo['id']);
  }
  return r;
}
