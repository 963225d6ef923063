/**
 * An AF_XDP port: a UMEM and four rings shared with the kernel (xdp-layout.ts), the data path in TypeScript.
 *
 * Receive: RX descriptors are handed to the handler as views into the UMEM (no copy); each frame goes back to the
 * FILL ring when the handler returns, unless the handler held it (`hold()`; `release(token)` returns it later).
 * Transmit: frames are taken from the UMEM's free list, filled in place, published to the TX ring in one batch,
 * and the kernel is kicked once per batch (copy mode sends at most 32 frames per kick, so the port kicks again
 * while the kernel has unsent descriptors, reaping completions in between). Completed frames return to the free
 * list. No allocation and no system call per frame.
 */
import { KbypassError, invalidArgType, outOfRange } from '../errors';
import {
  MAP_LOCK, XSK_RING_COMP, XSK_RING_FILL, XSK_RING_RX, XSK_RING_TX, native,
} from '../native/binding';
import type { InterfaceInfo } from './interface';
import type { ResolvedPortOptions } from './options';
import { PortBase, type FrameFiller, type FrameHandler, type PortStats } from './port-base';
import { isNotSupported, setupError } from './port-errors';
import { Umem } from './umem';
import {
  DESC_ADDR_LO, DESC_LEN, OFFSETS_COMP, OFFSETS_FILL, OFFSETS_RX, OFFSETS_TX, XDP_ADDR_BYTES, XDP_COPY,
  XDP_DESC_BYTES, XDP_OPTIONS_ZEROCOPY, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING, XDP_STAT_NAMES,
  XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XDP_USE_NEED_WAKEUP, XDP_ZEROCOPY,
} from './xdp-layout';
import { XdpProgram } from './xdp-program';
import { XskRing } from './xsk-ring';

const EAGAIN = 11;
const EBUSY = 16;
const ENOBUFS = 105;
/** Kicks per transmit() call at most (copy mode moves 32 frames per kick). */
const MAX_KICKS = 256;

function closeQuietly(fd: number): void {
  if (fd >= 0) try { native().close(fd); } catch { /* gone */ }
}

export class XdpPort extends PortBase {
  readonly mode = 'xdp' as const;
  readonly ifname: string;
  readonly ifindex: number;
  readonly queue: number;
  /** Where the redirect program runs ('native' driver mode or 'skb' generic mode); null for a TX-only port. */
  readonly xdpMode: 'native' | 'skb' | null;
  /** True when the kernel runs this socket in zero-copy mode. */
  readonly zeroCopy: boolean;
  /** Set by 'auto' when a faster configuration was refused, saying why ('' otherwise). */
  readonly fallbackReason: string;
  /** The UMEM as bytes: receive handlers and transmit fillers get this view. */
  readonly bytes: Uint8Array;
  readonly frameSize: number;

  #fd: number;
  readonly #umem: Umem;
  readonly #rx: XskRing | null;
  readonly #fill: XskRing | null;
  readonly #tx: XskRing | null;
  readonly #comp: XskRing | null;
  readonly #program: XdpProgram | null;
  readonly #needWakeup: boolean;
  readonly #held: Uint8Array;
  #heldCount = 0;
  /** Frames the receive side has given the kernel (in FILL, in flight, or in RX not yet handled): at most
   *  #fillSize, so that returning each handled frame to FILL can never overflow it. */
  #rxOwned = 0;
  readonly #fillSize: number;
  /** The largest frame to send: a UMEM frame, and no more than the interface's MTU plus the Ethernet header. */
  readonly #maxFrame: number;
  /** Address of the frame being handled (for hold()), or -1 outside a handler. */
  #current = -1;
  #currentHeld = false;
  #currentLen = 0;
  #batchTime = -1;
  #batchNs = 0;
  #rxPackets = 0;
  #rxBytes = 0;
  #txSubmitted = 0;
  #txCompleted = 0;
  #txBytes = 0;
  #txErrno = 0;
  readonly #statsBuf = new Float64Array(6);
  readonly #kernel: Record<string, number> = {};

  private constructor(init: {
    fd: number; umem: Umem; rx: XskRing | null; fill: XskRing | null; tx: XskRing | null; comp: XskRing | null;
    program: XdpProgram | null; zeroCopy: boolean; reason: string; o: ResolvedPortOptions; info: InterfaceInfo;
    rxOwned: number;
  }) {
    super();
    this.#fd = init.fd;
    this.#umem = init.umem;
    this.#rx = init.rx;
    this.#fill = init.fill;
    this.#tx = init.tx;
    this.#comp = init.comp;
    this.#program = init.program;
    this.#needWakeup = init.o.needWakeup;
    this.#fillSize = init.fill?.size ?? 0;
    this.#maxFrame = Math.min(init.umem.frameSize, init.info.mtu + 14);
    this.#rxOwned = init.rxOwned;
    this.#held = new Uint8Array(init.umem.frameCount);
    this.ifname = init.info.name;
    this.ifindex = init.info.index;
    this.queue = init.o.queue;
    this.xdpMode = init.program?.mode ?? null;
    this.zeroCopy = init.zeroCopy;
    this.fallbackReason = [init.reason, init.program?.reason ?? ''].filter((s) => s !== '').join('; ');
    this.bytes = init.umem.bytes;
    this.frameSize = init.umem.frameSize;
    for (const name of XDP_STAT_NAMES) this.#kernel[name] = 0;
  }

  get fd(): number { return this.#fd; }

  /** Open an AF_XDP socket on `info` per the options (synchronous; the caller retries EBUSY). copyMode 'auto'
   *  tries zero-copy and, when the driver refuses, a fresh socket in copy mode (a socket whose bind failed
   *  cannot be bound again). */
  static open(o: ResolvedPortOptions, info: InterfaceInfo): XdpPort {
    if (o.copyMode !== 'auto') return XdpPort.#open(o, info, o.copyMode === 'zerocopy', '');
    try {
      return XdpPort.#open(o, info, true, '');
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!isNotSupported(code) || (e as { syscall?: string }).syscall !== 'bind') throw e;
      return XdpPort.#open(o, info, false, `zero-copy refused by the driver of ${info.name} (EOPNOTSUPP): using copy mode`);
    }
  }

  static #open(o: ResolvedPortOptions, info: InterfaceInfo, zc: boolean, reason: string): XdpPort {
    const n = native();
    const ctx = { ifname: info.name, queue: o.queue, rxQueues: info.rxQueues, bytes: o.frameSize * o.frameCount };
    if (o.rx) XdpProgram.check(info.name, info.index, o.queue, o.xdpMode); // before anything is made
    let umemBuf: ArrayBuffer;
    try { umemBuf = n.mmapAnon(o.frameSize * o.frameCount, o.lock ? MAP_LOCK : 0); } catch (e) { throw setupError(e, 'umem', ctx); }
    let fd = -1;
    let program: XdpProgram | null = null;
    // Every mapping made so far: on failure they are unmapped at once, since a ring mapping keeps the socket (and
    // its queue) alive and the UMEM stays pinned until then. None has reached user code yet.
    const mapped: ArrayBuffer[] = [umemBuf];
    try {
      try { fd = n.xskSocket(); } catch (e) { throw setupError(e, 'xsk-socket', ctx); }
      try { n.xskUmemReg(fd, umemBuf, o.frameSize, 0); } catch (e) { throw setupError(e, 'umem', ctx); }
      // The kernel needs both UMEM rings even for a one-way socket.
      const fillSize = o.rx ? o.rxRingSize : 64;
      const compSize = o.tx ? o.txRingSize : 64;
      try {
        n.xskRingSet(fd, XSK_RING_FILL, fillSize);
        n.xskRingSet(fd, XSK_RING_COMP, compSize);
        if (o.rx) n.xskRingSet(fd, XSK_RING_RX, o.rxRingSize);
        if (o.tx) n.xskRingSet(fd, XSK_RING_TX, o.txRingSize);
      } catch (e) { throw setupError(e, 'xsk-rings', ctx); }
      // Copy mode sends at most this many frames per kick: as many as the TX ring holds, where the kernel lets us.
      if (o.tx) try { n.xskTxBudget(fd, o.txRingSize); } catch { /* keep the kernel's 32 */ }
      const off = new Float64Array(16);
      let rx: XskRing | null = null;
      let tx: XskRing | null = null;
      let fill: XskRing;
      let comp: XskRing;
      try {
        n.xskOffsets(fd, off);
        const map = (at: number, pgoff: number, size: number, entry: 8 | 16, producer: boolean) => {
          const offs = [off[at] ?? 0, off[at + 1] ?? 0, off[at + 2] ?? 0, off[at + 3] ?? 0] as const;
          const buf = n.mmapSocket(fd, offs[2] + size * entry, pgoff);
          mapped.push(buf);
          try {
            return new XskRing(buf, offs, size, entry, producer);
          } catch (e) {
            throw new KbypassError('ERR_KBYPASS_LAYOUT', `the kernel's AF_XDP ring offsets do not fit its mapping: ${(e as Error).message}`);
          }
        };
        fill = map(OFFSETS_FILL, XDP_UMEM_PGOFF_FILL_RING, fillSize, XDP_ADDR_BYTES, true);
        comp = map(OFFSETS_COMP, XDP_UMEM_PGOFF_COMPLETION_RING, compSize, XDP_ADDR_BYTES, false);
        if (o.rx) rx = map(OFFSETS_RX, XDP_PGOFF_RX_RING, o.rxRingSize, XDP_DESC_BYTES, false);
        if (o.tx) tx = map(OFFSETS_TX, XDP_PGOFF_TX_RING, o.txRingSize, XDP_DESC_BYTES, true);
      } catch (e) { throw (e as { code?: string }).code === 'ERR_KBYPASS_LAYOUT' ? e : setupError(e, 'xsk-mmap', ctx); }

      const umem = new Umem(umemBuf, o.frameSize, o.frameCount);
      // Stock the FILL ring before bind so the first packets have somewhere to go.
      let stock = 0;
      if (o.rx) {
        stock = Math.min(fill.free(fillSize), umem.freeFrames);
        for (let i = 0; i < stock; i++) fill.putAddr(i, umem.alloc());
        fill.submit(stock);
      }

      const wake = o.needWakeup ? XDP_USE_NEED_WAKEUP : 0;
      try {
        n.xskBind(fd, info.index, o.queue, (zc ? XDP_ZEROCOPY : XDP_COPY) | wake, -1);
      } catch (e) { throw setupError(e, 'xsk-bind', ctx); }
      const zeroCopy = (n.xskOptions(fd) & XDP_OPTIONS_ZEROCOPY) !== 0;
      if (o.rx) program = XdpProgram.attach(info.name, info.index, o.queue, info.rxQueues, fd, o.xdpMode);
      const port = new XdpPort({ fd, umem, rx, fill, tx, comp, program, zeroCopy, reason, o, info, rxOwned: stock });
      const rings = mapped.slice(1);
      const prog = program;
      port.guardLeak(() => {
        prog?.release();
        for (const b of rings) n.unmapNow(b);
        closeQuietly(fd);
      });
      return port;
    } catch (e) {
      program?.release();
      for (const b of mapped) n.unmapNow(b);
      closeQuietly(fd);
      throw e;
    }
  }

  /** Frames on the UMEM's free list (available to transmit()). */
  get freeFrames(): number { return this.#umem.freeFrames; }

  protected rxBatch(handler: FrameHandler, maxBatch: number): number {
    const rx = this.#rx;
    const fill = this.#fill;
    if (rx === null || fill === null) return 0;
    const n = rx.available(maxBatch);
    if (n === 0) {
      if (this.#needWakeup && fill.needsWakeup()) native().recvKick(this.#fd);
      return 0;
    }
    const words = rx.words;
    const bytes = this.#umem.bytes;
    const mask = this.#umem.frameMask;
    const base = rx.local;
    const rmask = rx.mask;
    this.#batchTime = -1;
    fill.free(n); // frames in RX came out of FILL, so it has room for them; refresh the cached index once
    let done = 0;
    let refill = 0;
    try {
      while (done < n) {
        const d = ((base + done) & rmask) << 2;
        const addr = words[d + DESC_ADDR_LO] as number; // UMEMs are < 4 GiB: the high word is 0
        const len = words[d + DESC_LEN] as number;
        this.#current = addr;
        this.#currentLen = len;
        this.#currentHeld = false;
        this.#rxBytes += len;
        done++; // consumed, whatever the handler does
        try {
          handler(bytes, addr, len);
        } finally {
          if (!this.#currentHeld) {
            fill.putAddr(refill++, (addr & mask) >>> 0);
          } else {
            this.#rxOwned--;
          }
        }
        if (this.closed) break; // the handler closed the port: stop here (the rings stay mapped until we return)
      }
    } finally {
      this.#current = -1;
      this.#rxPackets += done;
      rx.release(done);
      if (refill > 0) fill.submit(refill);
      if (this.#rxOwned < this.#fillSize && !this.closed) this.#topUpFill();
    }
    return done;
  }

  /** Give the FILL ring free frames until the receive side owns its full complement again (after holds). */
  #topUpFill(): void {
    const fill = this.#fill;
    if (fill === null) return;
    let k = Math.min(this.#fillSize - this.#rxOwned, this.#umem.freeFrames);
    if (k <= 0) return;
    k = Math.min(k, fill.free(k));
    for (let i = 0; i < k; i++) fill.putAddr(i, this.#umem.alloc());
    if (k > 0) {
      fill.submit(k);
      this.#rxOwned += k;
      if (this.#needWakeup && fill.needsWakeup()) native().recvKick(this.#fd);
    }
  }

  frameMeta(out: Float64Array): void {
    if (this.#current < 0) throw new KbypassError('ERR_KBYPASS_NOT_IN_HANDLER', 'frameMeta() may be called only inside a receive handler');
    if (this.#batchTime < 0) { // AF_XDP carries no timestamp: the time this batch was read, once per batch
      const ms = performance.timeOrigin + performance.now(); // a double: microsecond resolution, no allocation
      this.#batchTime = Math.floor(ms / 1000);
      this.#batchNs = Math.min(999_999_999, Math.round((ms - this.#batchTime * 1000) * 1e6));
    }
    out[0] = this.#batchTime;
    out[1] = this.#batchNs;
    out[2] = this.#currentLen;
  }

  hold(): number {
    if (this.#current < 0) {
      throw new KbypassError('ERR_KBYPASS_NOT_IN_HANDLER', 'hold() may be called only inside a receive handler, for the frame being handled');
    }
    if (this.#currentHeld) return this.#current;
    const idx = Math.floor(this.#current / this.#umem.frameSize);
    this.#held[idx] = 1;
    this.#heldCount++;
    this.#currentHeld = true;
    return this.#current;
  }

  release(token: number): void {
    if (typeof token !== 'number') throw invalidArgType('token', 'of type number', token);
    const idx = Number.isInteger(token) && this.#umem.contains(token) ? Math.floor(token / this.#umem.frameSize) : -1;
    if (idx < 0 || this.#held[idx] !== 1) {
      throw outOfRange('token', 'a token returned by hold() and not yet released', token);
    }
    this.#held[idx] = 0;
    this.#heldCount--;
    if (idx === Math.floor(this.#current / this.#umem.frameSize)) this.#currentHeld = false; // hold, release, hold
    this.#umem.free(token);
    // Inside a receive handler the batch's own refills are not yet published: receive() tops up after them.
    if (!this.closed && !this.inReceive) this.#topUpFill();
  }

  /** Take the kernel's completed TX frames back onto the free list; returns how many. */
  reap(): number {
    const comp = this.#comp;
    if (comp === null || this.closed) return 0;
    const n = comp.available(comp.size);
    if (n === 0) return 0;
    const w = comp.words;
    const base = comp.local;
    const m = comp.mask;
    for (let i = 0; i < n; i++) this.#umem.free(w[((base + i) & m) << 1] as number);
    comp.release(n);
    this.#txCompleted += n;
    return n;
  }

  protected txBatch(fill: FrameFiller, maxBatch: number): number {
    const tx = this.#tx;
    if (tx === null) return 0;
    this.reap();
    const umem = this.#umem;
    let n = Math.min(maxBatch, umem.freeFrames);
    if (n > 0) n = Math.min(n, tx.free(n));
    const bytes = umem.bytes;
    const cap = this.#maxFrame;
    let k = 0;
    let sent = 0;
    try {
      for (; k < n; k++) {
        const addr = umem.alloc();
        let len = 0;
        try {
          len = fill(bytes, addr, cap);
        } finally {
          if (!(len > 0 && len <= cap && Number.isInteger(len))) umem.free(addr);
        }
        if (!(len > 0)) break;
        if (len > cap || !Number.isInteger(len)) throw outOfRange('frame length', `an integer from 1 to ${cap}`, len);
        tx.putDesc(k, addr, len);
        this.#txBytes += len;
      }
    } finally {
      sent = k;
      if (sent > 0) {
        tx.submit(sent);
        this.#txSubmitted += sent;
      }
      if (!this.closed) this.flush(); // also when the filler threw: what was queued goes out
    }
    return sent;
  }

  get txCapacity(): number { return this.#tx === null ? 0 : this.#maxFrame; }

  claim(): number {
    this.checkTx();
    this.checkClaim();
    const tx = this.#tx;
    if (tx === null) return -1;
    if (this.#umem.freeFrames === 0) this.reap();
    if (this.#umem.freeFrames === 0 || tx.free(1) === 0) return -1;
    this.claimed = this.#umem.alloc();
    return this.claimed;
  }

  commit(length: number): void {
    this.checkTx();
    const addr = this.claimedOrThrow();
    const tx = this.#tx as XskRing;
    if (!Number.isInteger(length) || length < 1 || length > this.#maxFrame) {
      throw outOfRange('length', `an integer from 1 to ${this.#maxFrame}`, length);
    }
    tx.putDesc(0, addr, length); // claim() checked there is a free slot, and nothing else produces into TX meanwhile
    tx.submit(1);
    this.claimed = -1;
    this.#txSubmitted++;
    this.#txBytes += length;
  }

  abort(): void {
    const addr = this.claimedOrThrow();
    this.claimed = -1;
    this.#umem.free(addr);
  }

  /** Ask the kernel to send what the TX ring holds (copy mode needs a syscall; zero-copy only when it asks) and
   *  reap what it has sent. Returns the frames submitted and not yet completed. */
  flush(): number {
    const tx = this.#tx;
    if (tx === null || this.closed) return 0;
    let left = tx.outstanding();
    if (left > 0 && (!this.zeroCopy || !this.#needWakeup || tx.needsWakeup())) {
      const n = native();
      for (let i = 0; i < MAX_KICKS && left > 0; i++) {
        const r = n.sendKick(this.#fd);
        if (r < 0 && r !== -EAGAIN && r !== -EBUSY && r !== -ENOBUFS) { this.#txErrno = -r; break; }
        this.reap();
        const now = tx.outstanding();
        if (now === left && r < 0) break; // no progress: the device is busy; try again on the next call
        left = now;
      }
    }
    this.reap();
    return this.#txSubmitted - this.#txCompleted;
  }

  /** The errno of the last failed TX kick (e.g. ENETDOWN, ENXIO), or 0. */
  get txError(): number { return this.#txErrno; }

  #readKernel(): void {
    native().xskStats(this.#fd, this.#statsBuf);
    XDP_STAT_NAMES.forEach((name, i) => { this.#kernel[name] = this.#statsBuf[i] ?? 0; });
  }

  stats(): PortStats {
    if (!this.closed) this.#readKernel();
    const k = this.#kernel;
    const fillEmpty = Math.min(k['rxFillRingEmptyDescs'] ?? 0, k['rxDropped'] ?? 0);
    return {
      rxPackets: this.#rxPackets,
      rxBytes: this.#rxBytes,
      txSubmitted: this.#txSubmitted,
      txCompleted: this.#txCompleted,
      txBytes: this.#txBytes,
      held: this.#heldCount,
      // Each dropped frame once, by reason. The kernel counts a frame dropped for want of a FILL entry in both
      // rx_dropped and rx_fill_ring_empty_descs, and one dropped because RX was full in rx_ring_full only.
      drops: {
        rxRingFull: k['rxRingFull'] ?? 0,
        rxFillRingEmpty: fillEmpty,
        rxOther: (k['rxDropped'] ?? 0) - fillEmpty,
        rxInvalidDescs: k['rxInvalidDescs'] ?? 0,
        txInvalidDescs: k['txInvalidDescs'] ?? 0,
      },
      kernel: { ...k },
    };
  }

  protected closeKernel(): void {
    try { this.#readKernel(); } catch { /* keep the last counters */ }
    this.#program?.release();
    // The rings' mappings hold the socket open, and with it the queue: unmap them now (only this class ever
    // touched them, and it checks `closed` first). The UMEM, which user code may hold views of, stays mapped
    // until those are collected.
    for (const ring of [this.#rx, this.#fill, this.#tx, this.#comp]) if (ring !== null) native().unmapNow(ring.buffer);
    closeQuietly(this.#fd);
    this.#fd = -1;
  }
}
