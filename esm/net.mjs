// ES-module entry for kbypass/net: the same objects as the CommonJS build.
import cjs from '../dist/src/net/index.js';

export const {
  Socket, Stream, Server, createServer, connect, createConnection, config, reloadConfig, parsePorts, endpointOf,
  isIP, isIPv4, isIPv6, BlockList, SocketAddress, getDefaultAutoSelectFamily, setDefaultAutoSelectFamily,
  getDefaultAutoSelectFamilyAttemptTimeout, setDefaultAutoSelectFamilyAttemptTimeout,
} = cjs;
export default cjs;
