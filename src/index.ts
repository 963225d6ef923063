/**
 * kbypass: kernel-bypass networking for Node.js.
 *
 * This entry point: message channels between processes on one host, over shared memory, with no system call
 * per message. See README.md and docs/ARCHITECTURE.md.
 */
export { listen, Server } from './channel/server';
export { connect } from './channel/connect';
export { Channel, type ChannelState } from './channel/channel';
export { Claim } from './channel/claim';
export type { MessageHandler } from './ring/consumer';
export type { ChannelOptions, ConnectOptions, ServerOptions, IdleOptions, PeerCredentials } from './channel/options';
export { KbypassError, SystemError } from './errors';
export { createRegion, attachRegion, type Region, type RegionOptions } from './memory/region';
