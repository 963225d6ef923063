/**
 * What every port has, whatever the rings under it: the data-path signatures, statistics, and the event-loop
 * integration (the socket's fd watched by libuv while idle, or a busy-poll loop), plus orderly close.
 *
 * Data path (never throws on its own, returns counts):
 *   port.receive(handler, maxBatch)   handler(bytes, offset, length) for up to maxBatch frames; returns how many
 *   port.transmit(fill, maxBatch)     fill(bytes, offset, capacity) → frame length (0: stop); returns how many
 * Within a handler, `port.hold()` keeps the current frame (its bytes stay valid) until `port.release(token)`.
 * Frame by frame instead of a filler: port.claim() → write at the offset → port.commit(length) (or abort()),
 * then one port.flush() per batch.
 */
import { EventEmitter } from 'node:events';
import { KbypassError, invalidArgType, outOfRange } from '../errors';
import { WATCH_READABLE, native, type WatchHandle } from '../native/binding';
import { StatsPublisher, type PortIdentity } from './stats-file';

/** Called for each received frame: its bytes are `bytes[offset, offset + length)`, valid during the call only
 *  (unless held with `port.hold()`). */
export type FrameHandler = (bytes: Uint8Array, offset: number, length: number) => void;
/** Called for each frame to send: write it at `bytes[offset, offset + capacity)` and return its length; 0 stops
 *  the batch (the slot is not used). */
export type FrameFiller = (bytes: Uint8Array, offset: number, capacity: number) => number;

/** Counters of one port. Library counters count what passed through this port; kernel counters are the
 *  socket's own (XDP_STATISTICS, PACKET_STATISTICS), accumulated since the port opened. */
export interface PortStats {
  /** Frames handed to a receive handler, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Frames given to the kernel to send, those it has reported sent (completed), and their bytes. */
  txSubmitted: number;
  txCompleted: number;
  txBytes: number;
  /** Frames held by the application right now. */
  held: number;
  /** Frames the kernel dropped on the way to this port, by reason (names as the kernel's counters). */
  drops: Record<string, number>;
  /** Every kernel counter of the socket, by name. */
  kernel: Record<string, number>;
}

/** Options of {@link PortBase.start}. */
export interface StartOptions {
  /** Frames per receive() call. Default 64. */
  readonly maxBatch?: number;
  /** Poll on every event-loop turn instead of sleeping on the fd (lower latency, one core at 100%). Default false. */
  readonly busyPoll?: boolean;
}

/** Ports dropped without close(): their sockets (and XDP program) are released when they are collected. */
const leakGuard = new FinalizationRegistry<() => void>((release) => { try { release(); } catch { /* best effort */ } });

/** Checks shared by receive() and transmit(): a function and a batch size. Throws Node's codes. */
function checkBatch(fn: unknown, name: string, maxBatch: unknown): void {
  if (typeof fn !== 'function') throw invalidArgType(name, 'of type function', fn);
  if (typeof maxBatch !== 'number' || !Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 65536) {
    throw outOfRange('maxBatch', 'an integer from 1 to 65536', maxBatch);
  }
}

export abstract class PortBase extends EventEmitter {
  /** The socket's fd (-1 once closed). */
  abstract get fd(): number;
  /** The ring walk of receive(), inside its guards. */
  protected abstract rxBatch(handler: FrameHandler, maxBatch: number): number;
  /** The ring walk of transmit(), inside its guards. */
  protected abstract txBatch(fill: FrameFiller, maxBatch: number): number;

  /** Busy-poll: `handler(bytes, offset, length)` for up to `maxBatch` frames waiting now; returns how many. */
  receive(handler: FrameHandler, maxBatch = 64): number {
    checkBatch(handler, 'handler', maxBatch);
    this.enter(false);
    try {
      return this.rxBatch(handler, maxBatch);
    } finally {
      this.leave(false);
    }
  }

  /** `fill(bytes, offset, capacity)` → length for up to `maxBatch` frames, sent as one batch; returns how many. */
  transmit(fill: FrameFiller, maxBatch = 64): number {
    checkBatch(fill, 'fill', maxBatch);
    this.checkClaim();
    this.enter(true);
    try {
      return this.txBatch(fill, maxBatch);
    } finally {
      this.leave(true);
    }
  }
  /** Claim one TX frame to write in place: its offset in `port.bytes` (room: `txCapacity` bytes), or -1 when
   *  none is free (back-pressure: reap, flush, or wait). One claim at a time; commit() or abort() it. */
  abstract claim(): number;
  /** Queue the claimed frame, `length` bytes, for the next flush() (no system call here). */
  abstract commit(length: number): void;
  /** Give the claimed frame back unsent. */
  abstract abort(): void;
  /** Bytes a TX frame can hold. */
  abstract get txCapacity(): number;
  /** During a receive handler: out[0..2] = seconds, nanoseconds (the kernel's timestamp where the rings carry
   *  one, else the time the batch was read) and the frame's length on the wire. */
  abstract frameMeta(out: Float64Array): void;
  abstract hold(): number;
  abstract release(token: number): void;
  abstract stats(): PortStats;
  /** Release the kernel side (program, socket). Called once by close(). */
  protected abstract closeKernel(): void;

  #watch: WatchHandle | null = null;
  #handler: FrameHandler | null = null;
  #batch = 64;
  #busy = false;
  #spin: NodeJS.Immediate | null = null;
  #closed = false;
  #ref = true;
  #publisher: StatsPublisher | null = null;
  /** receive() / transmit() is running now (a handler or filler is on the stack). */
  #inReceive = false;
  #inTransmit = false;
  #closePending = false;
  #watchPaused = false;

  get closed(): boolean { return this.#closed; }

  static #reentrant(tx: boolean): KbypassError {
    return new KbypassError('ERR_KBYPASS_REENTRANT',
      `${tx ? 'transmit()/claim()/commit()' : 'receive()'} called from its own ${tx ? 'filler' : 'handler'}: the ring is being walked`);
  }

  /** Enter receive() (`tx` false) or transmit() (`tx` true). The same direction may not be entered again from
   *  its own handler or filler (it would walk the ring under itself); the other may: a receive handler can send
   *  (forwarding). */
  protected enter(tx: boolean): void {
    this.checkOpen();
    if (tx ? this.#inTransmit : this.#inReceive) throw PortBase.#reentrant(tx);
    if (tx) this.#inTransmit = true; else this.#inReceive = true;
  }

  /** Leave what enter() entered; the outermost leave runs a close() that a handler asked for. */
  protected leave(tx: boolean): void {
    if (tx) this.#inTransmit = false; else this.#inReceive = false;
    if (this.#closePending && !this.#inReceive && !this.#inTransmit) {
      this.#closePending = false;
      this.closeKernel();
    }
  }

  /** claim() / commit(): open, and not called from a transmit filler (whose batch owns the TX ring). */
  protected checkTx(): void {
    this.checkOpen();
    if (this.#inTransmit) throw PortBase.#reentrant(true);
  }

  /** True while receive() is running (a handler is on the stack). */
  protected get inReceive(): boolean { return this.#inReceive; }

  /** Stop or restart watching the fd while the port knows there is nothing it can read (PACKET_MMAP: a held
   *  block stops the walk, yet the socket stays readable). */
  protected pauseWatch(paused: boolean): void {
    if (this.#watchPaused === paused) return;
    this.#watchPaused = paused;
    if (this.#watch !== null) native().watchUpdate(this.#watch, paused ? 0 : WATCH_READABLE);
  }

  /** The offset of the open claim, or -1. */
  protected claimed = -1;

  protected checkClaim(): void {
    if (this.claimed >= 0) throw new KbypassError('ERR_KBYPASS_CLAIM_PENDING', 'a TX claim is still open: commit() or abort() it first');
  }

  protected claimedOrThrow(): number {
    if (this.claimed < 0) throw new KbypassError('ERR_KBYPASS_CLAIM_DONE', 'no TX claim is open (claim() first)');
    return this.claimed;
  }

  protected checkOpen(): void {
    if (this.#closed) throw new KbypassError('ERR_KBYPASS_PORT_CLOSED', 'the port is closed');
  }

  /** Deliver frames to `handler` from the event loop: it sleeps on the socket's fd while nothing arrives. */
  start(handler: FrameHandler, options: StartOptions = {}): this {
    this.checkOpen();
    if (typeof handler !== 'function') throw invalidArgType('handler', 'of type function', handler);
    const maxBatch = options.maxBatch ?? 64;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 65536) throw outOfRange('options.maxBatch', '>= 1 and <= 65536', maxBatch);
    this.stop();
    this.#handler = handler;
    this.#batch = maxBatch;
    this.#busy = options.busyPoll === true;
    if (this.#busy) {
      this.#spin = setImmediate(this.#spinTurn);
      if (!this.#ref) this.#spin.unref();
    } else {
      this.#watch = native().watch(this.fd, this.#watchPaused ? 0 : WATCH_READABLE, this.#onReadable);
      if (!this.#ref) native().watchRef(this.#watch, false);
    }
    return this;
  }

  /** Stop delivering (frames wait in the ring). */
  stop(): this {
    if (this.#watch !== null) { native().watchStop(this.#watch); this.#watch = null; }
    if (this.#spin !== null) { clearImmediate(this.#spin); this.#spin = null; }
    this.#handler = null;
    return this;
  }

  ref(): this {
    this.#ref = true;
    if (this.#watch !== null) native().watchRef(this.#watch, true);
    this.#spin?.ref();
    return this;
  }

  unref(): this {
    this.#ref = false;
    if (this.#watch !== null) native().watchRef(this.#watch, false);
    this.#spin?.unref();
    return this;
  }

  #drain(): void {
    const h = this.#handler;
    if (h === null) return;
    // Bounded per turn so that a flood cannot starve the event loop; the level-triggered watch fires again.
    for (let i = 0; i < 64 && this.#handler === h; i++) {
      let n: number;
      try {
        n = this.receive(h, this.#batch);
      } catch (e) {
        this.stop();
        this.emit('error', e);
        return;
      }
      if (n < this.#batch) break;
    }
  }

  readonly #onReadable = (status: number): void => {
    if (status < 0) {
      this.stop();
      this.emit('error', new KbypassError('ERR_KBYPASS_PORT_POLL', `polling the port's socket failed (errno ${-status})`));
      return;
    }
    this.#drain();
  };

  readonly #spinTurn = (): void => {
    this.#spin = null;
    if (this.#handler === null || this.#closed) return;
    this.#drain();
    if (this.#handler !== null && this.#busy && !this.#closed) {
      this.#spin = setImmediate(this.#spinTurn);
      if (!this.#ref) this.#spin.unref();
    }
  };

  /** Close the kernel side if this port is garbage-collected without close() (`release` must not hold the port). */
  protected guardLeak(release: () => void): void {
    leakGuard.register(this, release, this);
  }

  /** Publish this port's statistics once a second for `kbypass stat` (stats-file.ts), until close(). Never
   *  throws: a directory that cannot be used only means nothing is published. */
  publishStats(dir?: string): this {
    if (this.#publisher === null && !this.#closed) {
      this.#publisher = StatsPublisher.open(this as unknown as PortIdentity, dir)?.start(() => this.stats()) ?? null;
    }
    return this;
  }

  /** Stop, detach and close. Views handed out earlier stay readable (stale bytes). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#publisher?.close();
    this.#publisher = null;
    this.#closed = true;
    leakGuard.unregister(this);
    // From a handler or filler: the ring being walked stays mapped until that walk returns.
    if (this.#inReceive || this.#inTransmit) this.#closePending = true;
    else this.closeKernel();
    process.nextTick(() => this.emit('close'));
  }
}
