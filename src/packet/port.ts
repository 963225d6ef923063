/**
 * openPort: AF_XDP or PACKET_MMAP on one interface queue, chosen per `options.mode` ('auto': AF_XDP, else
 * PACKET_MMAP, with the reason AF_XDP could not be used in `port.fallbackReason`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { debug } from '../diagnostics';
import { interfaceInfo } from './interface';
import { resolvePortOptions, type PortOptions } from './options';
import { PacketPort } from './packet-port';
import { XdpPort } from './xdp-port';
import { XdpProgram } from './xdp-program';

/** A port of either kind. */
export type Port = XdpPort | PacketPort;

/** How long to retry binding a queue that reports EBUSY (a socket closed just before is torn down
 *  asynchronously by the kernel). */
const BUSY_RETRY_MS = 500;

async function openXdp(o: ReturnType<typeof resolvePortOptions>, info: ReturnType<typeof interfaceInfo>): Promise<XdpPort> {
  const deadline = Date.now() + BUSY_RETRY_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, 100)) {
    try {
      return XdpPort.open(o, info);
    } catch (e) {
      // Only the kernel's EBUSY from bind() can clear by itself (a socket closed just before, still being torn
      // down); a queue held by this process, or another XDP program on the interface, will not.
      const err = e as { code?: string; syscall?: string };
      if (err.code !== 'EBUSY' || err.syscall !== 'bind' || XdpProgram.holds(info.index, o.queue) || Date.now() >= deadline) throw e;
      await sleep(wait);
    }
  }
}

/**
 * Open a port on `options.ifname`, queue `options.queue`.
 * Rejects with the errno `code` of the step that failed (ENODEV, EPERM, ENOBUFS, EBUSY, EOPNOTSUPP, …) and a
 * message that says what to do, or with Node's ERR_INVALID_ARG_* for bad options.
 */
export async function openPort(options: PortOptions): Promise<Port> {
  const o = resolvePortOptions(options);
  const port = await open(o);
  if (o.publishStats) port.publishStats();
  return port;
}

async function open(o: ReturnType<typeof resolvePortOptions>): Promise<Port> {
  const info = interfaceInfo(o.ifname);
  if (o.mode === 'packet') return PacketPort.open(o, info);
  if (o.mode === 'xdp') return openXdp(o, info);
  try {
    const port = await openXdp(o, info);
    debug('packet: %s queue %d via AF_XDP (%s mode, %s)', o.ifname, o.queue, port.xdpMode ?? 'tx-only', port.zeroCopy ? 'zero-copy' : 'copy');
    return port;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (typeof err.code !== 'string' || err.code.startsWith('ERR_INVALID')) throw e;
    const port = PacketPort.open(o, info);
    port.fallbackReason = `AF_XDP unavailable: ${err.message ?? err.code}`;
    debug('packet: %s via PACKET_MMAP: %s', o.ifname, port.fallbackReason);
    return port;
  }
}
