/**
 * Published port statistics: each open port keeps one small file up to date so that another process
 * (`kbypass stat`) can show live counters without talking to it — the way Aeron's AeronStat reads the counters a
 * running media driver publishes.
 *
 * Where: one directory, `/dev/shm/kbypass-stats` unless `$KBYPASS_STATS_DIR` (or an argument) says otherwise,
 * created mode 0700 when missing. One file per open port, `<pid>-<n>.json` (n counts the ports this process has
 * opened), mode 0600. Nothing else in the directory is read, except `.<pid>-<n>.json.tmp`: a write in progress.
 *
 * Format (version 1): one JSON object, UTF-8, at most {@link MAX_FILE_BYTES} bytes —
 *
 * ```
 *   version         1 (a reader skips any other version)
 *   pid             the process that has the port open
 *   startedAt       when the port began publishing, ms since the epoch
 *   mode            'xdp' | 'packet'
 *   ifname, ifindex the interface
 *   queue           its queue
 *   xdpMode         'native' | 'skb' (where the XDP program runs); null for PACKET_MMAP and TX-only AF_XDP ports
 *   zeroCopy        true when the AF_XDP socket runs in zero-copy mode
 *   fallbackReason  why a faster configuration was not used ('' when none)
 *   updatedAt       when these counters were read, ms since the epoch
 *   stats           PortStats (port-base.ts): rxPackets, rxBytes, txSubmitted, txCompleted, txBytes, held,
 *                   drops { reason: count }, kernel { counter: value }
 * ```
 *
 * Writes are atomic: the content goes to `.<pid>-<n>.json.tmp` in the same directory and is renamed over the
 * file, so a reader sees the previous content or the new one, never part of either. The name is claimed with
 * link(2), which fails when it exists, so two publishers never share a file. Publishing is written once a second,
 * never per packet, and it never stops a port from working: a directory that cannot be used makes
 * {@link StatsPublisher.open} return null and a failed write is skipped (both say why with `NODE_DEBUG=kbypass`).
 *
 * Files of processes that exited without closing their ports (SIGKILL, a crash) stay until a reader removes
 * them (`readPublishedPorts(dir, { removeStale: true })`, which `kbypass stat` does); a process that exits
 * normally removes its own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { debug } from '../diagnostics';
import { invalidArgType } from '../errors';
import type { PortStats } from './port-base';

/** The format version this module writes and reads. */
export const STATS_FILE_VERSION = 1;
/** The directory used when neither an argument nor `$KBYPASS_STATS_DIR` names one. */
export const DEFAULT_STATS_DIR = '/dev/shm/kbypass-stats';
/** Files larger than this are not read (they are not ours). */
export const MAX_FILE_BYTES = 64 * 1024;
/** A reader reads at most this many files per call. */
export const MAX_FILES = 4096;
/** A publisher tries at most this many names before giving up. */
const MAX_NAME_TRIES = 1024;

const FILE_RE = /^([1-9][0-9]{0,9})-([0-9]{1,10})\.json$/;
const TMP_RE = /^\.([1-9][0-9]{0,9})-([0-9]{1,10})\.json\.tmp$/;

/** What a port says about itself; XdpPort and PacketPort have these fields, so a port can be passed as is. */
export interface PortIdentity {
  readonly mode: 'xdp' | 'packet';
  readonly ifname: string;
  readonly ifindex: number;
  readonly queue: number;
  /** 'native' or 'skb'; null for PACKET_MMAP and for a TX-only AF_XDP port. */
  readonly xdpMode: 'native' | 'skb' | null;
  readonly zeroCopy: boolean;
  /** Why a faster configuration was not used; '' when none. */
  readonly fallbackReason: string;
}

/** The content of a statistics file, format version 1. */
export interface PublishedPortFile {
  readonly version: 1;
  readonly pid: number;
  /** When the port began publishing, ms since the epoch. */
  readonly startedAt: number;
  readonly mode: 'xdp' | 'packet';
  readonly ifname: string;
  readonly ifindex: number;
  readonly queue: number;
  readonly xdpMode: 'native' | 'skb' | null;
  readonly zeroCopy: boolean;
  readonly fallbackReason: string;
  /** When `stats` were read, ms since the epoch. */
  readonly updatedAt: number;
  readonly stats: PortStats;
}

/** A statistics file as read by {@link readPublishedPorts}. */
export interface PublishedPort extends PublishedPortFile {
  /** The file's path. */
  readonly file: string;
  /** True while process `pid` runs (`kill(pid, 0)` succeeds or fails with EPERM). */
  readonly alive: boolean;
}

/** Options of {@link readPublishedPorts}. */
export interface ReadPublishedOptions {
  /** Delete the files (and unfinished temporary files) of processes that no longer run. Default false. */
  readonly removeStale?: boolean;
}

/** The directory to use: `dir` if given, else `$KBYPASS_STATS_DIR` if set and not empty, else {@link DEFAULT_STATS_DIR}. */
export function statsDir(dir?: string): string {
  if (dir !== undefined) {
    if (typeof dir !== 'string' || dir === '') throw invalidArgType('dir', 'a non-empty string', dir);
    return dir;
  }
  const env = process.env['KBYPASS_STATS_DIR'];
  return env !== undefined && env !== '' ? env : DEFAULT_STATS_DIR;
}

/** True while process `pid` exists: kill(pid, 0) succeeds, or fails with EPERM (it exists, another user's). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

function errText(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err?.code ?? err?.message ?? String(e);
}

/** mkdir -p, 0700, at most 32 levels deep. Not fs.mkdirSync's `recursive`: on a file system that answers ENOENT
 *  for a directory whose parent exists (/proc, /sys) Node 20's loops for ever. */
function makeDir(dir: string, depth: number): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EEXIST') return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || depth >= 32 || parent === dir || fs.existsSync(parent)) throw e;
    makeDir(parent, depth + 1);
    fs.mkdirSync(dir, { mode: 0o700 });
  }
}

/** Ready the directory: create it (0700) when missing; refuse a symlink, a non-directory, or another user's
 *  directory (unless we are root). Returns why not, or null when it can be used. */
function prepareDir(dir: string): string | null {
  try {
    makeDir(path.resolve(dir), 0);
  } catch (e) {
    return `cannot create ${dir}: ${errText(e)}`;
  }
  let st: fs.Stats;
  try { st = fs.lstatSync(dir); } catch (e) { return `cannot stat ${dir}: ${errText(e)}`; }
  if (!st.isDirectory()) return `${dir} is not a directory${st.isSymbolicLink() ? ' (a symbolic link)' : ''}`;
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0 && st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); set KBYPASS_STATS_DIR`;
  return null;
}

/** Publishers not yet closed, whose files are removed when the process exits. */
const openPublishers = new Set<StatsPublisher>();
let exitHookInstalled = false;
/** Ports this process has published (the `n` of `<pid>-<n>.json`). */
let nextIndex = 0;
/** Whether this process has looked for files left under its pid by an earlier process with the same pid. */
let sweptOwnPid = false;

/** Remove `<pid>-*.json` files of an earlier process that had our pid (they began before this process did). */
function sweepOwnPid(dir: string): void {
  if (sweptOwnPid) return;
  sweptOwnPid = true;
  // 5 s of slack for clock adjustments: a file of this very process is never that much older than its start.
  const processStart = Date.now() - process.uptime() * 1000 - 5000;
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const name of names.slice(0, MAX_FILES)) {
    const m = FILE_RE.exec(name);
    if (m === null || Number(m[1]) !== process.pid) continue;
    const file = path.join(dir, name);
    const content = readFileBounded(file);
    const startedAt = content === null ? null : parseFile(content, process.pid)?.startedAt ?? null;
    if (startedAt === null || startedAt < processStart) {
      try { fs.unlinkSync(file); debug('stats: removed %s, left by an earlier process with pid %d', file, process.pid); } catch { /* gone */ }
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => { for (const p of [...openPublishers]) p.close(); });
}

/**
 * Publishes one port's statistics to its file. Never throws once open: failed writes are skipped.
 *
 *   const pub = StatsPublisher.open(port);        // when the port opens (null: not published)
 *   pub?.start(() => port.stats());               // writes now and once a second (or call pub.update(stats))
 *   pub?.close();                                 // when the port closes: stops and removes the file
 */
export class StatsPublisher {
  /** The file's path. */
  readonly file: string;
  readonly #tmp: string;
  readonly #identity: PortIdentity;
  readonly #startedAt: number;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  #failing = false;

  private constructor(file: string, tmp: string, identity: PortIdentity, startedAt: number) {
    this.file = file;
    this.#tmp = tmp;
    this.#identity = identity;
    this.#startedAt = startedAt;
  }

  /**
   * Create the port's file (with zero counters) in `dir` (default {@link statsDir}()). `identity` is read again
   * at every write, so a port passed as its own identity shows a `fallbackReason` set after it opened.
   * Returns null — never throws — when the directory cannot be used; `NODE_DEBUG=kbypass` says why.
   */
  static open(identity: PortIdentity, dir?: string): StatsPublisher | null {
    if (identity === null || typeof identity !== 'object') throw invalidArgType('identity', 'an object', identity);
    let where: string;
    try { where = statsDir(dir); } catch (e) { debug('stats: not publishing: %s', errText(e)); return null; }
    const why = prepareDir(where);
    if (why !== null) { debug('stats: not publishing port statistics: %s', why); return null; }
    sweepOwnPid(where);
    const startedAt = Date.now();
    for (let tries = 0; tries < MAX_NAME_TRIES; tries++) {
      const n = nextIndex++;
      const file = path.join(where, `${process.pid}-${n}.json`);
      const tmp = path.join(where, `.${process.pid}-${n}.json.tmp`);
      const pub = new StatsPublisher(file, tmp, identity, startedAt);
      try {
        fs.writeFileSync(tmp, pub.#content(emptyStats(), startedAt), { mode: 0o600 });
        try {
          fs.linkSync(tmp, file); // fails with EEXIST when the name is taken: the file appears whole, or not at all
        } finally {
          try { fs.unlinkSync(tmp); } catch { /* gone */ }
        }
      } catch (e) {
        if ((e as { code?: string }).code === 'EEXIST') continue;
        debug('stats: not publishing port statistics: cannot write %s: %s', file, errText(e));
        return null;
      }
      openPublishers.add(pub);
      installExitHook();
      debug('stats: publishing %s queue %d to %s', identity.ifname, identity.queue, file);
      return pub;
    }
    debug('stats: not publishing port statistics: no free file name in %s', where);
    return null;
  }

  get closed(): boolean { return this.#closed; }

  #content(stats: PortStats, now: number): string {
    const id = this.#identity;
    const body: PublishedPortFile = {
      version: STATS_FILE_VERSION,
      pid: process.pid,
      startedAt: this.#startedAt,
      mode: id.mode,
      ifname: id.ifname,
      ifindex: id.ifindex,
      queue: id.queue,
      xdpMode: id.xdpMode,
      zeroCopy: id.zeroCopy,
      fallbackReason: id.fallbackReason,
      updatedAt: now,
      stats: {
        rxPackets: stats.rxPackets,
        rxBytes: stats.rxBytes,
        txSubmitted: stats.txSubmitted,
        txCompleted: stats.txCompleted,
        txBytes: stats.txBytes,
        held: stats.held,
        drops: { ...stats.drops },
        kernel: { ...stats.kernel },
      },
    };
    return `${JSON.stringify(body)}\n`;
  }

  /** Replace the file's content with `stats` (atomically: a temporary file renamed over it). Returns false —
   *  never throws — when the write failed or the publisher is closed. */
  update(stats: PortStats): boolean {
    if (this.#closed) return false;
    try {
      fs.writeFileSync(this.#tmp, this.#content(stats, Date.now()), { mode: 0o600 });
      fs.renameSync(this.#tmp, this.file);
      if (this.#failing) { this.#failing = false; debug('stats: writing %s works again', this.file); }
      return true;
    } catch (e) {
      // Said once per run of failures, not every second.
      if (!this.#failing) { this.#failing = true; debug('stats: cannot write %s: %s', this.file, errText(e)); }
      try { fs.unlinkSync(this.#tmp); } catch { /* none */ }
      return false;
    }
  }

  /**
   * Write `read()` now and every `intervalMs` (default 1000, at least 100) on an unref'd timer, until close().
   * A `read` that throws skips that write. Calling start() again replaces the previous schedule.
   */
  start(read: () => PortStats, intervalMs = 1000): this {
    if (typeof read !== 'function') throw invalidArgType('read', 'of type function', read);
    if (this.#closed) return this;
    const ms = Number.isFinite(intervalMs) ? Math.max(100, Math.floor(intervalMs)) : 1000;
    if (this.#timer !== null) clearInterval(this.#timer);
    const tick = (): void => {
      let stats: PortStats;
      try { stats = read(); } catch (e) { debug('stats: reading the port statistics failed: %s', errText(e)); return; }
      this.update(stats);
    };
    tick();
    this.#timer = setInterval(tick, ms);
    this.#timer.unref();
    return this;
  }

  /** Stop the schedule and remove the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) { clearInterval(this.#timer); this.#timer = null; }
    openPublishers.delete(this);
    try { fs.unlinkSync(this.file); } catch { /* gone */ }
    try { fs.unlinkSync(this.#tmp); } catch { /* none */ }
  }
}

function emptyStats(): PortStats {
  return { rxPackets: 0, rxBytes: 0, txSubmitted: 0, txCompleted: 0, txBytes: 0, held: 0, drops: {}, kernel: {} };
}

/** The file's content, or null when it is missing, unreadable, not a regular file, or too large. */
function readFileBounded(file: string): string | null {
  let fd: number;
  try { fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK); } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') debug('stats: cannot read %s: %s', file, errText(e));
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    const buf = Buffer.alloc(st.size);
    let got = 0;
    for (let i = 0; i < 64 && got < buf.length; i++) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.toString('utf8', 0, got);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function countRecord(v: unknown): Record<string, number> | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const out: Record<string, number> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > 256) return null;
  for (const [k, n] of entries) {
    if (!isCount(n)) return null;
    out[k] = n;
  }
  return out;
}

/** Parse and check a version-1 file written by process `pid`; null when it is anything else. */
function parseFile(text: string, pid: number): PublishedPortFile | null {
  let o: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    o = v as Record<string, unknown>;
  } catch {
    return null;
  }
  if (o['version'] !== STATS_FILE_VERSION || o['pid'] !== pid) return null;
  const { mode, ifname, ifindex, queue, xdpMode, zeroCopy, fallbackReason, startedAt, updatedAt } = o;
  if (mode !== 'xdp' && mode !== 'packet') return null;
  if (typeof ifname !== 'string' || !Number.isInteger(ifindex) || !Number.isInteger(queue)) return null;
  if (xdpMode !== null && xdpMode !== 'native' && xdpMode !== 'skb') return null;
  if (typeof zeroCopy !== 'boolean' || typeof fallbackReason !== 'string') return null;
  if (!isCount(startedAt) || !isCount(updatedAt)) return null;
  const s = o['stats'] as Record<string, unknown> | null | undefined;
  if (s === null || typeof s !== 'object') return null;
  const { rxPackets, rxBytes, txSubmitted, txCompleted, txBytes, held } = s;
  if (![rxPackets, rxBytes, txSubmitted, txCompleted, txBytes, held].every(isCount)) return null;
  const drops = countRecord(s['drops']);
  const kernel = countRecord(s['kernel']);
  if (drops === null || kernel === null) return null;
  return {
    version: STATS_FILE_VERSION, pid, startedAt, mode, ifname, ifindex: ifindex as number, queue: queue as number,
    xdpMode, zeroCopy, fallbackReason, updatedAt,
    stats: {
      rxPackets: rxPackets as number, rxBytes: rxBytes as number, txSubmitted: txSubmitted as number,
      txCompleted: txCompleted as number, txBytes: txBytes as number, held: held as number, drops, kernel,
    },
  };
}

/**
 * Every port published in `dir` (default {@link statsDir}()), each with `alive`, sorted by interface, queue, pid.
 * Files that are partial, malformed, of another format version, or not named `<pid>-<n>.json` are skipped, not
 * thrown on. With `removeStale`, the files of processes that no longer run are deleted (they are still
 * returned, with `alive: false`). A missing directory is no ports; another failure to list it throws the fs
 * error (`EACCES`, `ENOTDIR`, … with `syscall`).
 */
export function readPublishedPorts(dir?: string, options: ReadPublishedOptions = {}): PublishedPort[] {
  const where = statsDir(dir);
  const removeStale = options.removeStale === true;
  let names: string[];
  try {
    names = fs.readdirSync(where);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return [];
    throw e;
  }
  const out: PublishedPort[] = [];
  const alive = new Map<number, boolean>();
  const isAlive = (pid: number): boolean => {
    let a = alive.get(pid);
    if (a === undefined) { a = isProcessAlive(pid); alive.set(pid, a); }
    return a;
  };
  for (const name of names.sort().slice(0, MAX_FILES)) {
    const file = path.join(where, name);
    const tmp = TMP_RE.exec(name);
    if (tmp !== null) {
      if (removeStale && !isAlive(Number(tmp[1]))) try { fs.unlinkSync(file); } catch { /* gone */ }
      continue;
    }
    const m = FILE_RE.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    const text = readFileBounded(file);
    if (text === null) continue;
    const content = parseFile(text, pid);
    const a = isAlive(pid);
    if (!a && removeStale) {
      try { fs.unlinkSync(file); debug('stats: removed %s (process %d is gone)', file, pid); } catch { /* gone */ }
    }
    if (content === null) { debug('stats: skipped %s (not a version-%d statistics file)', file, STATS_FILE_VERSION); continue; }
    out.push({ ...content, file, alive: a });
  }
  out.sort((x, y) => (x.ifname < y.ifname ? -1 : x.ifname > y.ifname ? 1 : 0) || x.queue - y.queue || x.pid - y.pid
    || x.file.localeCompare(y.file, 'en', { numeric: true }));
  return out;
}
