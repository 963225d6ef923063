/**
 * A PACKET_MMAP port: an AF_PACKET socket with a TPACKET_V3 RX ring of blocks and a TX ring of frames, both
 * walked in TypeScript (layouts in tpacket-layout.ts).
 *
 * Receive: the handler gets each packet of a user-owned block as a view into the mapping; a block goes back to
 * the kernel when its last packet was handled, unless a packet in it is held (`hold()`): then when the last
 * held packet of the block is released. Transmit: frames are written in place into AVAILABLE slots, marked
 * SEND_REQUEST, and one send() per batch starts them (PACKET_QDISC_BYPASS by default: straight to the driver).
 */
import { KbypassError, invalidArgType, outOfRange } from '../errors';
import { native } from '../native/binding';
import type { InterfaceInfo } from './interface';
import type { ResolvedPortOptions } from './options';
import { PortBase, type FrameFiller, type FrameHandler, type PortStats } from './port-base';
import { setupError } from './port-errors';
import {
  BLOCK_DESC_BYTES, BLOCK_FIRST_PKT, BLOCK_NUM_PKTS, BLOCK_STATUS, ETH_P_ALL, FANOUT_TYPES, MIN_TX_FRAME,
  PACKET_FANOUT, PACKET_FANOUT_FLAG_DEFRAG, PACKET_LOSS, PACKET_FANOUT_FLAG_ROLLOVER, PACKET_QDISC_BYPASS, PACKET_RX_RING,
  PACKET_TX_RING, PACKET_VERSION, PKT_HDR_BYTES, PKT_LEN, PKT_MAC, PKT_NEXT, PKT_NSEC, PKT_SEC, PKT_SNAPLEN, PKT_STATUS,
  RX_FRAME_SIZE, TPACKET_V3, TP_STATUS_AVAILABLE, TP_STATUS_KERNEL, TP_STATUS_SEND_REQUEST, TP_STATUS_USER,
  TX_DATA_OFFSET,
} from './tpacket-layout';

const EAGAIN = 11;
const ENOBUFS = 105;
const PAGE = 4096;

export class PacketPort extends PortBase {
  readonly mode = 'packet' as const;
  readonly ifname: string;
  readonly ifindex: number;
  readonly queue: number;
  readonly xdpMode = null;
  readonly zeroCopy = false;
  /** Why 'auto' chose this port over AF_XDP ('' when asked for directly). */
  fallbackReason = '';
  /** The whole mapping as bytes: receive handlers and transmit fillers get this view. */
  readonly bytes: Uint8Array;
  readonly blockSize: number;
  readonly blockCount: number;
  readonly txFrameSize: number;
  /** TX slots in the ring: the txFrameCount asked for, rounded up to whole page-multiple blocks. */
  readonly txFrameCount: number;

  #fd: number;
  readonly #u32: Uint32Array;
  readonly #u16: Uint16Array;
  readonly #rxBytesTotal: number;
  readonly #rx: boolean;
  readonly #tx: boolean;
  readonly #mtu: number;
  readonly #fanout: boolean;
  // RX walk state
  #block = 0;
  #pkt = 0;      // byte offset of the next packet header in the current block (0: block not opened)
  #left = 0;     // packets left in the current block
  readonly #blockHolds: Int32Array;
  readonly #blockDone: Uint8Array;
  readonly #heldTokens = new Set<number>();
  #current = -1;
  #currentHeld = false;
  /** The walk stopped at a block that is still held. */
  #stalled = false;
  // TX state
  #txHead = 0;
  #txTail = 0;
  #txInFlight = 0;
  // counters
  #rxPackets = 0;
  #rxBytes = 0;
  #txSubmitted = 0;
  #txCompleted = 0;
  #txBytes = 0;
  #txErrno = 0;
  readonly #statsBuf = new Float64Array(3);
  #kPackets = 0;
  #kDrops = 0;
  #kFreeze = 0;

  private constructor(fd: number, buffer: ArrayBuffer, o: ResolvedPortOptions, info: InterfaceInfo, txFrames: number) {
    super();
    this.#fd = fd;
    this.bytes = new Uint8Array(buffer);
    this.#u32 = new Uint32Array(buffer);
    this.#u16 = new Uint16Array(buffer);
    this.ifname = info.name;
    this.ifindex = info.index;
    this.queue = o.queue;
    this.#rx = o.rx;
    this.#tx = o.tx;
    this.#mtu = info.mtu;
    this.#fanout = o.fanout !== null;
    this.blockSize = o.rx ? o.blockSize : 0;
    this.blockCount = o.rx ? o.blockCount : 0;
    this.#rxBytesTotal = this.blockSize * this.blockCount;
    this.txFrameSize = o.tx ? o.txFrameSize : 0;
    this.txFrameCount = txFrames;
    this.#blockHolds = new Int32Array(this.blockCount);
    this.#blockDone = new Uint8Array(this.blockCount);
  }

  get fd(): number { return this.#fd; }

  /** Open an AF_PACKET socket with TPACKET_V3 rings on `info` per the options. */
  static open(o: ResolvedPortOptions, info: InterfaceInfo): PacketPort {
    const n = native();
    const ctx = { ifname: info.name, queue: o.queue };
    let fd = -1;
    let mapped: ArrayBuffer | null = null;
    try {
      try { fd = n.packetSocket(0); } catch (e) { throw setupError(e, 'packet-socket', ctx); }
      let size = 0;
      let txFrames = 0;
      try {
        n.packetSetInt(fd, PACKET_VERSION, TPACKET_V3);
        // A frame the kernel refuses would otherwise stop its TX head on that slot for good; lengths are checked
        // here first (txCapacity), so this only keeps the ring moving. (Must precede the rings: EBUSY after.)
        if (o.tx) n.packetSetInt(fd, PACKET_LOSS, 1);
        if (o.rx) {
          const frames = (o.blockSize / RX_FRAME_SIZE) * o.blockCount;
          n.packetRing(fd, PACKET_RX_RING, Int32Array.of(o.blockSize, o.blockCount, RX_FRAME_SIZE, frames, o.blockTimeoutMs, 0, 0));
          size += o.blockSize * o.blockCount;
        }
        if (o.tx) {
          // TX frames are grouped in page-multiple blocks; one frame per block when a frame is a page or more.
          const block = Math.max(PAGE, o.txFrameSize);
          const perBlock = block / o.txFrameSize;
          const blocks = Math.ceil(o.txFrameCount / perBlock);
          txFrames = blocks * perBlock;
          n.packetRing(fd, PACKET_TX_RING, Int32Array.of(block, blocks, o.txFrameSize, txFrames, 0, 0, 0));
          size += block * blocks;
        }
      } catch (e) { throw setupError(e, 'packet-ring', { ...ctx, bytes: size }); }
      let buf: ArrayBuffer;
      try { buf = n.mmapSocket(fd, size, 0); } catch (e) { throw setupError(e, 'packet-mmap', { ...ctx, bytes: size }); }
      mapped = buf;
      if (o.tx && o.qdiscBypass) {
        try { n.packetSetInt(fd, PACKET_QDISC_BYPASS, 1); } catch (e) { throw setupError(e, 'packet-option', ctx); }
      }

      try { n.packetBind(fd, info.index, o.rx ? ETH_P_ALL : 0); } catch (e) { throw setupError(e, 'packet-bind', ctx); }
      if (o.fanout !== null) {
        const f = o.fanout;
        const type = FANOUT_TYPES[f.type] | (f.defrag ? PACKET_FANOUT_FLAG_DEFRAG : 0) | (f.rollover ? PACKET_FANOUT_FLAG_ROLLOVER : 0);
        try { n.packetSetInt(fd, PACKET_FANOUT, f.id | (type << 16)); } catch (e) { throw setupError(e, 'packet-fanout', ctx); }
      }
      const port = new PacketPort(fd, buf, o, info, txFrames);
      const ring = buf;
      port.guardLeak(() => { n.unmapNow(ring); n.close(fd); });
      return port;
    } catch (e) {
      if (mapped !== null) n.unmapNow(mapped); // never seen by user code; its mapping would keep the socket alive
      if (fd >= 0) try { n.close(fd); } catch { /* gone */ }
      throw e;
    }
  }

  #releaseBlock(b: number): void {
    this.#blockDone[b] = 0;
    Atomics.store(this.#u32, (b * this.blockSize + BLOCK_STATUS) >> 2, TP_STATUS_KERNEL);
    if (this.#stalled && b === this.#block) { // the walk stopped here: it can go on
      this.#stalled = false;
      this.pauseWatch(false);
    }
  }

  protected rxBatch(handler: FrameHandler, maxBatch: number): number {
    if (!this.#rx) return 0;
    const u32 = this.#u32;
    const u16 = this.#u16;
    const bs = this.blockSize;
    let done = 0;
    try {
      while (done < maxBatch && !this.closed) {
        const blockOff = this.#block * bs;
        if (this.#pkt === 0) {
          if (this.#blockDone[this.#block] === 1) {
            // A block we still hold (a packet in it is held) is where the kernel is frozen too: nothing to read
            // until it is released. Its socket stays readable meanwhile: stop watching it, or the loop spins.
            this.#stalled = true;
            this.pauseWatch(true);
            break;
          }
          if ((Atomics.load(u32, (blockOff + BLOCK_STATUS) >> 2) & TP_STATUS_USER) === 0) break;
          const first = u32[(blockOff + BLOCK_FIRST_PKT) >> 2] as number;
          this.#left = u32[(blockOff + BLOCK_NUM_PKTS) >> 2] as number;
          this.#pkt = blockOff + first;
          if (first < BLOCK_DESC_BYTES || first >= bs) this.#left = 0; // a block we cannot believe: skip it
        }
        const blockEnd = blockOff + bs;
        while (this.#left > 0 && done < maxBatch) {
          const p = this.#pkt;
          if (p + PKT_HDR_BYTES > blockEnd || (p & 3) !== 0) { this.#left = 0; break; }
          const snap = u32[(p + PKT_SNAPLEN) >> 2] as number;
          const mac = u16[(p + PKT_MAC) >> 1] as number;
          const next = u32[(p + PKT_NEXT) >> 2] as number;
          this.#left--;
          this.#pkt = p + next;
          if (next === 0 && this.#left > 0) this.#left = 0;
          if (p + mac + snap > blockEnd) continue;
          done++;
          this.#rxBytes += snap;
          this.#current = p;
          this.#currentHeld = false;
          handler(this.bytes, p + mac, snap);
          if (this.closed) break; // the handler closed the port (the mapping stays until we return)
        }
        if (this.closed) break;
        if (this.#left === 0) {
          const b = this.#block;
          if (this.#blockHolds[b] === 0) this.#releaseBlock(b);
          else this.#blockDone[b] = 1;
          this.#pkt = 0;
          this.#block = b + 1 === this.blockCount ? 0 : b + 1;
        } else {
          break;
        }
      }
    } finally {
      this.#current = -1;
      this.#rxPackets += done;
    }
    return done;
  }

  /** During a receive handler: [seconds, nanoseconds, length on the wire] of the frame being handled. */
  frameMeta(out: Float64Array): void {
    const p = this.#current;
    if (p < 0) throw new KbypassError('ERR_KBYPASS_NOT_IN_HANDLER', 'frameMeta() may be called only inside a receive handler');
    out[0] = this.#u32[(p + PKT_SEC) >> 2] as number;
    out[1] = this.#u32[(p + PKT_NSEC) >> 2] as number;
    out[2] = this.#u32[(p + PKT_LEN) >> 2] as number;
  }

  hold(): number {
    const p = this.#current;
    if (p < 0) {
      throw new KbypassError('ERR_KBYPASS_NOT_IN_HANDLER', 'hold() may be called only inside a receive handler, for the frame being handled');
    }
    if (this.#currentHeld) return p;
    this.#currentHeld = true;
    this.#heldTokens.add(p);
    const b = Math.floor(p / this.blockSize);
    this.#blockHolds[b] = (this.#blockHolds[b] ?? 0) + 1;
    return p;
  }

  release(token: number): void {
    if (typeof token !== 'number') throw invalidArgType('token', 'of type number', token);
    if (!this.#heldTokens.delete(token)) throw outOfRange('token', 'a token returned by hold() and not yet released', token);
    if (token === this.#current) this.#currentHeld = false; // hold, release, hold again in one handler call
    const b = Math.floor(token / this.blockSize);
    const left = (this.#blockHolds[b] ?? 1) - 1;
    this.#blockHolds[b] = left;
    if (left === 0 && this.#blockDone[b] === 1 && !this.closed) this.#releaseBlock(b);
  }

  /** Count TX slots the kernel has finished with (AVAILABLE again: sent, or, with PACKET_LOSS, refused); returns
   *  how many. */
  reap(): number {
    if (!this.#tx || this.closed) return 0;
    const u32 = this.#u32;
    let n = 0;
    while (this.#txInFlight > 0) {
      if (Atomics.load(u32, (this.#slot(this.#txTail) + PKT_STATUS) >> 2) !== TP_STATUS_AVAILABLE) break;
      this.#txTail = this.#txTail + 1 === this.txFrameCount ? 0 : this.#txTail + 1;
      this.#txInFlight--;
      n++;
    }
    this.#txCompleted += n;
    return n;
  }

  #slot(i: number): number { return this.#rxBytesTotal + i * this.txFrameSize; }

  protected txBatch(fill: FrameFiller, maxBatch: number): number {
    if (!this.#tx) return 0;
    this.reap();
    const u32 = this.#u32;
    const cap = this.txCapacity;
    const total = this.txFrameCount;
    let k = 0;
    try {
      while (k < maxBatch && this.#txInFlight < total) {
        const slot = this.#slot(this.#txHead);
        if (Atomics.load(u32, (slot + PKT_STATUS) >> 2) !== TP_STATUS_AVAILABLE) break;
        const len = fill(this.bytes, slot + TX_DATA_OFFSET, cap);
        if (!(len > 0)) break;
        if (!Number.isInteger(len) || len > cap || len < MIN_TX_FRAME) {
          throw outOfRange('frame length', `an integer from ${MIN_TX_FRAME} to ${cap}`, len);
        }
        u32[(slot + PKT_LEN) >> 2] = len;
        u32[(slot + PKT_SNAPLEN) >> 2] = len;
        Atomics.store(u32, (slot + PKT_STATUS) >> 2, TP_STATUS_SEND_REQUEST);
        this.#txHead = this.#txHead + 1 === total ? 0 : this.#txHead + 1;
        this.#txInFlight++;
        this.#txBytes += len;
        k++;
      }
    } finally {
      this.#txSubmitted += k; // also when the filler threw: what was queued is counted, and goes out
      if (k > 0 && !this.closed) this.flush();
    }
    return k;
  }

  /** A TX slot's room, and no more than the interface's MTU plus the Ethernet header (the kernel would refuse it). */
  get txCapacity(): number { return this.#tx ? Math.min(this.txFrameSize - TX_DATA_OFFSET, this.#mtu + 14) : 0; }

  claim(): number {
    this.checkTx();
    this.checkClaim();
    if (!this.#tx) return -1;
    if (this.#txInFlight >= this.txFrameCount) this.reap();
    if (this.#txInFlight >= this.txFrameCount) return -1;
    const slot = this.#slot(this.#txHead);
    if (Atomics.load(this.#u32, (slot + PKT_STATUS) >> 2) !== TP_STATUS_AVAILABLE) return -1;
    this.claimed = slot + TX_DATA_OFFSET;
    return this.claimed;
  }

  commit(length: number): void {
    this.checkTx();
    const at = this.claimedOrThrow();
    const cap = this.txCapacity;
    if (!Number.isInteger(length) || length < MIN_TX_FRAME || length > cap) {
      throw outOfRange('length', `an integer from ${MIN_TX_FRAME} to ${cap}`, length);
    }
    const slot = at - TX_DATA_OFFSET;
    this.#u32[(slot + PKT_LEN) >> 2] = length;
    this.#u32[(slot + PKT_SNAPLEN) >> 2] = length;
    Atomics.store(this.#u32, (slot + PKT_STATUS) >> 2, TP_STATUS_SEND_REQUEST);
    this.#txHead = this.#txHead + 1 === this.txFrameCount ? 0 : this.#txHead + 1;
    this.#txInFlight++;
    this.#txBytes += length;
    this.#txSubmitted++;
    this.claimed = -1;
  }

  abort(): void {
    this.claimedOrThrow();
    this.claimed = -1; // the slot stays AVAILABLE at the head: the next claim gets it again
  }

  /** Start sending what the TX ring holds (one send() call). Returns frames not yet completed. */
  flush(): number {
    if (!this.#tx || this.closed || this.#txInFlight === 0) return 0;
    const r = native().sendKick(this.#fd);
    if (r < 0 && r !== -EAGAIN && r !== -ENOBUFS) this.#txErrno = -r;
    this.reap();
    return this.#txInFlight;
  }

  /** The errno of the last failed send() (e.g. ENETDOWN, ENXIO), or 0. */
  get txError(): number { return this.#txErrno; }

  #readKernel(): void {
    native().packetStats(this.#fd, this.#statsBuf);
    this.#kPackets += this.#statsBuf[0] ?? 0;
    this.#kDrops += this.#statsBuf[1] ?? 0;
    this.#kFreeze += this.#statsBuf[2] ?? 0;
  }

  stats(): PortStats {
    if (!this.closed) this.#readKernel();
    return {
      rxPackets: this.#rxPackets,
      rxBytes: this.#rxBytes,
      txSubmitted: this.#txSubmitted,
      txCompleted: this.#txCompleted,
      txBytes: this.#txBytes,
      held: this.#heldTokens.size,
      drops: { tpDrops: this.#kDrops },
      // tp_packets counts the dropped packets too (the kernel adds tp_drops before reporting)
      kernel: { tpPackets: this.#kPackets, tpDrops: this.#kDrops, tpFreezeQCnt: this.#kFreeze },
    };
  }

  protected closeKernel(): void {
    try { this.#readKernel(); } catch { /* keep the last counters */ }
    // The mapping keeps the socket alive while it is mapped. User code may hold views of it, so it normally stays
    // until they are collected, with a filter that accepts nothing: the socket copies no more frames. A fanout
    // member must leave its group now, or the group keeps sending it a share of the traffic: its mapping is
    // unmapped at once (views kept from it read as empty).
    const n = native();
    if (this.#fanout) n.unmapNow(this.bytes.buffer as ArrayBuffer);
    else try { n.packetDropAll(this.#fd); } catch { /* the socket is going anyway */ }
    try { n.close(this.#fd); } catch { /* gone */ }
    this.#fd = -1;
  }
}
