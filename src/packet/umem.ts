/**
 * The UMEM: page-aligned anonymous memory cut into equal frames (aligned mode), registered with an AF_XDP
 * socket, and the list of frames user space owns right now (not in the FILL, RX, TX or COMPLETION rings).
 *
 * A frame is named by its address, its byte offset in the UMEM (index × frameSize). Every frame is at any moment
 * in exactly one place: this free list, a ring, the kernel, or held by the application; the port moves them.
 */
import { outOfRange } from '../errors';

export class Umem {
  readonly buffer: ArrayBuffer;
  /** The whole UMEM as bytes: frames are read and written through this view at their address. */
  readonly bytes: Uint8Array;
  readonly frameSize: number;
  readonly frameCount: number;
  /** ~(frameSize − 1): the frame of any address inside it. */
  readonly frameMask: number;
  readonly #free: Uint32Array;
  #top = 0;

  constructor(buffer: ArrayBuffer, frameSize: number, frameCount: number) {
    this.buffer = buffer;
    this.bytes = new Uint8Array(buffer);
    this.frameSize = frameSize;
    this.frameCount = frameCount;
    this.frameMask = ~(frameSize - 1) >>> 0;
    this.#free = new Uint32Array(frameCount);
    for (let i = frameCount - 1; i >= 0; i--) this.#free[this.#top++] = i * frameSize;
  }

  /** Frames on the free list. */
  get freeFrames(): number { return this.#top; }

  /** Take a frame; -1 when none is free. */
  alloc(): number {
    if (this.#top === 0) return -1;
    return this.#free[--this.#top] as number;
  }

  /** Give a frame back (any address inside it). */
  free(addr: number): void {
    if (this.#top >= this.frameCount) throw outOfRange('free frames', `at most ${this.frameCount}`, this.#top + 1);
    this.#free[this.#top++] = (addr & this.frameMask) >>> 0;
  }

  /** True when `addr` names a byte inside the UMEM. */
  contains(addr: number): boolean { return addr >= 0 && addr < this.frameSize * this.frameCount; }
}
