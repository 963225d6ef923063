/** kbypass/net's connect / createConnection: node:net's, making a kbypass/net Socket. */
import { normalizeConnectArgs, Socket } from './socket';

/**
 * As net.connect(options[, connectListener]), net.connect(port[, host][, connectListener]) and
 * net.connect(path[, connectListener]): a local TCP target whose port has a kbypass endpoint is reached over
 * shared memory, anything else over TCP (or the pipe).
 */
export function connect(...args: unknown[]): Socket {
  const [options, cb] = normalizeConnectArgs(args);
  const socket = new Socket(options);
  const timeout = options['timeout'];
  if (timeout) socket.setTimeout(timeout as number);
  return socket.connect(options, cb);
}

export const createConnection = connect;
