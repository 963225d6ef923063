/**
 * kbypass/preload: `node --require kbypass/preload app.js` (or `node --import kbypass/preload app.mjs`) puts
 * kbypass/net under an unmodified program. Set KBYPASS=off to load it and change nothing.
 *
 * What it patches, and why each is needed:
 * - `net.Socket` / `net.Stream`: a constructor making kbypass Sockets for `new net.Socket()`. It stays callable
 *   without `new` on a subclass's `this` (tls.TLSSocket initialises itself that way) and `instanceof` still
 *   takes every node:net socket.
 * - `net.connect` / `net.createConnection`, and `http.Agent.prototype.createConnection` (which captured
 *   net.createConnection when http loaded).
 * - `tls.connect` (https.Agent calls it): a local bypassable target gets a kbypass socket under the TLS.
 * - `net.Server.prototype` listen / close / ref / unref: every server class (http, https, tls, the program's
 *   own subclasses) publishes an endpoint while it listens on a TCP port.
 * - ES modules: `module.syncBuiltinESMExports()`, so `import { connect } from 'node:net'` sees the above.
 */
// The modules' own export objects (not import-star copies): the patches must land where other code looks.
import http = require('node:http');
import net = require('node:net');
import tls = require('node:tls');
import { syncBuiltinESMExports } from 'node:module';
import { config, trace } from './config';
import { connect } from './connect';
import { hookServer, refServer, unpublish } from './endpoint';
import { bypassTarget } from './open';
import { normalizeConnectArgs, Socket } from './socket';
import { installTlsFix } from './tls-fix';

const kInstalled = Symbol.for('kbypass.preload');

function install(): void {
  const g = globalThis as { [kInstalled]?: boolean };
  if (g[kInstalled]) return;
  g[kInstalled] = true;
  if (!config().enabled) { trace('KBYPASS is off: nothing patched'); return; }

  const NodeSocket = net.Socket;
  const NodeServer = net.Server;
  const netExports = net as unknown as Record<string, unknown>;

  // new net.Socket() → a kbypass Socket; NodeSocket.call(this) from a subclass (TLSSocket) → node's own.
  const KSocket = function Socket(this: unknown, ...args: unknown[]): unknown {
    if (new.target === undefined) {
      if (this instanceof NodeSocket) return Reflect.apply(NodeSocket, this, args);
      return Reflect.construct(SocketClass, args);
    }
    return Reflect.construct(SocketClass, args, new.target);
  } as unknown as typeof Socket;
  const SocketClass = Socket;
  Object.setPrototypeOf(KSocket, SocketClass);
  Object.defineProperty(KSocket, 'prototype', { value: SocketClass.prototype });
  Object.defineProperty(KSocket, Symbol.hasInstance, { value: (x: unknown) => x instanceof NodeSocket });

  netExports['Socket'] = KSocket;
  netExports['Stream'] = KSocket;
  netExports['connect'] = connect;
  netExports['createConnection'] = connect;
  (http.Agent.prototype as unknown as { createConnection: unknown }).createConnection = connect;

  const tlsConnect = tls.connect;
  const tlsExports = tls as unknown as Record<string, unknown>;
  tlsExports['connect'] = function connectTls(...args: unknown[]): tls.TLSSocket {
    const [options, cb] = tlsArgs(args);
    if (!options['socket'] && !options['path'] && typeof bypassTarget(options) === 'object') {
      const socket = new Socket(options);
      socket.connect({ ...options });
      const t = Reflect.apply(tlsConnect, tls, cb ? [{ ...options, socket }, cb] : [{ ...options, socket }]) as tls.TLSSocket;
      // TLS over a given socket leaves it to its owner: end it with the TLS socket.
      t.once('close', () => socket.destroy());
      // node applies options.timeout only to a socket it makes itself.
      if (typeof options['timeout'] === 'number' && options['timeout'] > 0) t.setTimeout(options['timeout']);
      return t;
    }
    return Reflect.apply(tlsConnect, tls, args) as tls.TLSSocket;
  };

  const proto = NodeServer.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const listen = proto['listen']!;
  const close = proto['close']!;
  const ref = proto['ref']!;
  const unref = proto['unref']!;
  proto['listen'] = function (this: net.Server, ...args: unknown[]) { hookServer(this); return listen.apply(this, args); };
  proto['close'] = function (this: net.Server, ...args: unknown[]) { unpublish(this); return close.apply(this, args); };
  proto['ref'] = function (this: net.Server) { refServer(this, true); return ref.call(this); };
  proto['unref'] = function (this: net.Server) { refServer(this, false); return unref.call(this); };

  installTlsFix();
  syncBuiltinESMExports();
  trace('preload installed');
}

/** tls.connect's argument forms: (options[, cb]) and (port[, host][, options][, cb]). */
function tlsArgs(args: unknown[]): [Record<string, unknown>, ((...a: unknown[]) => void) | undefined] {
  const n = normalizeConnectArgs(args);
  const options = { ...n[0] };
  if (args[1] !== null && typeof args[1] === 'object') Object.assign(options, args[1]);
  else if (args[2] !== null && typeof args[2] === 'object') Object.assign(options, args[2]);
  const cb = n[1];
  return [options, typeof cb === 'function' ? cb as (...a: unknown[]) => void : undefined];
}

install();
