/**
 * The XDP redirect program of an interface: one XSKMAP, one program (bpf_redirect_map on the packet's receive
 * queue, XDP_PASS when that queue has no socket) and one BPF link, shared by every AF_XDP port this thread opens
 * on the interface and released with the last of them. (Worker threads each have their own: the kernel allows one
 * program per interface, so AF_XDP ports of one interface belong in one thread.) The link detaches the program when it is closed, and the
 * kernel closes it when the process dies, so nothing stays attached after us.
 */
import {
  XDP_PROG_REDIRECT, native,
} from '../native/binding';
import { XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE } from './xdp-layout';
import { SystemError } from '../errors';
import { isNotSupported, setupError } from './port-errors';

/** Where the program runs. */
export type AttachedMode = 'native' | 'skb';

interface Attachment {
  mapFd: number;
  progFd: number;
  linkFd: number;
  mode: AttachedMode;
  /** Why native mode was not used ('' when it was, or when skb was asked for). */
  reason: string;
  queues: Set<number>;
}

const attached = new Map<number, Attachment>();

function closeQuietly(fd: number): void {
  if (fd >= 0) try { native().close(fd); } catch { /* already gone */ }
}

/** A handle on the interface's program for one socket on one queue. */
export class XdpProgram {
  readonly ifindex: number;
  readonly queue: number;
  readonly mode: AttachedMode;
  /** Why the program runs in skb mode when native was possible to ask for ('' otherwise). */
  readonly reason: string;
  #released = false;

  private constructor(ifindex: number, queue: number, a: Attachment) {
    this.ifindex = ifindex;
    this.queue = queue;
    this.mode = a.mode;
    this.reason = a.reason;
  }

  /** Refuse, before any socket exists, what attach() would refuse for this process's own reasons: the queue is
   *  already one of ours, or our program on the interface runs in the other mode. */
  static check(ifname: string, ifindex: number, queue: number, want: 'native' | 'skb' | 'auto'): void {
    const a = attached.get(ifindex);
    if (a === undefined) return;
    if (want !== 'auto' && a.mode !== want) {
      throw new SystemError('EBUSY', -16, 'bpf',
        `xdp-attach: a port of this process (thread) already runs ${ifname}'s XDP program in ${a.mode} mode: ` +
        `use xdpMode: '${a.mode}' or 'auto' for its other queues`);
    }
    if (a.queues.has(queue)) {
      throw new SystemError('EBUSY', -16, 'bind',
        `xsk-bind: queue ${queue} of ${ifname} is already bound by a port of this process (thread): close that one first`);
    }
  }

  /** True when a port of this process (thread) has `queue` of `ifindex`. */
  static holds(ifindex: number, queue: number): boolean {
    return attached.get(ifindex)?.queues.has(queue) === true;
  }

  /**
   * Attach (or reuse) the program on `ifindex` and put `xskFd` at `queue` in its map.
   * `want`: 'native', 'skb', or 'auto' (native, then skb when the driver refuses).
   */
  static attach(ifname: string, ifindex: number, queue: number, rxQueues: number, xskFd: number,
    want: 'native' | 'skb' | 'auto'): XdpProgram {
    const n = native();
    XdpProgram.check(ifname, ifindex, queue, want);
    let a = attached.get(ifindex);
    if (a === undefined) {
      let mapFd = -1;
      let progFd = -1;
      try {
        try { mapFd = n.bpfXskmapCreate(Math.max(64, rxQueues)); } catch (e) { throw setupError(e, 'bpf-map', { ifname, queue }); }
        try { progFd = n.xdpProgLoad(XDP_PROG_REDIRECT, mapFd); } catch (e) { throw setupError(e, 'bpf-prog', { ifname, queue }); }
        let linkFd = -1;
        let mode: AttachedMode = 'native';
        let reason = '';
        if (want !== 'skb') {
          try {
            linkFd = n.xdpLinkCreate(progFd, ifindex, XDP_FLAGS_DRV_MODE);
          } catch (e) {
            const code = (e as { code?: string }).code;
            if (want === 'native' || (!isNotSupported(code) && code !== 'EINVAL')) throw setupError(e, 'xdp-attach', { ifname, queue });
            reason = `native XDP refused by the driver of ${ifname} (${isNotSupported(code) ? 'EOPNOTSUPP' : code}): using skb mode`;
          }
        }
        if (linkFd < 0) {
          mode = 'skb';
          try { linkFd = n.xdpLinkCreate(progFd, ifindex, XDP_FLAGS_SKB_MODE); } catch (e) { throw setupError(e, 'xdp-attach', { ifname, queue }); }
        }
        a = { mapFd, progFd, linkFd, mode, reason, queues: new Set() };
        attached.set(ifindex, a);
      } catch (e) {
        closeQuietly(progFd);
        closeQuietly(mapFd);
        throw e;
      }
    }
    try {
      n.bpfMapUpdate(a.mapFd, queue, xskFd);
    } catch (e) {
      if (a.queues.size === 0) XdpProgram.#detach(ifindex, a);
      throw setupError(e, 'xskmap-update', { ifname, queue });
    }
    a.queues.add(queue);
    return new XdpProgram(ifindex, queue, a);
  }

  static #detach(ifindex: number, a: Attachment): void {
    attached.delete(ifindex);
    closeQuietly(a.linkFd);
    closeQuietly(a.progFd);
    closeQuietly(a.mapFd);
  }

  /** Take this socket out of the map; the last one detaches the program. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const a = attached.get(this.ifindex);
    if (a === undefined) return;
    a.queues.delete(this.queue);
    try { native().bpfMapDelete(a.mapFd, this.queue); } catch { /* the socket's close removes it too */ }
    if (a.queues.size === 0) XdpProgram.#detach(this.ifindex, a);
  }
}
