/**
 * One connection-manager socket: 256-byte messages (wire.ts) with the fds that came beside them, read on the
 * event loop or pulled synchronously (`pump`, used when a peer's requester needs a region the peer registered
 * after connecting). EOF or a socket error ends the link once.
 */
import { KbypassError } from '../errors';
import { native, WATCH_DISCONNECT, WATCH_READABLE, type WatchHandle } from '../native/binding';
import { closeAll } from '../channel/rendezvous';
import { CM_MESSAGE_BYTES, decodeCm, encodeCm, type CmMessage } from './wire';

export type LinkHandler = (m: CmMessage, fds: number[]) => void;

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

  constructor(fd: number, onMessage: LinkHandler, onEnd: (err: Error | null) => void) {
    this.fd = fd;
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    this.#watch = native().watch(fd, WATCH_READABLE | WATCH_DISCONNECT, () => this.pump());
  }

  get ended(): boolean { return this.#ended; }

  /** Replace the handlers (a link changes hands from the handshake to the connection). */
  handlers(onMessage: LinkHandler, onEnd: (err: Error | null) => void): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
  }

  /** Keep the event loop alive for this link or not. */
  ref(on: boolean): void { if (this.#watch !== null) native().watchRef(this.#watch, on); }

  /** Read and dispatch every whole message available now (never blocks). */
  pump(): void {
    const n = native();
    while (!this.#ended) {
      let r: number;
      try {
        this.#slots.fill(-1);
        r = n.recvFds(this.fd, this.#buf.subarray(this.#got), this.#slots);
        for (const f of this.#slots) if (f >= 0) this.#fds.push(f);
      } catch (e) {
        this.end(e as Error);
        return;
      }
      if (r < 0) return;
      if (r === 0) { this.end(null); return; }
      this.#got += r;
      if (this.#got < CM_MESSAGE_BYTES) continue;
      this.#got = 0;
      const m = decodeCm(this.#buf);
      const fds = this.#fds;
      this.#fds = [];
      if (typeof m === 'string') { closeAll(fds); this.end(new KbypassError('ERR_KBYPASS_PROTOCOL', m)); return; }
      this.#onMessage(m, fds);
    }
  }

  /** Send one message with fds. */
  send(m: Partial<CmMessage> & { type: number }, fds: number[] = []): void {
    if (this.#ended) throw new KbypassError('ENOTCONN', 'the connection is closed');
    const r = native().sendFds(this.fd, encodeCm(m), fds);
    if (r !== CM_MESSAGE_BYTES) throw new KbypassError('EAGAIN', 'the connection-manager socket is full');
  }

  /** End the link: stop watching, close the socket and any fds not handed over; report once. */
  end(err: Error | null): void {
    if (this.#ended) return;
    this.#ended = true;
    const n = native();
    if (this.#watch !== null) { n.watchStop(this.#watch); this.#watch = null; }
    closeAll(this.#fds);
    this.#fds = [];
    try { n.close(this.fd); } catch { /* gone */ }
    this.#onEnd(err);
  }
}
