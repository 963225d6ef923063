/**
 * Shared regions: memfd-backed, page-aligned memory mapped into this process and handed to JS as an
 * ArrayBuffer over the mapping (no copy). The fd goes to the peer; the mapping lives until the last JS
 * reference to the ArrayBuffer (or any view of it) is collected — never unmapped on close(), so a view used
 * after close reads stale bytes instead of crashing the process.
 */
import { KbypassError, SystemError } from '../errors';
import { MAP_LOCK, MAP_POPULATE, MEMFD_HUGETLB, native } from '../native/binding';

/** F_SEAL_SHRINK from fcntl.h: once set, nobody can shrink the file under a mapping (no SIGBUS). */
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;

const HUGE_PAGE = 2 * 1024 * 1024;
const PAGE = 4096;

/** Options for a new region. */
export interface RegionOptions {
  /** Back the region with 2 MiB huge pages (needs pages reserved in /proc/sys/vm/nr_hugepages). Default false. */
  readonly hugePages?: boolean;
  /** Pin the region in RAM with mlock (counts against RLIMIT_MEMLOCK). Default false. */
  readonly lock?: boolean;
  /** Pre-fault every page at map time (MAP_POPULATE). Default false. */
  readonly populate?: boolean;
  /** Name shown in /proc/PID/maps as memfd:NAME. Default "kbypass". */
  readonly name?: string;
}

/** A mapped region and, until it is handed over and closed, its fd. */
export interface Region {
  readonly buffer: ArrayBuffer;
  readonly size: number;
  /** The memfd, or -1 once closed. */
  fd: number;
}

/** "RLIMIT_MEMLOCK is N bytes (hard limit M bytes)", for messages about memory that could not be pinned. */
export function memlockLimitText(): string {
  const [soft, hard] = native().memlockLimit();
  const show = (n: number) => (n < 0 ? 'unlimited' : `${n} bytes`);
  return `RLIMIT_MEMLOCK is ${show(soft)} (hard limit ${show(hard)})`;
}

function rethrow(e: unknown, size: number, opts: RegionOptions): never {
  const err = e as { code?: string; errno?: number; syscall?: string; message?: string };
  if (err.syscall === 'mlock' && (err.code === 'ENOMEM' || err.code === 'EPERM')) {
    throw new SystemError(err.code, err.errno ?? 0, 'mlock',
      `cannot lock ${size} bytes in memory: ${memlockLimitText()}. ` +
      'Raise it with `ulimit -l` (or LimitMEMLOCK= in a systemd unit, --ulimit memlock= in Docker), or set lock: false.');
  }
  if (opts.hugePages && (err.code === 'ENOMEM' || err.code === 'EINVAL') && err.syscall !== 'mlock') {
    throw new SystemError(err.code, err.errno ?? 0, err.syscall ?? 'mmap',
      `cannot get ${size} bytes of huge pages (${err.code}): reserve some with ` +
      '`echo N > /proc/sys/vm/nr_hugepages`, or set hugePages: false.');
  }
  if (typeof err.code === 'string' && typeof err.syscall === 'string') {
    throw new SystemError(err.code, err.errno ?? 0, err.syscall, err.message);
  }
  throw e;
}

function mapFlags(opts: RegionOptions): number {
  return (opts.lock ? MAP_LOCK : 0) | (opts.populate ? MAP_POPULATE : 0);
}

/** Round up to the page size the region uses. */
export function regionSizeFor(bytes: number, hugePages: boolean): number {
  const unit = hugePages ? HUGE_PAGE : PAGE;
  return Math.ceil(bytes / unit) * unit;
}

/** Create a sealed memfd of at least `bytes` bytes and map it. */
export function createRegion(bytes: number, opts: RegionOptions = {}): Region {
  const size = regionSizeFor(bytes, opts.hugePages === true);
  const n = native();
  let fd = -1;
  try {
    fd = n.memfdCreate(opts.name ?? 'kbypass', size, opts.hugePages ? MEMFD_HUGETLB : 0);
    const buffer = n.mmapShared(fd, size, mapFlags(opts));
    return { buffer, size, fd };
  } catch (e) {
    if (fd >= 0) n.close(fd);
    return rethrow(e, size, opts);
  }
}

/**
 * Map a region received from a peer. It must be sealed against shrinking (else the peer could truncate it
 * under us and crash this process with SIGBUS) and at least `minBytes` long. The fd is not closed here.
 */
export function attachRegion(fd: number, minBytes: number, opts: RegionOptions = {}): Region {
  const n = native();
  const seals = n.fdSeals(fd);
  if ((seals & F_SEAL_SHRINK) === 0) {
    throw new KbypassError('ERR_KBYPASS_REGION_UNSEALED',
      'the peer\'s shared region is not sealed against shrinking; refusing to map it');
  }
  const size = n.fdSize(fd);
  if (size < minBytes) {
    throw new KbypassError('ERR_KBYPASS_REGION_TOO_SMALL', `the peer's shared region is ${size} bytes; at least ${minBytes} are needed`);
  }
  try {
    return { buffer: n.mmapShared(fd, size, mapFlags(opts)), size, fd };
  } catch (e) {
    return rethrow(e, size, opts);
  }
}
