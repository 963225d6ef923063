/**
 * Which addresses are this host's, and where the bypass endpoint of a TCP port lives.
 *
 * An endpoint is a Linux abstract Unix socket named `kbypass/net/<port>`. Abstract names belong to a network
 * namespace, as TCP ports do, and vanish with the process that bound them: nothing is left in the file system
 * or /dev/shm when a server dies.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** The abstract socket name ('\0' + name, as node:net writes them) of the endpoint for TCP `port`. */
export function endpointPath(port: number): string {
  return `\0kbypass/net/${port}`;
}

const CACHE_MS = 1000;
let cached: Set<string> | null = null;
let cachedAt = 0;

/** This host's interface addresses (cached for a second: getifaddrs is a system call). */
function hostAddresses(): Set<string> {
  const now = Date.now();
  if (cached === null || now - cachedAt > CACHE_MS) {
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) set.add(a.address.toLowerCase().replace(/%.*$/, ''));
    }
    cached = set;
    cachedAt = now;
  }
  return cached;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address ('::ffff:127.0.0.1'), else the address itself. */
export function unmap(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * The address a connection to `host` would reach, when it is this host's: an IP literal of loopback or of one
 * of this host's interfaces, or 'localhost' (which node:net resolves to 127.0.0.1 or ::1). Null otherwise —
 * other names are left to TCP (no DNS lookup is made for the bypass decision).
 */
export function localTarget(host: string): { address: string; family: 4 | 6 } | null {
  if (host === 'localhost') return { address: '127.0.0.1', family: 4 };
  const h = unmap(host.toLowerCase());
  const family = isIP(h);
  if (family === 4) {
    if (h === '0.0.0.0') return { address: '127.0.0.1', family: 4 }; // Linux connects these to loopback
    if (h.startsWith('127.') || hostAddresses().has(h)) return { address: h, family: 4 };
    return null;
  }
  if (family === 6) {
    if (h === '::' || h === '::1') return { address: '::1', family: 6 };
    if (hostAddresses().has(h)) return { address: h, family: 6 };
    return null;
  }
  return null;
}

/**
 * Would a TCP listener bound to `bound` (its address() address) accept a connection to `target`? The
 * wildcards take any local address of their family (`::` both families, as a dual-stack socket does).
 */
export function listenerCovers(bound: string, target: string, targetFamily: 4 | 6): boolean {
  const b = unmap(bound.toLowerCase());
  if (b === '::') return true;
  if (b === '0.0.0.0') return targetFamily === 4;
  return b === target;
}
