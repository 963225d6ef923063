/**
 * kbypass/net's Server: node:net's Server, which also publishes a kbypass endpoint for its TCP port while it
 * listens (endpoint.ts). Connections from kbypass clients on this host come in as bypassed Sockets; everyone
 * else connects over TCP as before.
 */
import * as net from 'node:net';
import { hookServer, refServer, unpublish } from './endpoint';

const NodeServer: typeof net.Server = net.Server;

export class Server extends NodeServer {
  constructor(options?: net.ServerOpts | ((socket: net.Socket) => void), connectionListener?: (socket: net.Socket) => void) {
    super(options as net.ServerOpts, connectionListener);
    hookServer(this);
  }

  /** Stop accepting (over TCP and kbypass); 'close' follows once every connection has ended. */
  override close(callback?: (err?: Error) => void): this {
    unpublish(this);
    return super.close(callback);
  }

  override ref(): this {
    refServer(this, true);
    return super.ref();
  }

  override unref(): this {
    refServer(this, false);
    return super.unref();
  }
}

/** As net.createServer: a kbypass/net Server. */
export function createServer(options?: net.ServerOpts | ((socket: net.Socket) => void), connectionListener?: (socket: net.Socket) => void): Server {
  return new Server(options, connectionListener);
}
