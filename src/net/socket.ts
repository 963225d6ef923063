/**
 * kbypass/net's Socket: node:net's Socket (a subclass, so `instanceof net.Socket` holds and every TCP code
 * path is node's own), which can instead carry its bytes over a kbypass channel.
 *
 * Modes: 'idle' (not connected) → connect() → 'deciding' (a bypass endpoint is being tried) → 'bypass', or
 * 'tcp' (node's own code from there on: no endpoint, refused, not local, disabled). Sockets a bypass endpoint
 * accepts start in 'bypass'.
 *
 * In bypass mode the stream hooks (_read, _write, _writev, _final, _destroy) and the address and byte-count
 * accessors are this class's; everything else (the stream state machine, setTimeout, allowHalfOpen's
 * auto-end, 'end'/'finish'/'close' ordering) is node's, as for a TCP socket. Stream bytes travel as channel
 * messages; a zero-length message is FIN (hello.ts).
 */
import * as net from 'node:net';
import type { Channel } from '../channel/channel';
import { KbypassError } from '../errors';
import { trace } from './config';
import { tuneMallocOnce } from './malloc-tuning';
import { bypassTarget, openBypass, type AddressInfo, type Endpoints } from './open';

export type { AddressInfo } from './open';

/** node:net's Socket, as it was when kbypass loaded (the preload replaces `net.Socket` with this class). */
const NodeSocket: typeof net.Socket = net.Socket;

type Mode = 'idle' | 'deciding' | 'bypass' | 'tcp';


const EMPTY = Buffer.alloc(0);

const nodeNormalizeArgs = (net as unknown as { _normalizeArgs(a: unknown[]): [Record<string, unknown>, unknown] })._normalizeArgs;

/** One stream chunk as channel messages of at most the peer's maxMessageSize. */
function sendChunk(ch: Channel, b: Buffer): boolean {
  const max = ch.maxMessageSize;
  if (b.length === 0) return true; // an empty message is FIN: an empty write sends nothing, as over TCP
  if (b.length <= max) return ch.send(b);
  let ok = true;
  for (let off = 0; off < b.length; off += max) ok = ch.send(b, off, Math.min(max, b.length - off)) && ok;
  return ok;
}
/** Stream bytes a bypassed socket takes from its channel beyond what the program has read, before it pauses it. */
const READ_AHEAD_BYTES = 256 * 1024;

/** What node:net's Socket keeps that this class drives (long-standing internals; typed here once). */
interface NodeSocketSide {
  connecting: boolean;
  _host: string | null;
  _unrefTimer(): void;
  _server: { _connections: number; _emitCloseIfDrained?: () => void } | null;
}
function nodeSide(s: Socket): NodeSocketSide { return s as unknown as NodeSocketSide; }

/** @internal Hands an accepted channel to a new Socket (endpoint.ts). */
export const kAdopt = Symbol('kbypass.adopt');

function epipe(): Error {
  return new KbypassError('EPIPE', 'This socket has been ended by the other party');
}

function closedBeforeConnection(): Error {
  return new KbypassError('ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');
}

function econnreset(cause?: Error): Error {
  const e = new KbypassError('ECONNRESET', 'read ECONNRESET', cause ? { cause } : undefined);
  (e as { errno?: number }).errno = -104;
  (e as { syscall?: string }).syscall = 'read';
  return e;
}

export class Socket extends NodeSocket {
  #mode: Mode = 'idle';
  #channel: Channel | null = null;
  #local: AddressInfo | null = null;
  #remote: AddressInfo | null = null;
  #bytesRead = 0;
  #bytesWritten = 0;
  #finSent = false;
  #finReceived = false;
  #reset = false;
  #refed = true;
  #drainCb: ((e?: Error | null) => void) | null = null;
  /** Stream hooks called while deciding, run again once the mode is known; and their callbacks, failed if the
   *  socket is destroyed first. */
  #deferred: Array<() => void> = [];
  #deferredCbs: Array<(e?: Error | null) => void> = [];
  /** A channel that closed with bytes still in its ring (the peer's process went away): drained by _read. */
  #closedRx: Channel | null = null;
  #abort: (() => void) | null = null;

  /** True when this connection runs over kbypass (false over TCP, and before it is connected). */
  get bypassed(): boolean { return #mode in this && this.#mode === 'bypass'; }

  /**
   * Connect as node:net does (same arguments: options, port[, host], or path, and an optional 'connect'
   * listener). To a local address whose port has a kbypass endpoint, the connection goes over shared memory;
   * otherwise over TCP.
   */
  override connect(...args: unknown[]): this {
    const [options, cb] = normalizeConnectArgs(args);
    // A socket made by an old-style subclass (util.inherits + net.Socket.call) has none of our state: node's.
    if (!(#mode in this)) return super.connect(options as unknown as net.SocketConnectOpts, cb as () => void);
    // Connecting again (after 'close', or while connecting): node's own code, over TCP.
    if (this.#mode !== 'idle') {
      if (this.#mode === 'bypass' || this.#mode === 'deciding') this.#forget();
      this.#mode = 'tcp';
      return super.connect(options as unknown as net.SocketConnectOpts, cb as () => void);
    }
    const via = bypassTarget(options);
    if (typeof via === 'string') {
      this.#mode = 'tcp';
      if (via !== '') trace('connect %s:%s via tcp (%s)', options['host'] ?? 'localhost', options['port'], via);
      return super.connect(options as unknown as net.SocketConnectOpts, cb as () => void);
    }
    this.#mode = 'deciding';
    if (typeof cb === 'function') this.once('connect', cb as () => void);
    nodeSide(this).connecting = true;
    nodeSide(this)._host = via.host;
    const attempt = openBypass(via);
    this.#abort = attempt.abort;
    attempt.result.then((ep) => {
      this.#abort = null;
      if (this.destroyed || this.#mode !== 'deciding') { ep.channel.destroy(); return; }
      trace('connect %s:%d via kbypass', via.host, via.port);
      this.#adopt(ep);
      nodeSide(this).connecting = false;
      this.#runDeferred();
      this.emit('connect');
      this.emit('ready');
      if (!this.isPaused()) this.read(0);
    }, (err: Error & { code?: string }) => {
      this.#abort = null;
      if (this.destroyed || this.#mode !== 'deciding') return;
      trace('connect %s:%d via tcp (%s)', via.host, via.port,
        err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'no endpoint' : `${err.code ?? 'error'}: ${err.message}`);
      this.#mode = 'tcp';
      nodeSide(this).connecting = false;
      try {
        super.connect(options as unknown as net.SocketConnectOpts);
      } catch (e) {
        this.destroy(e as Error); // an option node:net refuses (it would have thrown from connect())
        return;
      }
      if (!this.#refed) super.unref();
      this.#runDeferred();
    });
    return this;
  }

  /** @internal A bypass endpoint accepted this connection. */
  [kAdopt](ep: Endpoints): void {
    this.#mode = 'bypass';
    this.#adopt(ep);
  }

  #adopt(ep: Endpoints): void {
    tuneMallocOnce();
    this.#mode = 'bypass';
    this.#channel = ep.channel;
    this.#local = ep.local;
    this.#remote = ep.remote;
    const ch = ep.channel;
    ch.pause(); // until the stream asks (_read), as a TCP handle starts reading on read(0)
    if (this.#refed) ch.ref(); else ch.unref(); // (the endpoint of an unref'd server handed it over unref'd)
    for (const m of ep.early) this.#onMessage(m); // what arrived behind the opening exchange
    ch.removeAllListeners('message'); // the opening exchange's listener; no event can come in between
    ch.on('message', this.#onMessage);
    ch.on('drain', this.#onDrain);
    ch.once('close', this.#onChannelClose);
    if (ch.state === 'closed') {
      // It closed before we listened (the peer went away as the exchange ended): its 'close' may be gone.
      ch.removeListener('close', this.#onChannelClose);
      process.nextTick(() => this.#onChannelClose(new KbypassError('ERR_KBYPASS_PEER_GONE', 'the peer went away as the connection opened')));
    }
  }

  /** Drop the per-connection state (a destroyed socket connecting again). */
  #forget(): void {
    this.#channel = null;
    this.#closedRx = null;
    this.#local = this.#remote = null;
    this.#finSent = this.#finReceived = this.#reset = false;
    this.#drainCb = null;
    this.#deferred = [];
    this.#deferredCbs = [];
  }

  #runDeferred(): void {
    const d = this.#deferred;
    this.#deferred = [];
    this.#deferredCbs = [];
    for (const f of d) f();
  }

  #onMessage = (data: Uint8Array): void => {
    if (this.destroyed) return; // the connection is gone: drop what still arrives
    if (data.length === 0) {
      this.#onFin();
      return;
    }
    // Read ahead past the stream's highWaterMark (as a kernel socket buffer does): pausing the channel at every
    // full buffer would cost a wake-up of the sender per message.
    if (!this.#deliver(data) && this.readableLength >= READ_AHEAD_BYTES) this.#channel?.pause();
  };

  /** Copy stream bytes out of ring memory (valid only now) into the stream; push()'s answer. */
  #deliver(data: Uint8Array): boolean {
    const b = Buffer.allocUnsafe(data.length);
    b.set(data);
    this.#bytesRead += data.length;
    nodeSide(this)._unrefTimer();
    return this.push(b);
  }

  /** The peer's FIN: end the readable side (read(0) too, as node:net does, so 'end' comes with no reader). */
  #onFin(): void {
    if (this.#finReceived) return;
    this.#finReceived = true;
    this.push(null);
    this.read(0);
  }

  #onDrain = (): void => {
    const cb = this.#drainCb;
    this.#drainCb = null;
    cb?.();
  };

  #onChannelClose = (err?: Error & { code?: string }): void => {
    const ch = this.#channel;
    this.#channel = null;
    ch?.removeListener('message', this.#onMessage);
    ch?.removeListener('drain', this.#onDrain);
    const cb = this.#drainCb;
    this.#drainCb = null;
    if (this.destroyed) { cb?.(epipe()); return; }
    if (err === undefined || err.code === 'ERR_KBYPASS_PEER_GONE') {
      // The peer closed its side, or its process went away: as the kernel does when a process exits, that is
      // FIN for the reader; a write still waiting, or a later one, is an error.
      if (cb !== null) { // a write was waiting for room: it never reached the peer
        cb?.(econnreset(err));
        this.destroy(econnreset(err));
        return;
      }
      // What the peer sent before it went may still be in the ring (a paused reader had stopped taking it):
      // hand it over as the reader asks, then FIN.
      this.#closedRx = ch;
      this.#pumpClosed();
      return;
    }
    this.destroy(err); // a corrupt ring or a failed close: the code says which
  };

  /** Move what is left in a closed channel's ring into the stream, while the stream wants more; then FIN. */
  #pumpClosed(): void {
    const ch = this.#closedRx;
    if (ch === null) return;
    let want = true;
    const take = (buf: Uint8Array, off: number, len: number): void => {
      if (len === 0) this.#onFin();
      else if (!this.#deliver(buf.subarray(off, off + len))) want = false;
    };
    while (want && !this.#finReceived && !this.destroyed) {
      if (ch.poll(take, 64) === 0) break;
    }
    if (this.#finReceived || this.destroyed || want) {
      this.#closedRx = null;
      this.#onFin();
    }
  }

  /** Send one chunk (_write: no array per write) or several as one batch (_writev). */
  #send(chunks: Buffer | ReadonlyArray<Buffer>, cb: (e?: Error | null) => void): void {
    const ch = this.#channel;
    if (ch === null || ch.state !== 'open') { cb(epipe()); return; }
    const batch = !Buffer.isBuffer(chunks);
    let ok = true;
    let n = 0;
    try {
      if (batch) {
        ch.cork();
        for (const b of chunks) { ok = sendChunk(ch, b) && ok; n += b.length; }
      } else {
        ok = sendChunk(ch, chunks);
        n = chunks.length;
      }
    } catch (e) {
      cb(e instanceof KbypassError && e.code === 'ERR_KBYPASS_CHANNEL_CLOSED' ? epipe() : e as Error);
      return;
    } finally {
      if (batch && ch.state === 'open') ch.uncork();
    }
    this.#bytesWritten += n;
    nodeSide(this)._unrefTimer();
    if (ok) cb();
    else this.#drainCb = cb;
  }

  override _read(n: number): void {
    switch (Socket.#modeOf(this)) {
      case 'bypass':
        if (this.#closedRx !== null) this.#pumpClosed();
        else this.#channel?.resume();
        return;
      case 'deciding': this.#deferred.push(() => this._read(n)); return;
      default: super._read(n);
    }
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    switch (Socket.#modeOf(this)) {
      case 'bypass': this.#send(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk, cb); return;
      case 'deciding': this.#deferred.push(() => this._write(chunk, encoding, cb)); this.#deferredCbs.push(cb); return;
      default: super._write(chunk, encoding, cb);
    }
  }

  override _writev(chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: (error?: Error | null) => void): void {
    switch (Socket.#modeOf(this)) {
      case 'bypass':
        this.#send(chunks.map((c) => typeof c.chunk === 'string' ? Buffer.from(c.chunk, c.encoding) : c.chunk), cb);
        return;
      case 'deciding': this.#deferred.push(() => this._writev(chunks, cb)); this.#deferredCbs.push(cb); return;
      default: (NodeSocket.prototype as unknown as { _writev: (c: unknown, cb: unknown) => void })._writev.call(this, chunks, cb);
    }
  }

  override _final(cb: (error?: Error | null) => void): void {
    switch (Socket.#modeOf(this)) {
      case 'bypass': {
        const ch = this.#channel;
        if (ch !== null && ch.state === 'open' && !this.#finSent) {
          this.#finSent = true;
          try { ch.send(EMPTY); } catch { /* closed meanwhile: FIN is moot */ }
        }
        cb();
        return;
      }
      case 'deciding': this.#deferred.push(() => this._final(cb)); this.#deferredCbs.push(cb); return;
      default: super._final(cb);
    }
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    const mode = Socket.#modeOf(this);
    if (mode !== 'bypass' && mode !== 'deciding') { super._destroy(error, cb); return; }
    nodeSide(this).connecting = false;
    this.setTimeout(0);
    if (this.#abort) { this.#abort(); this.#abort = null; }
    // Writes and end() waiting for the connection fail as node:net fails them.
    const waiting = this.#deferredCbs;
    this.#deferred = [];
    this.#deferredCbs = [];
    for (const wcb of waiting) wcb(closedBeforeConnection());
    this.#closedRx = null;
    const ch = this.#channel;
    if (ch !== null) {
      if (this.#reset) {
        ch.destroy(); // abortive: the peer sees ECONNRESET
      } else {
        // As close(2) on a TCP socket: FIN after what was written, then the channel closes once the peer is done.
        if (!this.#finSent && ch.state === 'open') { this.#finSent = true; try { ch.send(EMPTY); } catch { /* closing */ } }
        void ch.close();
      }
      ch.unref(); // a destroyed socket does not hold the process open
    }
    const drain = this.#drainCb;
    this.#drainCb = null;
    drain?.(error ?? epipe());
    cb(error);
    const hadError = error !== null && error !== undefined;
    process.nextTick(() => this.emit('close', hadError));
    const server = nodeSide(this)._server;
    if (server) {
      server._connections--;
      server._emitCloseIfDrained?.();
    }
  }

  override resetAndDestroy(): this {
    if (Socket.#modeOf(this) === 'bypass') {
      this.#reset = true;
      this.destroy();
      return this;
    }
    return super.resetAndDestroy();
  }

  override ref(): this {
    const mode = Socket.#modeOf(this);
    if (mode === 'bypass' || mode === 'deciding') {
      this.#refed = true;
      if (!this.destroyed) this.#channel?.ref(); // a destroyed socket's channel finishes closing unref'd
      return this;
    }
    if (#mode in this) this.#refed = true;
    return super.ref();
  }

  override unref(): this {
    const mode = Socket.#modeOf(this);
    if (mode === 'bypass' || mode === 'deciding') { this.#refed = false; this.#channel?.unref(); return this; }
    if (#mode in this) this.#refed = false;
    return super.unref();
  }

  /** @internal node:net's accessor for remoteAddress / remotePort / remoteFamily. */
  _getpeername(): Partial<AddressInfo> {
    if (Socket.#modeOf(this) === 'bypass') return this.#remote ?? {};
    return (NodeSocket.prototype as unknown as { _getpeername(): Partial<AddressInfo> })._getpeername.call(this);
  }

  /** @internal node:net's accessor for address() / localAddress / localPort / localFamily. */
  _getsockname(): Partial<AddressInfo> {
    if (Socket.#modeOf(this) === 'bypass') return this.#local ?? {};
    return (NodeSocket.prototype as unknown as { _getsockname(): Partial<AddressInfo> })._getsockname.call(this);
  }

  /** @internal */
  static bypassBytes(s: Socket, which: 'read' | 'written'): number | undefined {
    if (Socket.#modeOf(s) !== 'bypass') return undefined;
    return which === 'read' ? s.#bytesRead : s.#bytesWritten;
  }

  /** @internal */
  static bypassMode(s: Socket): Mode { return Socket.#modeOf(s); }

  /** The mode; 'tcp' for an object without our state (an old-style subclass: util.inherits + net.Socket.call). */
  static #modeOf(s: Socket): Mode { return #mode in s ? s.#mode : 'tcp'; }
}

// Accessors node:net defines on its prototype (TypeScript sees them as plain properties, so they are
// redefined here rather than overridden in the class body).
function nodeGetter(name: string): (this: unknown) => unknown {
  const d = Object.getOwnPropertyDescriptor(NodeSocket.prototype, name);
  if (!d?.get) throw new Error(`kbypass: node:net's Socket has no '${name}' accessor`);
  return d.get;
}
const getBytesRead = nodeGetter('bytesRead');
const getDispatched = nodeGetter('_bytesDispatched');
const getPending = nodeGetter('pending');
const getBufferSize = nodeGetter('bufferSize');
Object.defineProperties(Socket.prototype, {
  bytesRead: {
    configurable: true, enumerable: true,
    get(this: Socket) { return Socket.bypassBytes(this, 'read') ?? getBytesRead.call(this); },
  },
  _bytesDispatched: {
    configurable: true, enumerable: true,
    get(this: Socket) { return Socket.bypassBytes(this, 'written') ?? getDispatched.call(this); },
  },
  pending: {
    configurable: true,
    get(this: Socket) {
      const m = Socket.bypassMode(this);
      if (m === 'bypass') return this.connecting || this.destroyed;
      if (m === 'deciding') return true;
      return getPending.call(this);
    },
  },
  bufferSize: {
    configurable: true,
    get(this: Socket) { return Socket.bypassMode(this) === 'bypass' ? this.writableLength : getBufferSize.call(this); },
  },
});

/** node:net's own argument normalisation for connect: (options[, cb]), (port[, host][, cb]), (path[, cb]). */
export function normalizeConnectArgs(args: unknown[]): [Record<string, unknown>, unknown] {
  // Node's internal array form (net.connect hands socket.connect its normalized [options, cb]).
  const a0 = args[0];
  if (args.length === 1 && Array.isArray(a0) && a0.length === 2 && a0[0] !== null && typeof a0[0] === 'object') {
    return [a0[0] as Record<string, unknown>, a0[1] ?? undefined];
  }
  const [options, cb] = nodeNormalizeArgs(args);
  return [options, cb ?? undefined];
}
