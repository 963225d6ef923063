/**
 * The native core's ABI: the only place that knows the addon's shape.
 *
 * The C side (native/*.c) takes primitives only (integers, strings, Uint8Array/Int32Array views) and never
 * validates user input: every argument is checked in TypeScript before it gets here. It only sets things up
 * and makes system calls; nothing here is called once per message.
 *
 * Failures throw an Error with `code` (the errno name, e.g. 'EACCES'), `errno` (the negative errno number, as
 * Node does), and `syscall` (e.g. 'memfd_create').
 *
 * Loader search order (fixed): `$KBYPASS_NATIVE` if set, then `build/Release/kbypass.node`, then
 * `build/Debug/kbypass.node`, relative to the package root.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { KbypassError } from '../errors';

/** Flags for {@link NativeBinding.memfdCreate}. */
export const MEMFD_HUGETLB = 1;

/** Flags for {@link NativeBinding.mmapShared}. */
export const MAP_LOCK = 1;
export const MAP_POPULATE = 2;

/** Flags for {@link NativeBinding.mmapAnon} (MAP_LOCK above pins it too). */
export const ANON_HUGETLB = 4;

/** Ring ids for the AF_XDP calls (native/xsk.h enum kb_xsk_ring). */
export const XSK_RING_RX = 0;
export const XSK_RING_TX = 1;
export const XSK_RING_FILL = 2;
export const XSK_RING_COMP = 3;

/** Programs {@link NativeBinding.xdpProgLoad} builds (native/xsk.h enum kb_xdp_prog). */
export const XDP_PROG_REDIRECT = 0;
export const XDP_PROG_DROP = 1;
export const XDP_PROG_PASS = 2;

/** Events for {@link NativeBinding.watch} (same values as libuv's UV_READABLE / UV_WRITABLE / UV_DISCONNECT). */
export const WATCH_READABLE = 1;
export const WATCH_WRITABLE = 2;
export const WATCH_DISCONNECT = 4;

/** Opaque handle of an fd watcher (a libuv uv_poll_t). */
export interface WatchHandle { readonly __watchHandle: unique symbol }

export interface NativeBinding {
  /** memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING[|MFD_HUGETLB]), ftruncate(size), then seals
   *  F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL so a peer can never shrink it under our mapping (SIGBUS). Returns fd. */
  memfdCreate(name: string, size: number, flags: number): number;
  /** fstat(fd).st_size */
  fdSize(fd: number): number;
  /** fcntl(fd, F_GET_SEALS) */
  fdSeals(fd: number): number;
  /** mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED[|MAP_POPULATE], fd, 0) [+ mlock when MAP_LOCK].
   *  Returns an external ArrayBuffer over the mapping (no copy); the mapping is munmapped by the ArrayBuffer's
   *  finalizer only, when its last JS reference is collected. The fd may be closed right after. */
  mmapShared(fd: number, size: number, flags: number): ArrayBuffer;
  /** fcntl(fd, F_DUPFD_CLOEXEC, 0): a second descriptor for the same open file. */
  dup(fd: number): number;
  /** close(fd); EBADF is reported as an error. */
  close(fd: number): void;
  /** mallopt(M_MMAP_THRESHOLD, mmapBytes) and mallopt(M_TRIM_THRESHOLD, trimBytes) (glibc); false elsewhere. */
  mallocTune(trimBytes: number, mmapBytes: number): boolean;
  /** getrlimit(RLIMIT_MEMLOCK): [soft, hard] in bytes; -1 means unlimited. */
  memlockLimit(): [number, number];

  /** mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_POPULATE, fd, offset) of a socket's ring (AF_XDP,
   *  AF_PACKET): an external ArrayBuffer, munmapped by its finalizer only (the ring's pages outlive the socket). */
  mmapSocket(fd: number, size: number, offset: number): ArrayBuffer;
  /** Private anonymous memory (not inherited by fork: MADV_DONTFORK), pre-faulted (MAP_POPULATE) [+ mlock when MAP_LOCK, 2 MiB pages when ANON_HUGETLB]:
   *  an AF_XDP UMEM. An external ArrayBuffer, munmapped by its finalizer only. */
  mmapAnon(size: number, flags: number): ArrayBuffer;

  /** Detach an ArrayBuffer made by mmapShared/mmapSocket/mmapAnon (its views read as empty from then on) and
   *  munmap it now. Only for memory no user code can hold (an AF_XDP ring keeps its queue bound while mapped).
   *  False when it is not ours or already unmapped. */
  unmapNow(buffer: ArrayBuffer): boolean;

  /** socket(AF_XDP, SOCK_RAW|SOCK_CLOEXEC, 0). Returns fd. */
  xskSocket(): number;
  /** setsockopt(XDP_UMEM_REG) over the whole ArrayBuffer (page-aligned memory from mmapAnon). */
  xskUmemReg(fd: number, umem: ArrayBuffer, chunkSize: number, headroom: number): void;
  /** setsockopt of one ring's size (XSK_RING_*; entries a power of two). */
  xskRingSet(fd: number, ring: number, entries: number): void;
  /** setsockopt(XDP_MAX_TX_SKB_BUDGET): frames one copy-mode kick may send (32 to the TX ring's size). False when
   *  the kernel has no such option (before Linux 6.17: 32 per kick). */
  xskTxBudget(fd: number, budget: number): boolean;
  /** getsockopt(XDP_MMAP_OFFSETS) into out[16]: producer, consumer, desc, flags for RX, TX, FILL, COMPLETION. */
  xskOffsets(fd: number, out: Float64Array): void;
  /** bind(sockaddr_xdp{ifindex, queue, flags, sharedFd}); sharedFd < 0 for none. */
  xskBind(fd: number, ifindex: number, queue: number, flags: number, sharedFd: number): void;
  /** getsockopt(XDP_STATISTICS) into out[6] (rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full,
   *  rx_fill_ring_empty_descs, tx_ring_empty_descs). Returns how many the kernel gave. */
  xskStats(fd: number, out: Float64Array): number;
  /** getsockopt(XDP_OPTIONS).flags (XDP_OPTIONS_ZEROCOPY = 1 when zero-copy is in effect). */
  xskOptions(fd: number): number;
  /** bpf(BPF_MAP_CREATE) of an XSKMAP (u32 → socket). Returns fd. */
  bpfXskmapCreate(maxEntries: number): number;
  /** bpf(BPF_PROG_LOAD) of one of the hand-assembled XDP programs (XDP_PROG_*). Returns fd. */
  xdpProgLoad(kind: number, mapFd: number): number;
  /** bpf(BPF_MAP_UPDATE_ELEM) map[key] = value (u32s; for an XSKMAP the value is a socket fd). */
  bpfMapUpdate(mapFd: number, key: number, value: number): void;
  /** bpf(BPF_MAP_DELETE_ELEM) map[key]. */
  bpfMapDelete(mapFd: number, key: number): void;
  /** bpf(BPF_LINK_CREATE, BPF_XDP) with XDP_FLAGS_SKB_MODE (2) or XDP_FLAGS_DRV_MODE (4). Returns the link fd:
   *  the program stays attached while it is open. */
  xdpLinkCreate(progFd: number, ifindex: number, flags: number): number;
  /** sendto(fd, NULL, 0, MSG_DONTWAIT): start transmission of a TX ring. Returns ≥ 0, or a negative errno
   *  (never throws: data path). Called once per batch. */
  sendKick(fd: number): number;
  /** recvfrom(fd, NULL, 0, MSG_DONTWAIT): wake an AF_XDP receive side. Returns ≥ 0 or a negative errno. */
  recvKick(fd: number): number;
  /** if_nametoindex(name); ENODEV when there is no such interface in this network namespace. */
  ifIndex(name: string): number;

  /** socket(AF_PACKET, SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC, htons(protocol)). Returns fd. */
  packetSocket(protocol: number): number;
  /** setsockopt(SOL_PACKET, option, int value). */
  packetSetInt(fd: number, option: number, value: number): void;
  /** setsockopt(SOL_PACKET, PACKET_RX_RING|PACKET_TX_RING, tpacket_req3 from req[7]). */
  packetRing(fd: number, option: number, req: Int32Array): void;
  /** bind(sockaddr_ll{ifindex, htons(protocol)}). */
  packetBind(fd: number, ifindex: number, protocol: number): void;
  /** setsockopt(SO_ATTACH_FILTER, `ret #0`): the socket accepts no more frames. */
  packetDropAll(fd: number): void;
  /** getsockopt(PACKET_STATISTICS) into out[3]: tp_packets, tp_drops, tp_freeze_q_cnt since the last call. */
  packetStats(fd: number, out: Float64Array): void;

  /** eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC). Returns fd. */
  eventfd(): number;
  /** write(fd, 1 as uint64). EAGAIN (counter saturated) is not an error: the peer will wake anyway. */
  eventfdSignal(fd: number): void;
  /** read(fd) until EAGAIN; returns the counter value read (0 if none). */
  eventfdDrain(fd: number): number;

  /** socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC); bind; chmod(path, mode) unless abstract; listen.
   *  `abstract` = Linux abstract namespace (name without the leading NUL). Returns the listening fd. */
  unixListen(name: string, abstract: boolean, mode: number, backlog: number): number;
  /** accept4(fd, SOCK_NONBLOCK|SOCK_CLOEXEC). Returns the new fd, or -1 when nothing is pending (EAGAIN). */
  unixAccept(fd: number): number;
  /** socket + connect (non-blocking socket; connect on AF_UNIX completes at once or fails, e.g. ECONNREFUSED,
   *  ENOENT, EACCES, EAGAIN when the backlog is full). Returns fd. */
  unixConnect(name: string, abstract: boolean): number;
  /** getsockopt(SO_PEERCRED): [pid, uid, gid] */
  peerCred(fd: number): [number, number, number];
  /** sendmsg(fd, data, SCM_RIGHTS fds, MSG_NOSIGNAL|MSG_DONTWAIT). Returns bytes sent, or -1 on EAGAIN. */
  sendFds(fd: number, data: Uint8Array, fds: number[]): number;
  /** recvmsg(fd, MSG_DONTWAIT|MSG_CMSG_CLOEXEC). Fills `data`, writes received fds into `fdsOut` (unused slots
   *  set to -1; any fds beyond its length, or arriving with MSG_CTRUNC, are closed at once so none leak).
   *  Returns bytes read (0 = EOF), or -1 on EAGAIN. Other failures (ECONNRESET, …) are thrown. */
  recvFds(fd: number, data: Uint8Array, fdsOut: Int32Array): number;
  /** recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT): false when the peer has gone (EOF, ECONNRESET), true otherwise. */
  peerAlive(fd: number): boolean;
  /** shutdown(fd, SHUT_WR); ENOTCONN ignored. */
  shutdownWrite(fd: number): void;

  /** Start a libuv uv_poll_t on fd for `events`; `callback(status, events)` runs on the event loop for each
   *  readiness (status < 0 is a negative errno). The handle keeps the loop alive unless unref'd. */
  watch(fd: number, events: number, callback: (status: number, events: number) => void): WatchHandle;
  /** Change the events watched (uv_poll_start again). */
  watchUpdate(handle: WatchHandle, events: number): void;
  /** uv_ref / uv_unref */
  watchRef(handle: WatchHandle, ref: boolean): void;
  /** uv_poll_stop + uv_close; the callback is never called again. Idempotent. Must be called before close(fd). */
  watchStop(handle: WatchHandle): void;
}

const root = path.resolve(__dirname, '..', '..', '..');

function candidates(): string[] {
  const list: string[] = [];
  const env = process.env['KBYPASS_NATIVE'];
  if (env) list.push(path.resolve(env));
  list.push(path.join(root, 'build', 'Release', 'kbypass.node'));
  list.push(path.join(root, 'build', 'Debug', 'kbypass.node'));
  return list;
}

let cached: NativeBinding | undefined;

/** Load the addon (once), searching the fixed order above; a clear error when none is built. */
export function native(): NativeBinding {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new KbypassError('ERR_KBYPASS_UNSUPPORTED_PLATFORM',
      `kbypass needs Linux (memfd, eventfd, SCM_RIGHTS); this is ${process.platform}`);
  }
  const tried = candidates();
  for (const file of tried) {
    if (!fs.existsSync(file)) continue;
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(file) as NativeBinding;
    return cached;
  }
  throw new KbypassError('ERR_KBYPASS_NATIVE_MISSING',
    `kbypass's native core is not built. Looked in:\n  ${tried.join('\n  ')}\n` +
    `Build it with \`npm rebuild kbypass\` (or \`npx node-gyp rebuild\` in ${root}); ` +
    'it needs python3, make and a C compiler.');
}
