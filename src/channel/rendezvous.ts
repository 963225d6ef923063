/**
 * One handshake message (handshake.ts) read from a non-blocking Unix socket on the event loop: bytes are
 * gathered until all 64 are in, with the fds that came beside them, under a deadline. Used by both ends.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { KbypassError, SystemError } from '../errors';
import { native, WATCH_DISCONNECT, WATCH_READABLE, type WatchHandle } from '../native/binding';
import { HANDSHAKE_BYTES, decodeHandshake, type HandshakeMessage } from './handshake';

export type HandshakeResult = { message: HandshakeMessage; fds: number[] };

/** Close every fd in the list (ignoring errors: used on failure paths). */
export function closeAll(fds: readonly number[]): void {
  const n = native();
  for (const fd of fds) {
    if (fd >= 0) {
      try { n.close(fd); } catch { /* already gone */ }
    }
  }
}

/**
 * True if fd is a non-blocking eventfd: ringing it can then neither write into some other file a hostile peer
 * passed, nor block (a blocking eventfd whose counter the peer has run up to its maximum would stop our write).
 */
export function isEventfd(fd: number): boolean {
  try {
    if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:[eventfd]') return false;
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    return flags !== null && (parseInt(flags[1]!, 8) & O_NONBLOCK) !== 0;
  } catch {
    return false;
  }
}

const O_NONBLOCK = 0o4000;

/**
 * Wait for one handshake message on `fd`. Settles once: with the message and the fds received (the caller owns
 * them), or with an error (any fds received are closed). `cancel()` stops waiting without settling.
 */
export function readHandshake(fd: number, timeoutMs: number, what: string,
  done: (err: Error | null, result?: HandshakeResult) => void): { cancel(): void } {
  const n = native();
  const buf = new Uint8Array(HANDSHAKE_BYTES);
  const fdSlots = new Int32Array(8);
  const fds: number[] = [];
  let got = 0;
  let watch: WatchHandle | null = null;
  let settled = false;

  const finish = (err: Error | null, result?: HandshakeResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (watch) { n.watchStop(watch); watch = null; }
    if (err) closeAll(fds);
    done(err, result);
  };

  const onReadable = (status: number): void => {
    if (settled) return;
    // status < 0 (libuv reports POLLERR as EBADF and stops the poll): the peer may have answered and then
    // closed with our own message unread (a REJECT before reading HELLO), which resets the socket. What it sent
    // is still queued ahead of the error, so read it first; the error shows once the queue is empty.
    try {
      while (got < HANDSHAKE_BYTES) {
        fdSlots.fill(-1);
        const r = n.recvFds(fd, buf.subarray(got), fdSlots);
        for (const f of fdSlots) if (f >= 0) fds.push(f);
        if (r < 0) { // EAGAIN: wait for more, unless the poll has failed
          if (status < 0) finish(new SystemError('ECONNRESET', -104, 'recvmsg', `${what}: the socket failed (${status})`));
          return;
        }
        if (r === 0) { finish(new SystemError('ECONNRESET', -104, 'recvmsg', `${what}: the peer closed the socket during the handshake`)); return; }
        got += r;
      }
    } catch (e) {
      finish(e as Error);
      return;
    }
    const message = decodeHandshake(buf);
    if (typeof message === 'string') { finish(new KbypassError('ERR_KBYPASS_HANDSHAKE', `${what}: ${message}`)); return; }
    finish(null, { message, fds: fds.splice(0) });
  };

  const timer = setTimeout(() => {
    finish(new SystemError('ETIMEDOUT', -110, 'connect', `${what}: no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  try {
    watch = n.watch(fd, WATCH_READABLE | WATCH_DISCONNECT, onReadable);
  } catch (e) {
    finish(e as Error);
  }
  return { cancel: () => { settled = true; clearTimeout(timer); if (watch) { n.watchStop(watch); watch = null; } closeAll(fds); } };
}
