/**
 * The listening end of the rendezvous: a Unix domain socket (a file, 0600 by default, or a Linux abstract name)
 * that accepts clients, checks who they are (SO_PEERCRED), and hands each a new shared region and doorbell.
 * Emits 'listening', 'channel' (a ready Channel), 'error' and 'close'; also async-iterable over channels.
 */
import { EventEmitter } from 'node:events';
import { lstatSync, unlinkSync } from 'node:fs';
import { KbypassError, SystemError } from '../errors';
import { native, WATCH_READABLE, type NativeBinding, type WatchHandle } from '../native/binding';
import { createRegion } from '../memory/region';
import { regionBytes, ringOffset, writeRegionHeader } from '../ring/layout';
import { Channel } from './channel';
import { encodeHandshake, HANDSHAKE_VERSION, KIND_HELLO, KIND_REJECT, KIND_WELCOME } from './handshake';
import { resolveServerOptions, socketName, type PeerCredentials, type ResolvedServerOptions, type ServerOptions, type SocketName } from './options';
import { closeAll, isEventfd, readHandshake } from './rendezvous';

export interface Server {
  on(event: 'channel', listener: (channel: Channel) => void): this;
  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  /** A client's set-up failed on this side (e.g. ENOMEM creating its region); the client was refused. */
  on(event: 'clientError', listener: (error: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'channel', listener: (channel: Channel) => void): this;
  once(event: 'listening' | 'close', listener: () => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** How long the server stops accepting after accept(2) fails (e.g. EMFILE). */
const ACCEPT_BACKOFF_MS = 100;

export class Server extends EventEmitter implements AsyncIterable<Channel> {
  readonly #n: NativeBinding;
  readonly #name: SocketName;
  readonly #opts: ResolvedServerOptions;
  #fd = -1;
  #watch: WatchHandle | null = null;
  #listening = false;
  #closed = false;
  #handshakes = new Map<{ cancel(): void }, number>();
  #channels = new Set<Channel>();

  /** @internal Use listen(). */
  constructor(path: string, options?: ServerOptions) {
    super();
    this.#name = socketName(path);
    this.#opts = resolveServerOptions(options);
    this.#n = native();
    try {
      this.#fd = this.#bind();
      this.#watch = this.#n.watch(this.#fd, WATCH_READABLE, () => this.#accept());
      this.#listening = true;
      process.nextTick(() => this.emit('listening'));
    } catch (e) {
      this.#closed = true;
      process.nextTick(() => this.emit('error', e));
    }
  }

  /** The address: the socket path, or '@name' for an abstract name. */
  address(): string { return this.#name.display; }
  get listening(): boolean { return this.#listening; }
  /** Channels accepted by this server that are not closed yet. */
  get connections(): number { return this.#channels.size; }

  /**
   * Stop accepting (the socket file is removed). Channels already made stay open. Resolves when the server is
   * closed; emits 'close'.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#listening = false;
      for (const [h, fd] of this.#handshakes) { h.cancel(); closeAll([fd]); }
      this.#handshakes.clear();
      if (this.#watch) { this.#n.watchStop(this.#watch); this.#watch = null; }
      if (this.#fd >= 0) { this.#n.close(this.#fd); this.#fd = -1; }
      if (!this.#name.abstract) {
        try { unlinkSync(this.#name.name); } catch { /* already removed */ }
      }
      process.nextTick(() => this.emit('close'));
    }
    return new Promise((resolve) => process.nextTick(resolve));
  }

  /** Let the process exit while only this server is open. */
  unref(): this { if (this.#watch) this.#n.watchRef(this.#watch, false); return this; }
  ref(): this { if (this.#watch) this.#n.watchRef(this.#watch, true); return this; }

  /** Iterate over accepted channels until the server closes (an 'error' is thrown). */
  async *[Symbol.asyncIterator](): AsyncIterator<Channel> {
    const queue: Channel[] = [];
    let wake: (() => void) | null = null;
    let failure: Error | null = null;
    const onChannel = (c: Channel) => { queue.push(c); wake?.(); };
    const onEnd = () => { wake?.(); };
    const onError = (e: Error) => { failure = e; wake?.(); };
    this.on('channel', onChannel).on('close', onEnd).on('error', onError);
    try {
      for (;;) {
        const c = queue.shift();
        if (c) { yield c; continue; }
        if (failure) throw failure;
        if (this.#closed) return;
        await new Promise<void>((r) => { wake = r; });
        wake = null;
      }
    } finally {
      this.off('channel', onChannel).off('close', onEnd).off('error', onError);
    }
  }

  #bind(): number {
    const { name, abstract } = this.#name;
    const o = this.#opts;
    try {
      return this.#n.unixListen(name, abstract, o.mode, o.backlog);
    } catch (e) {
      // A socket file left by a process that died: nobody answers on it, so take it over.
      if ((e as { code?: string }).code !== 'EADDRINUSE' || abstract || !isStaleSocket(name)) throw e;
      unlinkSync(name);
      return this.#n.unixListen(name, abstract, o.mode, o.backlog);
    }
  }

  #accept(): void {
    for (;;) {
      if (this.#closed) return;
      let fd: number;
      try {
        fd = this.#n.unixAccept(this.#fd);
      } catch (e) {
        // EMFILE, ENFILE, ENOMEM…: the pending client stays queued, so the socket stays readable. Pause
        // accepting for a moment instead of spinning, and report it to whoever listens (never an unhandled
        // 'error' that would take the process down).
        if (this.listenerCount('error') > 0) this.emit('error', e);
        this.#backOff();
        return;
      }
      if (fd < 0) return;
      this.#greet(fd);
    }
  }

  #backOff(): void {
    if (!this.#watch) return;
    this.#n.watchStop(this.#watch);
    this.#watch = null;
    const t = setTimeout(() => {
      if (!this.#closed && this.#fd >= 0) this.#watch = this.#n.watch(this.#fd, WATCH_READABLE, () => this.#accept());
    }, ACCEPT_BACKOFF_MS);
    t.unref();
  }

  #authorized(peer: PeerCredentials): boolean {
    if (this.#opts.authorize) return this.#opts.authorize(peer) === true;
    if (!this.#name.abstract) return true; // the socket file's permissions decided
    const me = process.getuid?.() ?? -1;
    return peer.uid === me || peer.uid === 0;
  }

  #reject(fd: number, code: string, errno: number): void {
    try { this.#n.sendFds(fd, encodeHandshake({ kind: KIND_REJECT, capacity: 0, maxMessage: 0, regionBytes: 0, errno, pid: process.pid, code }), []); } catch { /* gone */ }
    closeAll([fd]);
  }

  #greet(fd: number): void {
    let peer: PeerCredentials;
    try {
      const [pid, uid, gid] = this.#n.peerCred(fd);
      peer = { pid, uid, gid };
      if (!this.#authorized(peer)) { this.#reject(fd, 'EACCES', -13); return; }
    } catch (e) {
      this.#reject(fd, 'EACCES', -13);
      return;
    }
    const h = readHandshake(fd, this.#opts.handshakeTimeout, `handshake with pid ${peer.pid}`, (err, res) => {
      this.#handshakes.delete(h);
      if (err || !res) { closeAll([fd]); return; } // a client that fails its handshake is just dropped
      const { message: hello, fds } = res;
      if (hello.kind !== KIND_HELLO || hello.version !== HANDSHAKE_VERSION) {
        closeAll(fds);
        this.#reject(fd, hello.version !== HANDSHAKE_VERSION ? 'EPROTONOSUPPORT' : 'EPROTO', hello.version !== HANDSHAKE_VERSION ? -93 : -71);
        return;
      }
      const peerBell = fds[0] ?? -1;
      closeAll(fds.slice(1));
      if (peerBell < 0 || !isEventfd(peerBell) || hello.maxMessage < 1) {
        closeAll([peerBell]);
        this.#reject(fd, 'EPROTO', -71);
        return;
      }
      const cap = hello.capacity === 0 ? this.#opts.ringSize : hello.capacity;
      if ((cap & (cap - 1)) !== 0 || cap < 4096 || cap > this.#opts.maxRingSize) {
        closeAll([peerBell]);
        this.#reject(fd, 'EINVAL', -22);
        return;
      }
      this.#establish(fd, peer, peerBell, cap, hello.maxMessage);
    });
    this.#handshakes.set(h, fd);
  }

  #establish(fd: number, peer: PeerCredentials, peerBell: number, capacity: number, peerMax: number): void {
    const n = this.#n;
    let region: ReturnType<typeof createRegion> | null = null;
    let bell = -1;
    try {
      region = createRegion(regionBytes(capacity), { hugePages: this.#opts.hugePages, lock: this.#opts.lock, populate: this.#opts.populate, name: 'kbypass-channel' });
      writeRegionHeader(region.buffer, capacity, process.pid);
      bell = n.eventfd();
      const welcome = encodeHandshake({ kind: KIND_WELCOME, capacity, maxMessage: this.#opts.maxMessageSize, regionBytes: region.size, errno: 0, pid: process.pid, code: '' });
      if (n.sendFds(fd, welcome, [region.fd, bell]) !== welcome.length) throw new SystemError('EAGAIN', -11, 'sendmsg', 'the handshake answer did not fit in the socket');
    } catch (e) {
      closeAll([peerBell, bell, region?.fd ?? -1]);
      const code = (e as { code?: string }).code ?? 'EIO';
      this.#reject(fd, code.startsWith('E') ? code : 'EIO', (e as { errno?: number }).errno ?? -5);
      // One client's failed set-up (it was told, with REJECT) must not take the server down: like
      // http.Server's 'clientError', it is reported only to whoever listens for it.
      if (this.listenerCount('clientError') > 0) {
        this.emit('clientError', e instanceof Error ? e : new KbypassError('ERR_KBYPASS_HANDSHAKE', String(e)));
      }
      return;
    }
    closeAll([region.fd]);
    region.fd = -1;
    let channel: Channel;
    try {
      channel = new Channel({
        role: 'server', buffer: region.buffer, txOffset: ringOffset(capacity, 0), rxOffset: ringOffset(capacity, 1),
        capacity, socketFd: fd, ownDoorbell: bell, peerDoorbell: peerBell, peer, peerMaxMessage: peerMax, options: this.#opts,
      });
    } catch (e) {
      closeAll([fd, bell, peerBell]);
      if (this.listenerCount('clientError') > 0) this.emit('clientError', e);
      return;
    }
    this.#channels.add(channel);
    channel.once('close', () => this.#channels.delete(channel));
    this.emit('channel', channel);
  }
}

/** A socket file nobody listens on any more (connect is refused). */
function isStaleSocket(path: string): boolean {
  try {
    if (!lstatSync(path).isSocket()) return false;
    const fd = native().unixConnect(path, false);
    closeAll([fd]);
    return false;
  } catch (e) {
    return (e as { code?: string }).code === 'ECONNREFUSED';
  }
}

/**
 * Listen for channels on a Unix socket `path` (or '\0name' for a Linux abstract name). Returns the Server at
 * once; it emits 'listening', or 'error' (EADDRINUSE, EACCES, …).
 */
export function listen(path: string, options?: ServerOptions): Server {
  return new Server(path, options);
}
