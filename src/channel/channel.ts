/**
 * A channel: two rings in one shared region, one each way, between two processes on this host.
 *
 * Data path (TypeScript over shared memory, no system call per message): send / trySend / claim write records
 * into the outgoing ring; poll or the event-driven receiver walk the incoming ring in place. The only system
 * calls are doorbell rings, made when the other side has said it is parked.
 *
 * Lifecycle: 'open' → close() → 'closing' (pending sends are flushed, then the ring is marked closed and the
 * peer's doorbell rung) → 'closed' once both sides have closed, or at once when the peer goes away, the ring is
 * corrupt, or destroy() is called. 'close' is emitted once, with an Error when the end was not orderly.
 */
import { EventEmitter } from 'node:events';
import { KbypassError, invalidArgType, outOfRange } from '../errors';
import { native, WATCH_DISCONNECT, WATCH_READABLE, type NativeBinding, type WatchHandle } from '../native/binding';
import { RingConsumer, type MessageHandler } from '../ring/consumer';
import { RingProducer } from '../ring/producer';
import { FRAG_FIRST_PREFIX_BYTES, PARK_RECHECK_MS, recordBytes, TYPE_DATA } from '../ring/layout';
import { writeMessage } from '../ring/writer';
import { Claim, type ClaimOwner } from './claim';
import { channelClose, channelOpen, debug } from '../diagnostics';
import type { PeerCredentials, ResolvedChannelOptions } from './options';

/** @internal What the rendezvous hands a new channel. */
export interface ChannelInit {
  readonly role: 'server' | 'client';
  readonly buffer: ArrayBuffer;
  readonly txOffset: number;
  readonly rxOffset: number;
  readonly capacity: number;
  readonly socketFd: number;
  readonly ownDoorbell: number;
  readonly peerDoorbell: number;
  readonly peer: PeerCredentials;
  readonly peerMaxMessage: number;
  readonly options: ResolvedChannelOptions;
}

interface Pending { src: Uint8Array; offset: number; length: number; done: number }

/** How many empty polls in a row before poll() checks whether the peer is still there (one syscall). */
const LIVENESS_EVERY = 4096;
/** Messages handed to 'message' listeners per turn before the loop looks at the clock. */
const EVENT_BATCH = 256;

export type ChannelState = 'open' | 'closing' | 'closed';

export interface Channel {
  on(event: 'message', listener: (data: Uint8Array) => void): this;
  on(event: 'drain', listener: () => void): this;
  on(event: 'close', listener: (error?: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'message', listener: (data: Uint8Array) => void): this;
  once(event: 'drain', listener: () => void): this;
  once(event: 'close', listener: (error?: Error) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class Channel extends EventEmitter implements ClaimOwner, AsyncIterable<Uint8Array> {
  readonly #n: NativeBinding;
  readonly #tx: RingProducer;
  readonly #rx: RingConsumer;
  readonly #opts: ResolvedChannelOptions;
  readonly #peer: PeerCredentials;
  readonly #peerMax: number;
  readonly #role: 'server' | 'client';
  readonly #claim: Claim;
  #socketFd: number;
  #ownBell: number;
  #peerBell: number;
  #sockWatch: WatchHandle | null;
  #bellWatch: WatchHandle | null;
  #state: ChannelState = 'open';
  #txClosed = false;
  #rxReadable = true;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #needDrain = false;
  /** Payload bytes of the record the last failed send / trySend / claim was waiting room for. */
  #awaitBytes = 0;
  #listening = false;
  #paused = false;
  #idleSince = -1;
  #immediate: NodeJS.Immediate | null = null;
  /** The sender's look for room (see #waitForSpace), and when it began. */
  #spaceTurnTimer: NodeJS.Immediate | null = null;
  #spaceSince = 0;
  #emptyPolls = 0;
  #closeTimer: NodeJS.Timeout | null = null;
  #recheck: NodeJS.Timeout | null = null;
  #closeError: Error | undefined;
  #refed = true;
  /** Both sides closed in order while a paused listener still had messages to take (see #finish). */
  #finishDeferred = false;

  /** @internal Channels come from connect() and listen(). */
  constructor(init: ChannelInit) {
    super();
    this.#n = native();
    this.#opts = init.options;
    this.#peer = init.peer;
    this.#peerMax = init.peerMaxMessage;
    this.#role = init.role;
    this.#socketFd = init.socketFd;
    this.#ownBell = init.ownDoorbell;
    this.#peerBell = init.peerDoorbell;
    const wakePeer = () => this.#ringPeer();
    this.#tx = new RingProducer(init.buffer, init.txOffset, init.capacity, wakePeer);
    this.#rx = new RingConsumer(init.buffer, init.rxOffset, init.capacity, init.options.maxMessageSize, wakePeer);
    this.#tx.setSibling(this.#rx.bytes);
    this.#claim = new Claim(this, this.#tx.bytes);
    this.#bellWatch = this.#n.watch(this.#ownBell, WATCH_READABLE, () => this.#onDoorbell());
    try {
      this.#sockWatch = this.#n.watch(this.#socketFd, WATCH_READABLE | WATCH_DISCONNECT, (status) => this.#onSocket(status));
    } catch (e) {
      this.#n.watchStop(this.#bellWatch); // the caller closes the fds: no watcher may be left on them
      throw e;
    }
    debug('%s channel open: peer pid %d uid %d, ring %d bytes', init.role, init.peer.pid, init.peer.uid, init.capacity);
    if (channelOpen.hasSubscribers) channelOpen.publish({ channel: this, role: init.role, peer: init.peer, ringSize: init.capacity });
    this.on('newListener', this.#onNewListener);
    this.on('removeListener', this.#onRemoveListener);
  }

  /** The first 'message' listener starts event-driven delivery. */
  #onNewListener = (event: string | symbol): void => {
    if (event === 'message' && !this.#listening) {
      this.#listening = true;
      this.#schedule();
    }
  };

  /** The last 'message' listener gone: delivery stops (messages wait in the ring for poll() or a listener). */
  #onRemoveListener = (event: string | symbol): void => {
    if (event === 'message' && this.listenerCount('message') === 0) {
      this.#listening = false;
      this.#rx.unpark();
      if (this.#finishDeferred && this.#state !== 'closed') this.#finish();
    }
  };

  /**
   * As EventEmitter's, but the channel's own 'newListener' / 'removeListener' hooks stay: without them a
   * 'message' listener added afterwards would never be called.
   */
  override removeAllListeners(event?: string | symbol): this {
    if (event === undefined) super.removeAllListeners(); else super.removeAllListeners(event);
    if (!this.listeners('newListener').includes(this.#onNewListener)) super.on('newListener', this.#onNewListener);
    if (!this.listeners('removeListener').includes(this.#onRemoveListener)) super.on('removeListener', this.#onRemoveListener);
    return this;
  }

  /** 'open', 'closing' (close() called, waiting for the peer) or 'closed'. */
  get state(): ChannelState { return this.#state; }
  /** True once 'close' is due: nothing can be sent any more. */
  get closed(): boolean { return this.#state === 'closed'; }
  /** The peer process's credentials (SO_PEERCRED at connect time). */
  get peer(): PeerCredentials { return this.#peer; }
  /** Which end of the rendezvous this is. */
  get role(): 'server' | 'client' { return this.#role; }
  /** Ring capacity per direction, bytes. */
  get ringSize(): number { return this.#tx.capacity; }
  /** The largest message the peer accepts. */
  get maxMessageSize(): number { return this.#peerMax; }
  /** The largest claim (one record). */
  get maxClaimSize(): number { return Math.min(this.#tx.maxPayload, this.#peerMax); }
  /** Bytes accepted by send() and not yet in the ring. */
  get pendingBytes(): number { return this.#pendingBytes; }
  /** False when a send would be queued (the ring is full or a queue is waiting). */
  get writable(): boolean { return this.#state === 'open' && this.#pending.length === 0 && !this.#needDrain; }

  /**
   * Send a copy of `data` (a string is sent as UTF-8). Never drops and never blocks: returns true if the whole
   * message is in the ring, false if some of it waits in a queue for the peer to make room — then 'drain'
   * follows once the queue has gone out. Messages over maxMessageSize are refused with
   * ERR_KBYPASS_MESSAGE_TOO_LARGE; larger than one record, they are fragmented and reassembled transparently.
   */
  send(data: Uint8Array | string, offset?: number, length?: number): boolean {
    const src = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (!(src instanceof Uint8Array)) throw invalidArgType('data', 'an instance of Uint8Array or Buffer, or a string', data);
    const off = offset === undefined ? 0 : offset;
    const len = length === undefined ? src.length - off : length;
    if (!(off >= 0 && len >= 0 && off + len <= src.length && Number.isInteger(off) && Number.isInteger(len))) this.#checkRange(src, offset, length);
    this.#checkSend(len);
    if (this.#pending.length === 0) {
      const done = writeMessage(this.#tx, src, off, len, 0);
      if (done === len) return true;
      if (this.#checkTxFault()) return false; // closed now ('close' has the error): nothing to queue
      const from = done < 0 ? 0 : done;
      this.#enqueue(src.slice(off + from, off + len), -from, len, from);
    } else {
      this.#enqueue(src.slice(off, off + len), 0, len, 0);
    }
    this.#awaitSpace(len);
    return false;
  }

  /**
   * Send a copy of `data` only if it fits in the ring now: true if sent, false if not (nothing is queued; a
   * 'drain' follows when there is room). For busy-poll producers. Does not take strings.
   */
  trySend(data: Uint8Array, offset?: number, length?: number): boolean {
    // The busy-poll hot path: checks inline, no allocation.
    if (!(data instanceof Uint8Array)) throw invalidArgType('data', 'an instance of Uint8Array or Buffer', data);
    const size = data.length;
    const off = offset === undefined ? 0 : offset;
    const len = length === undefined ? size - off : length;
    if (!(off >= 0 && len >= 0 && off + len <= size && Number.isInteger(off) && Number.isInteger(len))) this.#checkRange(data, offset, length);
    if (this.#state !== 'open' || this.#claim.open || len > this.#peerMax) this.#checkSend(len);
    if (this.#pending.length !== 0) return false;
    const tx = this.#tx;
    if (len <= tx.maxPayload) {
      if (tx.offer(TYPE_DATA, data, off, len)) return true;
      this.#checkTxFault();
      this.#awaitSpace(len);
      return false;
    }
    // Fragmented: all or nothing, so only when the ring has room for every fragment and a padding record.
    const need = len + FRAG_FIRST_PREFIX_BYTES + 16 * tx.fragmentCount(len) + recordBytes(tx.maxPayload);
    if (need > tx.capacity) {
      throw new KbypassError('ERR_KBYPASS_MESSAGE_TOO_LARGE', `a ${len}-byte message can never fit whole in a ` +
        `${tx.capacity}-byte ring: use send(), which streams it in fragments, or a larger ringSize`);
    }
    if (tx.freeBytes() < need) {
      this.#checkTxFault();
      this.#awaitSpace(tx.maxPayload);
      return false;
    }
    writeMessage(tx, data, off, len, 0);
    return true;
  }

  /**
   * Claim room for a message of up to `length` bytes (≤ maxClaimSize) to write in place: returns the channel's
   * Claim (reused), or null when the ring has no room now ('drain' follows). Commit or abort it before any
   * other send.
   */
  claim(length: number): Claim | null {
    this.#checkOpen();
    if (this.#claim.open) throw new KbypassError('ERR_KBYPASS_CLAIM_PENDING', 'a claim is still open: commit() or abort() it first');
    if (typeof length !== 'number') throw invalidArgType('length', 'of type number', length);
    if (!Number.isInteger(length) || length < 0 || length > this.maxClaimSize) {
      throw outOfRange('length', `an integer from 0 to ${this.maxClaimSize} (maxClaimSize)`, length);
    }
    if (this.#pending.length !== 0) return null;
    const at = this.#tx.reserve(length);
    if (at < 0) { this.#checkTxFault(); this.#awaitSpace(length); return null; }
    return this.#claim.arm(at, length);
  }

  /** @internal Claim.commit */
  commitClaim(length: number): void {
    if (this.#state === 'closed') return;
    this.#tx.commit(TYPE_DATA, length);
  }

  /** @internal Claim.abort */
  abortClaim(): void { this.#tx.abort(); /* nothing was committed */ }

  /** Hold back publishing until uncork(): a batch of sends then costs one store and at most one doorbell. */
  cork(): void { this.#tx.cork(); }
  /** Publish what was sent since the matching cork(). */
  uncork(): void { this.#tx.uncork(); }

  /**
   * Busy-poll receive: hand up to `limit` (an integer >= 1, or Infinity; default 64) waiting messages to
   * `handler(buffer, offset, length)` and return how many. The bytes are ring memory, valid only during the
   * call: copy what you keep. Their space goes back to the sender when the call returns, and during a long call
   * every eighth of the ring (one call takes at most one ring's worth). Returns 0 when there is
   * nothing, inside a handler, and after 'close' once what the peer sent before it left has been read. It also
   * moves sends queued by send() into the ring, so a busy-poll loop needs no event-loop turn.
   */
  poll(handler: MessageHandler, limit = 64): number {
    if (typeof handler !== 'function') throw invalidArgType('handler', 'of type function', handler);
    if (!(limit >= 1 && (limit === (limit | 0) || limit === Infinity))) {
      if (typeof limit !== 'number') throw invalidArgType('limit', 'of type number', limit);
      if (!Number.isInteger(limit) || limit < 1) throw outOfRange('limit', 'an integer >= 1, or Infinity', limit);
    }
    // A busy-poll loop may keep the event loop from running: move queued sends along here too.
    if (this.#pending.length !== 0 && this.#state !== 'closed') this.#flush();
    if (!this.#rxReadable) return 0;
    const n = this.#rx.poll(handler, limit);
    if (n !== 0) { this.#emptyPolls = 0; return n; }
    if (this.#rx.fault !== null) { this.#onFault(); return 0; }
    if (++this.#emptyPolls >= LIVENESS_EVERY && this.#state !== 'closed') {
      this.#emptyPolls = 0;
      // The event loop may be blocked by a busy-poll loop: look at the peer's flags and socket ourselves.
      if (this.#rx.producerClosed()) this.#onPeerClosed();
      else if (!this.#n.peerAlive(this.#socketFd)) this.#onPeerGone();
    }
    return 0;
  }

  /** Stop emitting 'message' (the ring fills and the sender is held back) until resume(). */
  pause(): this { this.#paused = true; return this; }
  /** Emit 'message' again. */
  resume(): this { if (this.#paused) { this.#paused = false; this.#schedule(); } return this; }
  get isPaused(): boolean { return this.#paused; }

  /**
   * Orderly close: what was sent (including queued sends) is delivered (an open claim is aborted), the peer is
   * told, and the returned
   * promise resolves on 'close' — when both sides have closed, or when close fails (closeTimeout, peer gone).
   */
  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (this.#state === 'open') {
      if (this.#claim.open) this.#claim.abort(); // nothing may follow the closed flag
      this.#state = 'closing';
      if (this.#opts.closeTimeout > 0) {
        this.#closeTimer = setTimeout(() => {
          this.#teardown(new KbypassError('ERR_KBYPASS_CLOSE_TIMEOUT',
            `the peer did not close its side within ${this.#opts.closeTimeout} ms`), false);
        }, this.#opts.closeTimeout);
        if (!this.#refed) this.#closeTimer.unref();
      }
      this.#flush();
    }
    return done;
  }

  /** Abortive close: nothing more is sent or received (an open claim is dropped); the peer sees the channel go away. */
  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    this.#teardown(error, false);
  }

  /** Let the process exit while this channel is open (as socket.unref()). */
  unref(): this {
    this.#refed = false;
    if (this.#bellWatch) this.#n.watchRef(this.#bellWatch, false);
    if (this.#sockWatch) this.#n.watchRef(this.#sockWatch, false);
    this.#closeTimer?.unref();
    return this;
  }

  /** Keep the process alive while this channel is open (the default). */
  ref(): this {
    this.#refed = true;
    if (this.#bellWatch) this.#n.watchRef(this.#bellWatch, true);
    if (this.#sockWatch) this.#n.watchRef(this.#sockWatch, true);
    this.#closeTimer?.ref();
    return this;
  }

  /**
   * Iterate over incoming messages (each a copy). Ends when the channel closes in order; throws the error if
   * it did not. Holds the sender back (pause) while more than 1024 messages wait to be taken.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const queue: Uint8Array[] = [];
    let wake: (() => void) | null = null;
    let ended = false;
    let failure: Error | undefined;
    const onMessage = (m: Uint8Array) => {
      queue.push(m.slice());
      if (queue.length >= 1024) this.pause();
      wake?.();
    };
    const onClose = (err?: Error) => { ended = true; failure = err; wake?.(); };
    const cleanup = () => { this.off('message', onMessage); this.off('close', onClose); };
    this.on('message', onMessage);
    this.on('close', onClose);
    if (this.#state === 'closed') ended = true;
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          const m = queue.shift();
          if (m !== undefined) {
            if (queue.length < 256 && this.#paused) this.resume();
            return { value: m, done: false };
          }
          if (ended) {
            cleanup();
            if (failure) throw failure;
            return { value: undefined, done: true };
          }
          await new Promise<void>((r) => { wake = r; });
          wake = null;
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        cleanup();
        if (this.#paused) this.resume();
        return { value: undefined, done: true };
      },
    };
  }

  // ---- internals -------------------------------------------------------------------------------------------

  /** Throws the precise error for an offset/length pair that the inline fast check rejected. */
  #checkRange(src: Uint8Array, offset: number | undefined, length: number | undefined): void {
    if (offset !== undefined && typeof offset !== 'number') throw invalidArgType('offset', 'of type number', offset);
    if (length !== undefined && typeof length !== 'number') throw invalidArgType('length', 'of type number', length);
    const off = offset === undefined ? 0 : offset;
    if (!Number.isInteger(off) || off < 0 || off > src.length) throw outOfRange('offset', `an integer from 0 to ${src.length}`, offset);
    const len = length === undefined ? src.length - off : length;
    if (!Number.isInteger(len) || len < 0 || len > src.length - off) throw outOfRange('length', `an integer from 0 to ${src.length - off}`, length);
  }

  /** Throws if a message of `len` bytes cannot be sent at all (closed, claim open, too large). */
  #checkSend(len: number): void {
    if (this.#state !== 'open') this.#checkOpen();
    if (this.#claim.open) throw new KbypassError('ERR_KBYPASS_CLAIM_PENDING', 'a claim is still open: commit() or abort() it first');
    if (len > this.#peerMax) {
      throw new KbypassError('ERR_KBYPASS_MESSAGE_TOO_LARGE', `a ${len}-byte message is larger than the peer accepts (maxMessageSize ${this.#peerMax})`);
    }
  }

  #checkOpen(): void {
    if (this.#state !== 'open') {
      throw new KbypassError('ERR_KBYPASS_CHANNEL_CLOSED', this.#state === 'closing' ? 'the channel is closing' : 'the channel is closed');
    }
  }

  #enqueue(src: Uint8Array, offset: number, length: number, done: number): void {
    this.#pending.push({ src, offset, length, done });
    this.#pendingBytes += length - done;
  }

  /** The ring had no room for `bytes`: wait for the consumer to ring us, then flush and emit 'drain'. */
  #awaitSpace(bytes: number): void {
    if (this.#needDrain) return;
    this.#needDrain = true;
    this.#awaitBytes = Math.min(bytes, this.#tx.maxPayload);
    this.#waitForSpace();
  }

  /**
   * Wait for room in the outgoing ring: the consumer is usually draining it right now, so look once per
   * event-loop turn for yieldMicros (as the receiver does for data) and only then park on the doorbell — a
   * park costs the consumer a system call and us a wake-up for every ring's worth of a long stream.
   */
  #waitForSpace(): void {
    if (this.#spaceTurnTimer !== null) return;
    if (this.#opts.yieldMicros > 0) {
      this.#spaceSince = performance.now();
      this.#spaceTurnTimer = setImmediate(this.#spaceTurn);
      return;
    }
    this.#parkForSpace();
  }

  #parkForSpace(): void {
    if (this.#tx.parkForSpace(this.#wantedBytes())) { this.#scheduleFlush(); return; }
    // As #yieldOrPark: one more look on the next turn, in case the consumer's head was still in its store buffer.
    this.#spaceTurnTimer = setImmediate(this.#parkedSpaceLook);
    this.#armRecheck();
  }

  #parkedSpaceLook = (): void => {
    this.#spaceTurnTimer = null;
    if (this.#state === 'closed' || (!this.#needDrain && this.#pending.length === 0)) return;
    const want = this.#wantedBytes();
    if (this.#tx.hasRoomFor(want)) { this.#flush(); return; }
    // Still no room. The consumer may have cleared our flag and rung meanwhile (that wake-up found no room
    // either): make sure we are parked.
    if (this.#tx.parkForSpace(want)) this.#scheduleFlush();
  };

  #spaceTurn = (): void => {
    this.#spaceTurnTimer = null;
    if (this.#state === 'closed' || (!this.#needDrain && this.#pending.length === 0)) return;
    if (this.#tx.hasRoomFor(this.#wantedBytes())) { this.#flush(); return; }
    if (this.#tx.fault !== null) { this.#checkTxFault(); return; }
    if (performance.now() - this.#spaceSince < this.#opts.yieldMicros / 1000) this.#spaceTurnTimer = setImmediate(this.#spaceTurn);
    else this.#parkForSpace();
  };

  /**
   * After parking, look once more a moment later: the peer's last publish may have been in its store buffer
   * when it read our waiting flag (layout.ts, "Publishing"). One look per park, so an idle channel stays idle.
   */
  #armRecheck(): void {
    if (this.#recheck !== null || this.#state === 'closed') return;
    this.#recheck = setTimeout(() => {
      this.#recheck = null;
      if (this.#state === 'closed') return;
      // Only when there is room for what we wait for: else 'drain' would come while the ring is still full.
      // (Still parked otherwise: the flag stays set and the consumer rings us.)
      if ((this.#needDrain || this.#pending.length !== 0) && this.#tx.parkForSpace(this.#wantedBytes())) this.#flush();
      if (this.#active() && this.#rx.hasData()) this.#schedule();
    }, PARK_RECHECK_MS);
    this.#recheck.unref();
  }

  /** Payload bytes of the next record a flush must write: the head of the queue, else what a send awaited. */
  #wantedBytes(): number {
    const e = this.#pending[0];
    return e === undefined ? this.#awaitBytes : Math.min(e.length - e.done + 8, this.#tx.maxPayload);
  }

  #scheduleFlush(): void {
    setImmediate(() => this.#flush());
  }

  /** Write queued sends; then, if closing, mark our ring closed; emit 'drain' when the queue is empty. */
  #flush(): void {
    if (this.#state === 'closed') return;
    const q = this.#pending;
    while (q.length !== 0) {
      const e = q[0]!;
      const done = writeMessage(this.#tx, e.src, e.offset, e.length, e.done);
      if (done > 0) { this.#pendingBytes -= done - e.done; e.done = done; }
      if (e.done === e.length) { q.shift(); continue; }
      if (this.#checkTxFault()) return;
      if (!this.#tx.hasRoomFor(Math.min(e.length - e.done + 8, this.#tx.maxPayload))) { this.#waitForSpace(); return; }
    }
    if (this.#state === 'closing' && !this.#txClosed) {
      this.#tx.markClosed();
      this.#txClosed = true;
      this.#ringPeer();
      if (this.#rx.producerClosed()) this.#finish();
      return;
    }
    if (this.#needDrain && this.#state === 'open') {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  #ringPeer(): void {
    if (this.#peerBell >= 0) this.#n.eventfdSignal(this.#peerBell);
  }

  #active(): boolean {
    return this.#listening && !this.#paused && this.#rxReadable && this.#state !== 'closed';
  }

  /**
   * Make sure a #run comes on the next turn, in place of whatever turn was pending. A pending #parkedLook
   * polls only if it sees data: kept, it would leave a listener added right after the channel parked (and
   * unparked again by the last listener's removal) waiting for a doorbell nobody rings.
   */
  #schedule(): void {
    if (this.#state === 'closed') return;
    this.#takeTurn();
    this.#immediate = setImmediate(this.#run);
  }

  /** This turn is taken: drop whatever turn was pending (a no-op for the one running now). */
  #takeTurn(): void {
    if (this.#immediate !== null) { clearImmediate(this.#immediate); this.#immediate = null; }
  }

  /** Event-driven receive: dispatch, spin for spinMicros after the last message, yield, then park. */
  #run = (): void => {
    this.#takeTurn();
    if (!this.#active()) return;
    try {
      this.#spin();
    } catch (e) {
      this.#schedule(); // a listener threw: keep delivering on the next turn, then let the exception go on
      throw e;
    }
  };

  #spin(): void {
    const rx = this.#rx;
    const spinMs = this.#opts.spinMicros / 1000;
    rx.unpark();
    let idleSince = -1;
    let spins = 0;
    for (;;) {
      const n = rx.poll(this.#dispatch, EVENT_BATCH);
      if (rx.fault !== null) { this.#onFault(); return; }
      if (!this.#active()) return;
      if (n !== 0) { idleSince = -1; spins = 0; continue; }
      if (rx.producerClosed()) { if (!rx.hasData()) { this.#onPeerClosed(); return; } continue; }
      if ((++spins & 31) !== 0) continue;
      const now = performance.now();
      if (idleSince < 0) idleSince = now;
      if (now - idleSince >= spinMs) break;
    }
    this.#idleSince = idleSince;
    this.#yieldOrPark();
  }

  #yieldOrPark(): void {
    this.#takeTurn(); // a run scheduled by a listener during this turn's dispatch: the turn set here covers it
    const now = performance.now();
    if (now - this.#idleSince < (this.#opts.spinMicros + this.#opts.yieldMicros) / 1000) {
      this.#immediate = setImmediate(this.#yieldTurn);
      return;
    }
    if (this.#rx.park()) { this.#schedule(); return; } // data slipped in while parking
    // The peer's last commit may have sat in its store buffer when it read our flag (layout.ts, "Wake-ups"):
    // look once more on the next event-loop turn (the buffer has long drained by then), and, as a last resort,
    // a millisecond later.
    this.#immediate = setImmediate(this.#parkedLook);
    this.#armRecheck();
  }

  #parkedLook = (): void => {
    this.#takeTurn();
    if (this.#active() && (this.#rx.hasData() || this.#rx.producerClosed())) this.#run();
  };

  /** One poll per event-loop turn; back to spinning on the first message. */
  #yieldTurn = (): void => {
    this.#takeTurn();
    if (!this.#active()) return;
    let n: number;
    try {
      n = this.#rx.poll(this.#dispatch, EVENT_BATCH);
    } catch (e) {
      this.#schedule();
      throw e;
    }
    if (this.#rx.fault !== null) { this.#onFault(); return; }
    if (n !== 0) { this.#run(); return; }
    if (this.#rx.producerClosed() && !this.#rx.hasData()) { this.#onPeerClosed(); return; }
    this.#yieldOrPark();
  };

  #dispatch = (buffer: Uint8Array, offset: number, length: number): void => {
    this.emit('message', buffer.subarray(offset, offset + length));
  };

  #onDoorbell(): void {
    if (this.#state === 'closed') return;
    this.#n.eventfdDrain(this.#ownBell);
    // The doorbell also rings for incoming data: with nothing queued, 'drain' only once there is room for
    // what the failed trySend / claim waited for (else 'drain' would come while the ring is still full).
    if (this.#pending.length !== 0 || (this.#state === 'closing' && !this.#txClosed) ||
        (this.#needDrain && this.#tx.parkForSpace(this.#awaitBytes))) this.#flush();
    if (this.closed) return;
    if (this.#active()) { this.#run(); return; }
    if (this.#rx.producerClosed()) this.#onPeerClosed();
  }

  #onSocket(status: number): void {
    if (this.#state === 'closed') return;
    let alive = false;
    try {
      alive = status >= 0 && this.#n.peerAlive(this.#socketFd);
    } catch { /* an unexpected socket error: the peer is as good as gone */ }
    if (alive) {
      // Nothing is expected on the socket after the handshake: read and drop it (closing any fds).
      const scratch = new Uint8Array(256);
      const fds = new Int32Array(8);
      try {
        while (this.#n.recvFds(this.#socketFd, scratch, fds) > 0) fds.forEach((fd) => { if (fd >= 0) this.#n.close(fd); });
      } catch { /* the error shows up as EOF next time */ }
      return;
    }
    this.#onPeerGone();
  }

  /** The peer's process closed its end of the socket (exit, crash, kill -9, destroy, or the end of a close). */
  #onPeerGone(): void {
    if (this.#state === 'closed') return;
    if (this.#active()) while (this.#rx.poll(this.#dispatch, Infinity) !== 0);
    if (this.#rx.fault !== null) { this.#onFault(); return; }
    const peerClosed = this.#rx.producerClosed();
    if (peerClosed && this.#txClosed) { this.#finish(); return; }
    const unsent = this.#pendingBytes;
    const why = peerClosed
      ? `the peer (pid ${this.#peer.pid}) went away before taking what this side sent${unsent ? ` (${unsent} bytes unsent)` : ''}`
      : `the peer (pid ${this.#peer.pid}) went away without closing the channel (process exit, crash or destroy())`;
    this.#teardown(new KbypassError('ERR_KBYPASS_PEER_GONE', why), true);
  }

  /** The peer marked its ring closed: close our side too, then finish. */
  #onPeerClosed(): void {
    if (this.#state === 'open') { void this.close(); return; }
    if (this.#txClosed) this.#finish();
  }

  /** Both sides closed in order. */
  #finish(): void {
    if (this.#active()) while (this.#rx.poll(this.#dispatch, Infinity) !== 0);
    // A paused 'message' listener (an async iterator holding back) has not been handed everything yet: 'close'
    // waits for resume() (or for the listener to go). The peer closed in order, so its socket's EOF is expected.
    if (this.#listening && this.#paused && this.#rx.hasData()) {
      this.#finishDeferred = true;
      if (this.#sockWatch) { this.#n.watchStop(this.#sockWatch); this.#sockWatch = null; }
      return;
    }
    this.#teardown(undefined, true);
  }

  #checkTxFault(): boolean {
    if (this.#tx.fault === null) return false;
    this.#teardown(new KbypassError('ERR_KBYPASS_RING_CORRUPT', `outgoing ring: ${this.#tx.fault}`), false);
    return true;
  }

  #onFault(): void {
    const f = this.#rx.fault;
    if (f === null) return;
    this.#teardown(new KbypassError(f.code, `incoming ring: ${f.reason}`), false);
  }

  #teardown(error: Error | undefined, keepReadable: boolean): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeError = error;
    this.#rxReadable = keepReadable && this.#rx.fault === null;
    if (this.#closeTimer) { clearTimeout(this.#closeTimer); this.#closeTimer = null; }
    if (this.#recheck) { clearTimeout(this.#recheck); this.#recheck = null; }
    this.#takeTurn();
    if (this.#spaceTurnTimer) { clearImmediate(this.#spaceTurnTimer); this.#spaceTurnTimer = null; }
    const n = this.#n;
    if (this.#bellWatch) { n.watchStop(this.#bellWatch); this.#bellWatch = null; }
    if (this.#sockWatch) { n.watchStop(this.#sockWatch); this.#sockWatch = null; }
    for (const fd of [this.#socketFd, this.#ownBell, this.#peerBell]) if (fd >= 0) n.close(fd);
    this.#socketFd = this.#ownBell = this.#peerBell = -1;
    this.#pending = [];
    this.#pendingBytes = 0;
    debug('%s channel closed%s', this.#role, error ? `: ${(error as { code?: string }).code ?? ''} ${error.message}` : '');
    if (channelClose.hasSubscribers) channelClose.publish({ channel: this, error });
    process.nextTick(() => this.emit('close', this.#closeError));
  }
}
