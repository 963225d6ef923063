/**
 * Facts about a network interface that a port needs before it opens anything: its index (ENODEV when it does
 * not exist in this network namespace), its receive queues, and its MAC address.
 */
import * as fs from 'node:fs';
import { native } from '../native/binding';
import { SystemError } from '../errors';

export interface InterfaceInfo {
  readonly name: string;
  readonly index: number;
  /** Receive queues (/sys/class/net/IF/queues/rx-*); 1 when sysfs does not say. */
  readonly rxQueues: number;
  /** 'aa:bb:…' or '' when unknown. */
  readonly mac: string;
  readonly mtu: number;
}

/** Look an interface up; a missing one is ENODEV with a message that says where to look. */
export function interfaceInfo(name: string): InterfaceInfo {
  let index: number;
  try {
    index = native().ifIndex(name);
  } catch (e) {
    const err = e as { code?: string; errno?: number };
    if (err.code === 'ENODEV') {
      throw new SystemError('ENODEV', err.errno ?? -19, 'if_nametoindex',
        `no network interface named '${name}' in this network namespace (see \`ip link show\`)`);
    }
    throw e;
  }
  const sys = `/sys/class/net/${name}`;
  let rxQueues = 1;
  try {
    rxQueues = Math.max(1, fs.readdirSync(`${sys}/queues`).filter((q) => q.startsWith('rx-')).length);
  } catch { /* sysfs of another namespace, or none */ }
  let mac = '';
  let mtu = 1500;
  try { mac = fs.readFileSync(`${sys}/address`, 'utf8').trim(); } catch { /* unknown */ }
  try { mtu = Number(fs.readFileSync(`${sys}/mtu`, 'utf8').trim()) || 1500; } catch { /* unknown */ }
  return { name, index, rxQueues, mac, mtu };
}

/** The interface's own counters (/sys/class/net/IF/statistics: rx_packets, rx_dropped, tx_dropped, …), by name.
 *  ENODEV when sysfs has no such interface (in this network namespace); a counter the driver refuses is left out. */
export function interfaceCounters(name: string): Record<string, number> {
  const dir = `/sys/class/net/${name}/statistics`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') {
      throw new SystemError('ENODEV', -19, 'opendir', `no network interface named '${name}' in this network namespace (see \`ip link show\`)`);
    }
    throw e;
  }
  const out: Record<string, number> = {};
  for (const f of names.sort().slice(0, 128)) {
    try {
      const v = Number(fs.readFileSync(`${dir}/${f}`, 'utf8').trim());
      if (Number.isFinite(v)) out[f] = v;
    } catch { /* some drivers refuse a counter (EOPNOTSUPP) */ }
  }
  return out;
}
