/**
 * The connecting end of the rendezvous: connect to a server's Unix socket, send HELLO with our doorbell, and
 * map the region the server answers with (after checking its seals, size and header).
 */
import { KbypassError, SystemError } from '../errors';
import { native } from '../native/binding';
import { attachRegion } from '../memory/region';
import { checkRegionHeader, regionBytes, ringOffset } from '../ring/layout';
import { Channel } from './channel';
import { encodeHandshake, HANDSHAKE_VERSION, KIND_HELLO, KIND_REJECT, KIND_WELCOME } from './handshake';
import { resolveConnectOptions, socketName, type ConnectOptions } from './options';
import { closeAll, isEventfd, readHandshake } from './rendezvous';

function abortError(signal: AbortSignal): Error {
  const e = new KbypassError('ABORT_ERR', 'The operation was aborted', { cause: signal.reason });
  e.name = 'AbortError';
  return e;
}

/**
 * Connect to a kbypass server listening on `path` ('\0name' for an abstract name). Resolves with an open
 * Channel; rejects with ENOENT / ECONNREFUSED / EACCES (errno codes), ETIMEDOUT, an AbortError, or the code the
 * server refused with.
 */
export function connect(path: string, options?: ConnectOptions): Promise<Channel> {
  let name: ReturnType<typeof socketName>;
  let opts: ReturnType<typeof resolveConnectOptions>;
  try {
    name = socketName(path);
    opts = resolveConnectOptions(options);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise<Channel>((resolve, reject) => {
    const n = native();
    const signal = opts.signal;
    if (signal?.aborted) { reject(abortError(signal)); return; }
    let fd = -1;
    let bell = -1;
    const deadline = Date.now() + opts.timeout;
    let retry: NodeJS.Timeout | null = null;
    let reader: { cancel(): void } | null = null;
    const onAbort = () => {
      if (retry) clearTimeout(retry);
      reader?.cancel();
      closeAll([fd, bell]);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const fail = (e: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      closeAll([fd, bell]);
      reject(e);
    };

    const attempt = () => {
      retry = null;
      try {
        fd = n.unixConnect(name.name, name.abstract);
      } catch (e) {
        // A full backlog is transient: try again until the deadline.
        if ((e as { code?: string }).code === 'EAGAIN' && Date.now() < deadline) { retry = setTimeout(attempt, 1); return; }
        fail(e);
        return;
      }
      try {
        bell = n.eventfd();
        const hello = encodeHandshake({ kind: KIND_HELLO, capacity: opts.ringSize, maxMessage: opts.maxMessageSize, regionBytes: 0, errno: 0, pid: process.pid, code: '' });
        let sent: number;
        try {
          sent = n.sendFds(fd, hello, [bell]);
        } catch (e) {
          // The server may have answered (a REJECT) and hung up before our HELLO went out: read its answer.
          const code = (e as { code?: string }).code;
          if (code !== 'EPIPE' && code !== 'ECONNRESET') throw e;
          sent = hello.length;
        }
        if (sent !== hello.length) throw new SystemError('EAGAIN', -11, 'sendmsg', 'the handshake did not fit in the socket');
      } catch (e) {
        fail(e);
        return;
      }
      reader = readHandshake(fd, Math.max(1, deadline - Date.now()), `connect ${name.display}`, (err, res) => {
        reader = null;
        if (err || !res) { fail(err); return; }
        const { message: m, fds } = res;
        if (m.kind === KIND_REJECT) {
          closeAll(fds);
          fail(new SystemError(m.code || 'ECONNREFUSED', m.errno, 'connect', `connect ${name.display}: the server refused (${m.code || m.errno})`));
          return;
        }
        let memfd = fds[0] ?? -1;
        const peerBell = fds[1] ?? -1;
        closeAll(fds.slice(2));
        try {
          if (m.kind !== KIND_WELCOME || m.version !== HANDSHAKE_VERSION || memfd < 0 || peerBell < 0 || !isEventfd(peerBell)) {
            throw new KbypassError('ERR_KBYPASS_HANDSHAKE', `connect ${name.display}: malformed answer from the server`);
          }
          const region = attachRegion(memfd, regionBytes(4096), { lock: opts.lock, populate: opts.populate });
          const hdr = checkRegionHeader(region.buffer);
          if ('reason' in hdr) throw new KbypassError('ERR_KBYPASS_HANDSHAKE', `connect ${name.display}: shared region rejected: ${hdr.reason}`);
          if (hdr.capacity !== m.capacity || m.maxMessage < 1) throw new KbypassError('ERR_KBYPASS_HANDSHAKE', `connect ${name.display}: the answer does not match the region`);
          closeAll([memfd]);
          memfd = -1; // closed: never close its number again below (it may be reused meanwhile)
          const [pid, uid, gid] = n.peerCred(fd);
          const channel = new Channel({
            role: 'client', buffer: region.buffer, txOffset: ringOffset(hdr.capacity, 1), rxOffset: ringOffset(hdr.capacity, 0),
            capacity: hdr.capacity, socketFd: fd, ownDoorbell: bell, peerDoorbell: peerBell, peer: { pid, uid, gid },
            peerMaxMessage: m.maxMessage, options: opts,
          });
          signal?.removeEventListener('abort', onAbort);
          resolve(channel);
        } catch (e) {
          closeAll([memfd, peerBell]);
          fail(e);
        }
      });
    };
    attempt();
  });
}
