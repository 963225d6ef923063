/**
 * TLS over a bypassed socket. node:tls wraps any stream in a JSStreamSocket, but for an object that is a
 * net.Socket without a C++ handle it also waits for that socket's 'connect' before reading or writing
 * (TLSSocket._init: `connecting = socket.connecting || !socket._handle`). A bypassed socket has no handle and
 * may be connected already (an accepted one never emits 'connect'), so TLS would wait forever. This wraps
 * TLSSocket.prototype._init once, for every TLS socket of the process, to clear that wait for bypassed sockets
 * that are connected, and to let TLS (not the raw socket) decide when the raw stream ends; for sockets that are
 * not kbypass's it changes nothing.
 */
import tls = require('node:tls');
import { Socket } from './socket';

const kWrapped = Symbol.for('kbypass.tlsInit');

export function installTlsFix(): void {
  const proto = tls.TLSSocket.prototype as unknown as Record<string | symbol, unknown>;
  const init = proto['_init'];
  if (typeof init !== 'function' || proto[kWrapped]) return;
  proto[kWrapped] = true;
  proto['_init'] = function (this: { connecting: boolean }, socket: unknown, wrap: unknown): unknown {
    const r = (init as (s: unknown, w: unknown) => unknown).call(this, socket, wrap);
    if (socket instanceof Socket) {
      if (socket.bypassed && !socket.connecting) this.connecting = false;
      // Addresses: the TLS socket has no handle of its own to ask; the socket under it knows them.
      const self = this as unknown as Record<string, unknown>;
      self['_getpeername'] = () => socket._getpeername();
      self['_getsockname'] = () => socket._getsockname();
      // TLS ends the raw stream itself, after its last records: the raw socket must not end its writing side
      // on its own when the peer's FIN arrives (over TCP, TLS drives the kernel socket and this never comes up).
      socket.allowHalfOpen = true;
    }
    return r;
  };
}
