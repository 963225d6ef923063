/**
 * Options of channels and servers, with their defaults, and their checking (all argument checking is done in
 * TypeScript; the native core gets primitives only).
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';
import { MAX_CAPACITY, MIN_CAPACITY } from '../ring/layout';

/** When the event-driven receiver has nothing to do, it spins, then yields to the event loop, then parks. */
export interface IdleOptions {
  /**
   * Keep polling in a tight loop for this long after the last message before yielding (blocks the event loop
   * for at most this long; answers within ~100 ns while spinning). 0 to 1 000 000. Default 20.
   */
  readonly spinMicros?: number;
  /**
   * Then poll once per event-loop turn (setImmediate) for this long before parking on the doorbell (the event
   * loop stays responsive; the CPU stays busy). 0 to Infinity (never park). Default 200.
   */
  readonly yieldMicros?: number;
}

/** Options shared by both ends of a channel. */
export interface ChannelOptions {
  /** Largest message this side accepts, in bytes (advertised to the peer; larger sends fail there). Default 16 MiB; 1 to 2^31 − 1. */
  readonly maxMessageSize?: number;
  /** Idle strategy of the event-driven receiver. */
  readonly idle?: IdleOptions;
  /** Pin the shared region in RAM (mlock). Default false. */
  readonly lock?: boolean;
  /**
   * Fault the whole shared region in when the channel is set up (MAP_POPULATE): no page fault on the data path
   * later, for about a millisecond of set-up per few MiB. false: pages fault in as the rings first reach them
   * (short-lived channels). Default true.
   */
  readonly populate?: boolean;
  /** How long close() waits for the peer to acknowledge before giving up, in ms. Default 5000. */
  readonly closeTimeout?: number;
}

/** Options of {@link connect}. */
export interface ConnectOptions extends ChannelOptions {
  /** Ring capacity to ask the server for (bytes per direction, a power of two); 0: the server's choice. Default 0. */
  readonly ringSize?: number;
  /** Give up if the handshake has not finished after this many ms. Default 5000. */
  readonly timeout?: number;
  /** An AbortSignal that cancels the connection attempt. */
  readonly signal?: AbortSignal;
}

/** Peer credentials from SO_PEERCRED. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** Options of {@link listen}. */
export interface ServerOptions extends ChannelOptions {
  /** Ring capacity per direction in bytes, a power of two from 4 KiB to 1 GiB. Default 1 MiB. */
  readonly ringSize?: number;
  /** Largest ring capacity a client may ask for. Default 64 MiB. */
  readonly maxRingSize?: number;
  /** Permissions of the socket file (ignored for abstract names). Default 0o600: only this user may connect. */
  readonly mode?: number;
  /** listen(2) backlog. Default 511. */
  readonly backlog?: number;
  /** Back regions with 2 MiB huge pages. Default false. */
  readonly hugePages?: boolean;
  /**
   * Decide whether a client may connect, from its credentials. Default: any client that could open the socket
   * file, or, for an abstract name (which has no permissions), only processes of this user (and root).
   */
  readonly authorize?: (peer: PeerCredentials) => boolean;
  /** Drop a client that has not finished the handshake after this many ms. Default 5000. */
  readonly handshakeTimeout?: number;
}

export interface ResolvedChannelOptions {
  maxMessageSize: number;
  spinMicros: number;
  yieldMicros: number;
  lock: boolean;
  populate: boolean;
  closeTimeout: number;
}

export const DEFAULT_RING_SIZE = 1 << 20;
export const DEFAULT_MAX_MESSAGE = 16 << 20;

function num(v: unknown, name: string, min: number, max: number, dflt: number, integer = true): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (Number.isNaN(v) || (integer && Number.isFinite(v) && !Number.isInteger(v))) throw outOfRange(name, integer ? 'an integer' : 'a number', v);
  if (v < min || v > max) throw outOfRange(name, `>= ${min} and <= ${max}`, v);
  return v;
}

function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgType(name, 'of type boolean', v);
  return v;
}

function obj(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'of type object', v);
  return v as Record<string, unknown>;
}

/** Check a ring size: a power of two within the layout's limits (0 allowed where `allowZero`). */
export function ringSize(v: unknown, name: string, dflt: number, allowZero = false): number {
  const n = num(v, name, allowZero ? 0 : MIN_CAPACITY, MAX_CAPACITY, dflt);
  if (n !== 0 && (n & (n - 1)) !== 0) throw invalidArgValue(name, n, 'must be a power of two');
  return n;
}

export function resolveChannelOptions(o: Record<string, unknown>): ResolvedChannelOptions {
  const idle = obj(o['idle'], 'options.idle');
  return {
    maxMessageSize: num(o['maxMessageSize'], 'options.maxMessageSize', 1, 0x7fffffff, DEFAULT_MAX_MESSAGE),
    spinMicros: num(idle['spinMicros'], 'options.idle.spinMicros', 0, 1_000_000, 20, false),
    yieldMicros: num(idle['yieldMicros'], 'options.idle.yieldMicros', 0, Infinity, 200, false),
    lock: bool(o['lock'], 'options.lock', false),
    populate: bool(o['populate'], 'options.populate', true),
    closeTimeout: num(o['closeTimeout'], 'options.closeTimeout', 0, 2 ** 31 - 1, 5000),
  };
}

export interface ResolvedServerOptions extends ResolvedChannelOptions {
  ringSize: number;
  maxRingSize: number;
  mode: number;
  backlog: number;
  hugePages: boolean;
  authorize: ((peer: PeerCredentials) => boolean) | undefined;
  handshakeTimeout: number;
}

export function resolveServerOptions(options: unknown): ResolvedServerOptions {
  const o = obj(options, 'options');
  const auth = o['authorize'];
  if (auth !== undefined && typeof auth !== 'function') throw invalidArgType('options.authorize', 'of type function', auth);
  return {
    ...resolveChannelOptions(o),
    ringSize: ringSize(o['ringSize'], 'options.ringSize', DEFAULT_RING_SIZE),
    maxRingSize: ringSize(o['maxRingSize'], 'options.maxRingSize', 64 << 20),
    mode: num(o['mode'], 'options.mode', 0, 0o777, 0o600),
    backlog: num(o['backlog'], 'options.backlog', 1, 65535, 511),
    hugePages: bool(o['hugePages'], 'options.hugePages', false),
    authorize: auth as ResolvedServerOptions['authorize'],
    handshakeTimeout: num(o['handshakeTimeout'], 'options.handshakeTimeout', 1, 2 ** 31 - 1, 5000),
  };
}

export interface ResolvedConnectOptions extends ResolvedChannelOptions {
  ringSize: number;
  timeout: number;
  signal: AbortSignal | undefined;
}

export function resolveConnectOptions(options: unknown): ResolvedConnectOptions {
  const o = obj(options, 'options');
  const signal = o['signal'];
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return {
    ...resolveChannelOptions(o),
    ringSize: ringSize(o['ringSize'], 'options.ringSize', 0, true),
    timeout: num(o['timeout'], 'options.timeout', 1, 2 ** 31 - 1, 5000),
    signal: signal as AbortSignal | undefined,
  };
}

/** A socket name: a file system path, or a Linux abstract name written with a leading NUL ('\0name'), as node:net does. */
export interface SocketName { name: string; abstract: boolean; display: string }

export function socketName(path: unknown): SocketName {
  if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  if (path.length === 0) throw invalidArgValue('path', path, 'must be a non-empty string');
  const abstract = path.charCodeAt(0) === 0;
  const name = abstract ? path.slice(1) : path;
  if (name.length === 0 || name.includes('\0')) throw invalidArgValue('path', path, 'must not contain NUL bytes (except a leading one for an abstract name)');
  if (Buffer.byteLength(name) > (abstract ? 106 : 107)) throw invalidArgValue('path', path, 'is too long for a Unix socket address (108 bytes)');
  return { name, abstract, display: abstract ? `@${name}` : name };
}
