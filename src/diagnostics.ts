/**
 * Tracing, as undici does: `NODE_DEBUG=kbypass` prints channel lifecycle events (util.debuglog), and
 * diagnostics_channel publishes them for tools:
 * - `kbypass:channel:open`  { channel, role, peer, ringSize }
 * - `kbypass:channel:close` { channel, error }
 * Nothing is published per message.
 */
import { channel as dc } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';

export const debug = debuglog('kbypass');
export const channelOpen = dc('kbypass:channel:open');
export const channelClose = dc('kbypass:channel:close');
