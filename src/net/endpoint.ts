/**
 * The server's side: while a net.Server listens on a TCP port, a kbypass endpoint for that port (a channel
 * server on an abstract Unix socket, local.ts) takes bypassed connections, checks each one's opening message
 * against the listener as the kernel would, and hands the server a Socket — counted in its connections,
 * bound by maxConnections, emitted as 'connection' like an accepted TCP socket.
 */
import type * as net from 'node:net';
import { listen as channelListen, type Server as ChannelServer } from '../channel/server';
import type { Channel } from '../channel/channel';
import { config, portAllowed, trace } from './config';
import {
  decodeHello, encodeHello, helloVersion, HELLO_VERSION, KIND_ACCEPT, KIND_HELLO, KIND_REFUSE,
  REFUSE_ADDRESS, REFUSE_FULL, REFUSE_NOT_LISTENING, REFUSE_VERSION, type Hello,
} from './hello';
import { endpointPath, listenerCovers } from './local';
import { CLOSE_TIMEOUT_MS, firstMessage, NET_IDLE, NET_RING_SIZE, OPEN_TIMEOUT_MS } from './open';
import { kAdopt, Socket } from './socket';

/** What node:net's Server keeps that accepting needs (documented fields and long-standing internals). */
interface NodeServerInternals {
  _connections: number;
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  maxConnections?: number;
  listening: boolean;
}

interface Published {
  readonly endpoint: ChannelServer;
  readonly port: number;
  readonly address: string;
  /** The listener's family ('IPv4' or 'IPv6'), as address() says. */
  readonly family: string;
  refed: boolean;
}

const published = new WeakMap<net.Server, Published>();
const hooked = new WeakSet<net.Server>();

/** Is a kbypass endpoint published for this server now? */
export function endpointOf(server: net.Server): { port: number; address: string } | null {
  const p = published.get(server);
  return p ? { port: p.port, address: p.address } : null;
}

/** Publish an endpoint whenever `server` starts listening on a TCP port (once per server). */
export function hookServer(server: net.Server): void {
  if (hooked.has(server)) return;
  hooked.add(server);
  // Before any 'listening' listener of the program's: a client it starts from there must find the endpoint.
  server.prependListener('listening', () => publish(server));
}

function publish(server: net.Server): void {
  unpublish(server);
  const a = server.address();
  if (a === null || typeof a !== 'object') return; // a pipe: nothing to bypass
  if (!config().enabled) return;
  if (!portAllowed(a.port)) { trace('listen %d not published (port not in KBYPASS_PORTS)', a.port); return; }
  let endpoint: ChannelServer;
  try {
    endpoint = channelListen(endpointPath(a.port), { idle: NET_IDLE, closeTimeout: CLOSE_TIMEOUT_MS, ringSize: NET_RING_SIZE, populate: false });
  } catch (e) {
    trace('listen %d endpoint not published (%s)', a.port, (e as Error).message);
    return;
  }
  const p: Published = { endpoint, port: a.port, address: a.address, family: a.family, refed: true };
  published.set(server, p);
  endpoint.on('error', (e: Error & { code?: string }) => {
    // EADDRINUSE: another listener of this host has the port's endpoint (say, the other address family).
    trace('listen %d endpoint not published (%s)', a.port, e.code ?? e.message);
    if (published.get(server) === p) published.delete(server);
  });
  endpoint.on('listening', () => trace('listen %d endpoint published', a.port));
  endpoint.on('clientError', (e: Error & { code?: string }) => trace('endpoint %d: client failed (%s)', a.port, e.code ?? e.message));
  endpoint.on('channel', (ch: Channel) => accept(server, p, ch));
  if (serverUnrefed.has(server)) {
    endpoint.unref();
    p.refed = false;
  }
}

/** Stop taking bypassed connections (server.close()); open ones carry on. */
export function unpublish(server: net.Server): void {
  const p = published.get(server);
  if (!p) return;
  published.delete(server);
  void p.endpoint.close();
}

const serverUnrefed = new WeakSet<net.Server>();

/** server.ref() / unref(): the endpoint follows. */
export function refServer(server: net.Server, ref: boolean): void {
  if (ref) serverUnrefed.delete(server); else serverUnrefed.add(server);
  const p = published.get(server);
  if (!p) return;
  p.refed = ref;
  if (ref) p.endpoint.ref(); else p.endpoint.unref();
}

function refuse(ch: Channel, hello: Hello | null, reason: number): void {
  try {
    ch.send(encodeHello({
      kind: KIND_REFUSE, family: hello?.family ?? 4, reason,
      dstAddress: '', dstPort: hello?.dstPort ?? 0, srcAddress: '', srcPort: hello?.srcPort ?? 0,
    }));
  } catch { /* closed meanwhile */ }
  void ch.close();
  ch.unref();
}

function accept(server: net.Server, p: Published, ch: Channel): void {
  if (!p.refed) ch.unref();
  const early: Buffer[] = [];
  firstMessage(ch, OPEN_TIMEOUT_MS, early).then((m) => {
    // The client may have gone already (it sent HELLO and closed): nothing to accept.
    if (ch.state !== 'open') { ch.destroy(); return; }
    const s = server as unknown as NodeServerInternals;
    const hello = decodeHello(m);
    if (hello === null || hello.kind !== KIND_HELLO) {
      if (helloVersion(m) > HELLO_VERSION) { refuse(ch, null, REFUSE_VERSION); return; }
      trace('endpoint %d: malformed opening message, channel dropped', p.port);
      ch.destroy();
      return;
    }
    if (published.get(server) !== p || !s.listening) { refuse(ch, hello, REFUSE_NOT_LISTENING); return; }
    if (hello.dstPort !== p.port || !listenerCovers(p.address, hello.dstAddress, hello.family)) { refuse(ch, hello, REFUSE_ADDRESS); return; }
    // TCP accepts and then drops (with 'drop'): refusing sends the client to TCP, where exactly that happens.
    if (s.maxConnections !== undefined && s.maxConnections !== null && s._connections >= s.maxConnections) { refuse(ch, hello, REFUSE_FULL); return; }
    try {
      ch.send(encodeHello({ ...hello, kind: KIND_ACCEPT }));
    } catch {
      ch.destroy(); // closed between the check above and here
      return;
    }
    // A dual-stack listener (bound to ::) sees an IPv4 client as an IPv4-mapped IPv6 address, as TCP shows it.
    const mapped = hello.family === 4 && p.family === 'IPv6';
    const family = hello.family === 4 && !mapped ? 'IPv4' : 'IPv6';
    const shown = (a: string): string => mapped ? `::ffff:${a}` : a;
    const socket = new Socket({ allowHalfOpen: Boolean(s.allowHalfOpen) });
    socket[kAdopt]({
      channel: ch,
      local: { address: shown(hello.dstAddress), family, port: hello.dstPort },
      remote: { address: shown(hello.srcAddress), family, port: hello.srcPort },
      early,
    });
    const sk = socket as unknown as { server: net.Server; _server: net.Server };
    sk.server = server;
    sk._server = server;
    s._connections++;
    trace('accept %s:%d on %d via kbypass', shown(hello.srcAddress), hello.srcPort, p.port);
    if (s.pauseOnConnect) socket.pause();
    server.emit('connection', socket);
    if (!s.pauseOnConnect && !socket.isPaused()) socket.read(0);
  }, () => { ch.destroy(); }).catch((e: Error & { code?: string }) => {
    // A 'connection' listener of the program threw: as node:net does, that is the program's exception.
    process.nextTick(() => { throw e; });
  });
}
