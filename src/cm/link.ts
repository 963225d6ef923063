/**
 * One connection-manager socket: 256-byte messages (wire.ts) with the fds that came beside them, read on the
 * event loop or pulled synchronously (`pump`, used when a peer's requester needs a region the peer registered
 * after connecting). EOF or a socket error ends the link once.
 *
 * Nothing the peer sends can throw out of here: a handler that throws (a bad region id, an unsealed fd…) ends
 * the link with an ERR_KBYPASS_PROTOCOL error, which its end handler reports. A synchronous pump runs inside a
 * data-path call (postSend), so there it dispatches MR_ADD only; any other message, the end of the stream, or a
 * failing handler is handled on the next tick (process.nextTick), in order, never re-entrantly.
 */
import { KbypassError } from '../errors';
import { native, WATCH_DISCONNECT, WATCH_READABLE, type WatchHandle } from '../native/binding';
import { closeAll } from '../channel/rendezvous';
import { CM_MESSAGE_BYTES, CmType, decodeCm, encodeCm, type CmMessage } from './wire';

export type LinkHandler = (m: CmMessage, fds: number[]) => void;

/** An ERR_KBYPASS_PROTOCOL error for what a peer did (keeps such an error as it is). */
export function protocolError(e: unknown, what = 'the peer sent a bad connection-manager message'): KbypassError {
  if (e instanceof KbypassError && e.code === 'ERR_KBYPASS_PROTOCOL') return e;
  if (typeof e === 'string') return new KbypassError('ERR_KBYPASS_PROTOCOL', e);
  return new KbypassError('ERR_KBYPASS_PROTOCOL', `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** What a synchronous pump left for the next tick: a message to dispatch, or the end of the link. */
type Deferred = { m: CmMessage; fds: number[] } | { end: Error | null };

export class CmLink {
  readonly fd: number;
  #onMessage: LinkHandler;
  #onEnd: (err: Error | null) => void;
  readonly #buf = new Uint8Array(CM_MESSAGE_BYTES);
  readonly #slots = new Int32Array(16);
  #got = 0;
  #fds: number[] = [];
  #watch: WatchHandle | null = null;
  #ended = false;
  /** No more sends: a short write left the stream unusable, or the link is being aborted. */
  #broken = false;
  #deferred: Deferred | null = null;

  constructor(fd: number, onMessage: LinkHandler, onEnd: (err: Error | null) => void) {
    this.fd = fd;
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    this.#watch = native().watch(fd, WATCH_READABLE | WATCH_DISCONNECT, () => this.#read(false));
  }

  get ended(): boolean { return this.#ended; }

  /** Replace the handlers (a link changes hands from the handshake to the connection). */
  handlers(onMessage: LinkHandler, onEnd: (err: Error | null) => void): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
  }

  /** Keep the event loop alive for this link or not. */
  ref(on: boolean): void { if (this.#watch !== null) native().watchRef(this.#watch, on); }

  /**
   * Pull the messages available now, synchronously (never blocks): MR_ADDs are handled at once, anything else
   * (and the end of the link) on the next tick.
   */
  pump(): void { this.#read(true); }

  #read(sync: boolean): void {
    if (this.#deferred !== null) {
      // Keep the order: nothing is read past a deferred event until it was handled.
      if (sync) return;
      this.#runDeferred();
    }
    const n = native();
    while (!this.#ended) {
      let r: number;
      try {
        this.#slots.fill(-1);
        r = n.recvFds(this.fd, this.#buf.subarray(this.#got), this.#slots);
        for (const f of this.#slots) if (f >= 0) this.#fds.push(f);
      } catch (e) {
        this.#finish(sync, e as Error);
        return;
      }
      if (r < 0) return;
      if (r === 0) { this.#finish(sync, null); return; }
      this.#got += r;
      if (this.#got < CM_MESSAGE_BYTES) continue;
      this.#got = 0;
      const m = decodeCm(this.#buf);
      const fds = this.#fds;
      this.#fds = [];
      if (typeof m === 'string') { closeAll(fds); this.#finish(sync, protocolError(m)); return; }
      if (sync && m.type !== CmType.MR_ADD) { this.#defer({ m, fds }); return; }
      if (!this.#dispatch(m, fds, sync)) return;
    }
  }

  /** Run the handler; a throw ends the link with ERR_KBYPASS_PROTOCOL. False when reading must stop. */
  #dispatch(m: CmMessage, fds: number[], sync: boolean): boolean {
    try {
      // The handler owns the fds from here (it closes those it does not keep, also when it throws).
      this.#onMessage(m, fds);
      return true;
    } catch (e) {
      this.#finish(sync, protocolError(e));
      return false;
    }
  }

  #finish(sync: boolean, err: Error | null): void {
    if (sync) this.#defer({ end: err }); else this.end(err);
  }

  #defer(d: Deferred): void {
    this.#deferred = d;
    process.nextTick(() => {
      if (this.#deferred !== d) return;
      this.#runDeferred();
      this.#read(false);
    });
  }

  #runDeferred(): void {
    const d = this.#deferred;
    this.#deferred = null;
    if (d === null || this.#ended) { if (d !== null && 'fds' in d) closeAll(d.fds); return; }
    if ('end' in d) this.end(d.end); else this.#dispatch(d.m, d.fds, false);
  }

  /** Send one message with fds. A short write (EAGAIN: the peer is not reading) makes the link unusable. */
  send(m: Partial<CmMessage> & { type: number }, fds: number[] = []): void {
    if (this.#ended || this.#broken) throw new KbypassError('ENOTCONN', 'the connection is closed');
    const r = native().sendFds(this.fd, encodeCm(m), fds);
    if (r !== CM_MESSAGE_BYTES) {
      // Nothing (-1) or part of the message went: either way the stream can no longer be trusted.
      this.#broken = true;
      throw new KbypassError('EAGAIN', 'the connection-manager socket is full (the peer is not reading it)');
    }
  }

  /**
   * End the link with `err` on the next tick (from a context that must not run the end handler now, e.g. the
   * user's registerMemory); sends fail from now on. The first error wins.
   */
  abort(err: Error): void {
    if (this.#ended) return;
    this.#broken = true;
    const d = this.#deferred;
    if (d !== null && 'end' in d) return;
    if (d !== null) closeAll(d.fds);
    this.#defer({ end: err });
  }

  /** End the link: stop watching, close the socket and any fds not handed over; report once. */
  end(err: Error | null): void {
    if (this.#ended) return;
    this.#ended = true;
    const n = native();
    if (this.#watch !== null) { n.watchStop(this.#watch); this.#watch = null; }
    const d = this.#deferred;
    this.#deferred = null;
    if (d !== null && 'fds' in d) closeAll(d.fds);
    closeAll(this.#fds);
    this.#fds = [];
    try { n.close(this.fd); } catch { /* gone */ }
    this.#onEnd(err);
  }
}
