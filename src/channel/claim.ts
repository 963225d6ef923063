/**
 * A zero-copy send: a claim is room for one record, reserved in the outgoing ring. Write the message into
 * `buffer[offset, offset + length)` (or into `view`), then `commit()` it — optionally shorter than claimed — or
 * `abort()` it. Until then the channel accepts no other send. One Claim object per channel is reused, so the
 * hot path allocates nothing (`view` allocates a Uint8Array when first read).
 */
import { KbypassError, invalidArgType, outOfRange } from '../errors';

export interface ClaimOwner {
  commitClaim(length: number): void;
  abortClaim(): void;
}

export class Claim {
  #owner: ClaimOwner;
  #buffer: Uint8Array;
  #offset = 0;
  #length = 0;
  #open = false;
  #view: Uint8Array | null = null;

  /** @internal */
  constructor(owner: ClaimOwner, buffer: Uint8Array) {
    this.#owner = owner;
    this.#buffer = buffer;
  }

  /** @internal Arm the claim for a new reservation. */
  arm(offset: number, length: number): this {
    this.#offset = offset;
    this.#length = length;
    this.#open = true;
    this.#view = null;
    return this;
  }

  /** The outgoing ring's bytes; write only within [offset, offset + length). */
  get buffer(): Uint8Array { return this.#buffer; }
  get offset(): number { return this.#offset; }
  get length(): number { return this.#length; }
  /** True until commit() or abort(). */
  get open(): boolean { return this.#open; }

  /** A Uint8Array over exactly the claimed bytes. Do not use it after commit() or abort(). */
  get view(): Uint8Array {
    this.#check();
    return this.#view ??= this.#buffer.subarray(this.#offset, this.#offset + this.#length);
  }

  /** Send the claimed bytes (the first `length` of them, if given). */
  commit(length: number = this.#length): void {
    this.#check();
    if (typeof length !== 'number') throw invalidArgType('length', 'of type number', length);
    if (!Number.isInteger(length) || length < 0 || length > this.#length) throw outOfRange('length', `an integer from 0 to ${this.#length}`, length);
    this.#open = false;
    this.#view = null;
    this.#owner.commitClaim(length);
  }

  /** Give the room back; nothing is sent. */
  abort(): void {
    this.#check();
    this.#open = false;
    this.#view = null;
    this.#owner.abortClaim();
  }

  #check(): void {
    if (!this.#open) throw new KbypassError('ERR_KBYPASS_CLAIM_DONE', 'this claim was already committed or aborted');
  }
}
