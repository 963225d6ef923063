/**
 * kbypass/net: node:net, with connections between processes of this host carried over shared memory.
 *
 * Everything node:net exports is here; Socket, Stream, Server, createServer, connect and createConnection are
 * kbypass's (subclasses of node's, so `instanceof net.Socket` holds). docs/NET.md has the details.
 */
import * as net from 'node:net';
import { Socket } from './socket';
import { Server, createServer } from './server';
import { connect, createConnection } from './connect';
import { installTlsFix } from './tls-fix';

installTlsFix();

export { Socket, Server, createServer, connect, createConnection };
export const Stream = Socket;
export type { AddressInfo } from './socket';
export { config, reloadConfig, parsePorts, type NetConfig } from './config';
export { endpointOf } from './endpoint';

export const {
  isIP, isIPv4, isIPv6, BlockList, SocketAddress,
  getDefaultAutoSelectFamily, setDefaultAutoSelectFamily,
  getDefaultAutoSelectFamilyAttemptTimeout, setDefaultAutoSelectFamilyAttemptTimeout,
} = net;
