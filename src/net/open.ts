/**
 * The client's side of opening a bypassed connection: decide whether to try (bypassTarget), then connect to
 * the port's endpoint and make the opening exchange (openBypass). Any failure means "use TCP".
 */
import { connect as channelConnect } from '../channel/connect';
import type { Channel } from '../channel/channel';
import type { IdleOptions } from '../channel/options';
import { KbypassError } from '../errors';
import { config, portAllowed } from './config';
import { decodeHello, encodeHello, HELLO_MAX, KIND_ACCEPT, KIND_HELLO, KIND_REFUSE, REFUSE_NAMES } from './hello';
import { endpointPath, localTarget } from './local';

/** How a bypassed connection's receiver waits: poll once per event-loop turn (never blocking the loop), then park. */
export const NET_IDLE: IdleOptions = { spinMicros: 0, yieldMicros: 500 };
/**
 * Ring capacity per direction of a bypassed connection (the counterpart of a TCP socket's buffers). Its pages
 * fault in as they are first used (no MAP_POPULATE): a short connection pays for the few it touches.
 */
export const NET_RING_SIZE = 2 << 20;
/** How long the opening exchange may take before the client gives up and uses TCP. */
export const OPEN_TIMEOUT_MS = 2000;
/** How long an orderly close waits for the peer's side (the socket is gone by then; this bounds the channel). */
export const CLOSE_TIMEOUT_MS = 30_000;

export interface AddressInfo { address: string; family: string; port: number }

export interface BypassTarget {
  /** The host as the program gave it. */
  readonly host: string;
  /** The address TCP would connect to. */
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

export interface Endpoints {
  readonly channel: Channel;
  readonly local: AddressInfo;
  readonly remote: AddressInfo;
  /** Messages that arrived right behind the opening exchange (stream bytes, or FIN as an empty one). */
  readonly early: Buffer[];
}

/**
 * Should connect(options) try a bypass endpoint? The target, or why not: '' for a connection that is not TCP
 * (a pipe path, or a port node:net will reject itself), else a reason for the debug log.
 */
export function bypassTarget(options: Record<string, unknown>): BypassTarget | string {
  if (options['path']) return ''; // node:net: a truthy path is a pipe (http's Agent passes path: null)
  const rawPort = options['port'];
  const port = typeof rawPort === 'number' ? rawPort : typeof rawPort === 'string' && rawPort.trim() !== '' ? Number(rawPort) : NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return '';
  if (!config().enabled) return 'KBYPASS is off';
  if (!portAllowed(port)) return 'port not in KBYPASS_PORTS';
  // The program wants a particular source address or port, or its own name resolution: only TCP does that.
  if (options['localAddress'] != null || options['localPort'] != null) return 'localAddress/localPort given'; // (undici passes null)
  if (options['lookup'] != null) return 'custom lookup';
  const host = options['host'] === undefined || options['host'] === null ? 'localhost' : options['host'];
  if (typeof host !== 'string') return '';
  const t = localTarget(host);
  if (t === null) return 'not a local address';
  return { host, address: t.address, family: t.family, port };
}

let portSeq = 0;
/**
 * The number a bypassed client reports as its localPort: from the ephemeral range (32768-60999), varied by
 * process and connection. No TCP port is bound for it (see docs/NET.md).
 */
function clientPort(): number {
  portSeq = (portSeq + 1) % 28232;
  return 32768 + ((process.pid * 7919 + portSeq) % 28232);
}

/** Wait for a channel's first message, keeping any that follow it in the same delivery (in `rest`). */
export function firstMessage(ch: Channel, timeoutMs: number, rest: Buffer[], signal?: AbortSignal): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let first: Buffer | null = null;
    const done = (e: Error | null): void => {
      clearTimeout(timer);
      ch.removeListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (e) { ch.removeListener('message', onMessage); reject(e); } else resolve(first!);
    };
    // Stays attached (taking what follows into `rest`) until the socket replaces it, in the same tick.
    const onMessage = (m: Uint8Array): void => {
      if (first === null) { first = Buffer.from(m); done(null); } else rest.push(Buffer.from(m));
    };
    const onClose = (e?: Error): void => done(e ?? new KbypassError('ECONNRESET', 'the endpoint closed the channel during the opening exchange'));
    const onAbort = (): void => done(new KbypassError('ABORT_ERR', 'The operation was aborted'));
    const timer = setTimeout(() => done(new KbypassError('ETIMEDOUT', `no opening reply within ${timeoutMs} ms`)), timeoutMs);
    ch.on('message', onMessage);
    ch.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Connect to `t.port`'s endpoint and make the opening exchange. Rejects (→ TCP) on any failure. */
export function openBypass(t: BypassTarget): { result: Promise<Endpoints>; abort: () => void } {
  const ac = new AbortController();
  const result = (async (): Promise<Endpoints> => {
    const channel = await channelConnect(endpointPath(t.port), { timeout: OPEN_TIMEOUT_MS, signal: ac.signal, idle: NET_IDLE, closeTimeout: CLOSE_TIMEOUT_MS, populate: false });
    try {
      // Abstract socket names carry no permissions: anyone may bind one first. Only an endpoint run by this
      // user (or root) may stand for a TCP port here; another user's would read what we send.
      const me = process.getuid?.() ?? -1;
      if (channel.peer.uid !== me && channel.peer.uid !== 0) {
        throw new KbypassError('ERR_KBYPASS_REFUSED', `the endpoint belongs to uid ${channel.peer.uid}, not to this user`);
      }
      if (channel.maxMessageSize < HELLO_MAX) throw new KbypassError('ERR_KBYPASS_HANDSHAKE', 'the endpoint takes messages too small for the opening exchange');
      const srcAddress = t.family === 4 && t.address.startsWith('127.') ? '127.0.0.1' : t.address;
      const srcPort = clientPort();
      const early: Buffer[] = [];
      const reply = firstMessage(channel, OPEN_TIMEOUT_MS, early, ac.signal);
      reply.catch(() => { /* awaited below; a send that throws first leaves it to be rejected by the close */ });
      channel.send(encodeHello({ kind: KIND_HELLO, family: t.family, reason: 0, dstAddress: t.address, dstPort: t.port, srcAddress, srcPort }));
      const h = decodeHello(await reply);
      if (h === null || h.kind === KIND_HELLO) throw new KbypassError('ERR_KBYPASS_HANDSHAKE', 'the endpoint answered with a malformed opening message');
      if (h.kind === KIND_REFUSE) throw new KbypassError('ERR_KBYPASS_REFUSED', `refused: ${REFUSE_NAMES[h.reason] ?? `reason ${h.reason}`}`);
      if (h.kind !== KIND_ACCEPT) throw new KbypassError('ERR_KBYPASS_HANDSHAKE', `unexpected opening message kind ${h.kind}`);
      const family = t.family === 4 ? 'IPv4' : 'IPv6';
      return {
        channel,
        local: { address: srcAddress, family, port: srcPort },
        remote: { address: t.address, family, port: t.port },
        early,
      };
    } catch (e) {
      channel.destroy();
      throw e;
    }
  })();
  return { result, abort: () => ac.abort() };
}
