/**
 * Test hosts for packet I/O: two network namespaces joined by a veth pair with private addresses, made and
 * removed here, for the packet tests and `kbypass bench packet`.
 *
 * A testbed is `nsA` ⟷ `nsB`: one veth end in each (`ifA` in `nsA`, `ifB` in `nsB`), fixed locally administered
 * MAC addresses, the two hosts of a private /30 (10.199.0.0/16 by default), `lo` and both ends up, TX checksum
 * offload off (otherwise frames leave a veth with partial checksums), GRO off, IPv6 off (the link carries only
 * the traffic the tests send: no router solicitations, MLD reports or DAD probes) and permanent neighbour
 * entries both ways (no ARP). Nothing is ever sent outside the two namespaces.
 *
 * Names carry this process's pid (`kbp-<pid base 36>-<n base 36>a` / `…b`, at most 15 characters, the same for
 * the namespaces and their interfaces), so {@link sweepStaleTestbeds} can tell the leftovers of dead processes.
 * Everything a process creates is removed by `destroy()`, on a failure half-way, on process `'exit'` and on
 * SIGINT / SIGTERM; only a SIGKILL leaves namespaces behind, for the next sweep.
 *
 * Everything here is synchronous (iproute2 and ethtool run with execFileSync, each bounded by a timeout), except
 * the processes started in a namespace ({@link runIn}, {@link nodeIn}).
 *
 * Errors: `ERR_KBYPASS_TESTBED` (a command failed: its command line, exit status and stderr are in the message
 * and in `command` / `stderr`; a process in a namespace timed out or exited early),
 * `ERR_KBYPASS_TESTBED_UNSUPPORTED` (not root, no CAP_NET_ADMIN, no `ip` or `ethtool`, or namespaces cannot be
 * created here), and Node's `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` / `ERR_OUT_OF_RANGE` for bad options.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KbypassError, invalidArgType, invalidArgValue, outOfRange } from '../../src/errors';

/** Where iproute2 keeps the names of network namespaces (`ip netns add` bind-mounts them here). */
const NETNS_RUN_DIR = '/var/run/netns';
/** The prefix of every namespace and interface name a testbed uses. */
export const TESTBED_PREFIX = 'kbp-';
/** `kbp-<pid base 36>-<anything base 36>`: the pid is what sweepStaleTestbeds looks at. */
const NAME_RE = /^kbp-([0-9a-z]{1,6})-([0-9a-z]+)$/;
/** The longest interface name Linux takes (IFNAMSIZ - 1). */
const IFNAME_MAX = 15;
/** Each ip / ethtool / sysctl command is killed past this. */
const COMMAND_TIMEOUT_MS = 15_000;
/** How long createTestbed waits for both ends to report operstate UP. */
const LINK_UP_TIMEOUT_MS = 5_000;
/** The default address block: a different /30 of it per testbed. */
const DEFAULT_BLOCK = (10 << 24) | (199 << 16);
const DEFAULT_BLOCK_SLOTS = 1 << 14; // /16 ÷ /30
/** A process's output kept by runIn, per stream (the rest is dropped and counted). */
const MAX_OUTPUT_CHARS = 32 * 1024 * 1024;

/** A testbed command failed, or a process in a namespace timed out / exited before it reported. */
export class TestbedError extends KbypassError {
  /** The command line that failed (empty when the failure was not a command's). */
  readonly command: readonly string[];
  /** Its standard error output, trimmed. */
  readonly stderr: string;
  constructor(code: string, message: string, command: readonly string[] = [], stderr = '', options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TestbedError';
    this.command = command;
    this.stderr = stderr;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tools and commands

const tools = new Map<string, string | null>();

/** The absolute path of an executable, searched in PATH, then /usr/sbin, /sbin, /usr/bin, /bin; null if none. */
function findTool(name: string): string | null {
  const cached = tools.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  let found: string | null = null;
  for (const dir of dirs) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) { found = candidate; break; }
    } catch { /* not here */ }
  }
  tools.set(name, found);
  return found;
}

function tool(name: string): string {
  const p = findTool(name);
  if (p === null) throw new TestbedError('ERR_KBYPASS_TESTBED_UNSUPPORTED', `${name} is not installed (searched PATH, /usr/sbin, /sbin)`);
  return p;
}

/** Run a command to completion (bounded by COMMAND_TIMEOUT_MS); its stdout, or a TestbedError. */
function run(argv: readonly string[]): string {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('run: empty command');
  try {
    return execFileSync(file, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: COMMAND_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: unknown; status?: number | null; signal?: string | null };
    const stderr = String(err.stderr ?? '').trim();
    const how = err.code === 'ETIMEDOUT' ? `timed out after ${COMMAND_TIMEOUT_MS} ms`
      : typeof err.status === 'number' ? `exit status ${err.status}`
        : err.signal ? `killed by ${err.signal}` : String(err.code ?? err.message);
    throw new TestbedError('ERR_KBYPASS_TESTBED', `\`${argv.join(' ')}\` failed (${how})${stderr ? `: ${stderr}` : ''}`, argv, stderr, { cause: e });
  }
}

/** Sleep synchronously (the waits here are short and bounded; createTestbed is synchronous). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function namespaceExists(ns: string): boolean {
  return fs.existsSync(path.join(NETNS_RUN_DIR, ns));
}

/** Names in /var/run/netns (every namespace `ip netns` knows). */
function namespaceNames(): string[] {
  try { return fs.readdirSync(NETNS_RUN_DIR); } catch { return []; }
}

/** Whether a process with this pid exists (EPERM: it does, someone else's). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILL every process inside a namespace but this one (they would keep it, and its veth end, alive). */
function killProcessesIn(ns: string): void {
  let out: string;
  try { out = run([tool('ip'), 'netns', 'pids', ns]); } catch { return; }
  for (const word of out.split(/\s+/)) {
    const pid = Number(word);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
  }
}

/** Kill what runs in a namespace and delete it; a namespace that is already gone is fine. */
function deleteNamespace(ns: string): void {
  for (const child of children) if (child.ns === ns) child.kill('SIGKILL');
  if (!namespaceExists(ns)) { liveNamespaces.delete(ns); return; }
  killProcessesIn(ns);
  try {
    run([tool('ip'), 'netns', 'delete', ns]);
  } catch (e) {
    if (namespaceExists(ns)) throw e;
  }
  liveNamespaces.delete(ns);
}

// ---------------------------------------------------------------------------------------------------------------
// Process-wide clean-up: 'exit', SIGINT, SIGTERM

/** Namespaces this process created and has not deleted yet. */
const liveNamespaces = new Set<string>();
/** Processes started in a namespace by runIn that have not exited yet. */
const children = new Set<NsProcessImpl>();

let exitHookInstalled = false;
let signalHooksInstalled = false;
const signalHandlers: Record<'SIGINT' | 'SIGTERM', () => void> = {
  SIGINT: () => onSignal('SIGINT'),
  SIGTERM: () => onSignal('SIGTERM'),
};

/** Remove everything this process made; never throws (it runs from 'exit' and signal handlers). */
function cleanupAll(): void {
  for (const child of children) child.kill('SIGKILL');
  for (const ns of [...liveNamespaces]) {
    try { deleteNamespace(ns); } catch { /* best effort: the next sweep gets it */ }
  }
  updateHooks();
}

function onSignal(signal: 'SIGINT' | 'SIGTERM'): void {
  cleanupAll();
  removeSignalHooks();
  // Re-raise for the default action (termination by this signal), unless someone else handles it: they have
  // been called for this signal already and decide what happens.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function removeSignalHooks(): void {
  if (!signalHooksInstalled) return;
  process.off('SIGINT', signalHandlers.SIGINT);
  process.off('SIGTERM', signalHandlers.SIGTERM);
  signalHooksInstalled = false;
}

/** Handle signals only while there is something to clean up (a handler changes a signal's default action). */
function updateHooks(): void {
  const busy = liveNamespaces.size > 0 || children.size > 0;
  if (busy && !exitHookInstalled) {
    process.on('exit', cleanupAll);
    exitHookInstalled = true;
  }
  if (busy && !signalHooksInstalled) {
    process.on('SIGINT', signalHandlers.SIGINT);
    process.on('SIGTERM', signalHandlers.SIGTERM);
    signalHooksInstalled = true;
  } else if (!busy) {
    removeSignalHooks();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Support

export type TestbedSupport = { ok: true } | { ok: false; reason: string };

let support: TestbedSupport | null = null;

/** Whether CapEff in /proc/self/status has CAP_NET_ADMIN (bit 12); null when it cannot be read. */
function hasNetAdmin(): boolean | null {
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
    if (!m || m[1] === undefined) return null;
    return (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
  } catch {
    return null;
  }
}

/**
 * Whether testbeds can be made here: Linux, root or CAP_NET_ADMIN, `ip` (iproute2) and `ethtool` installed, and
 * a network namespace can really be created and deleted (a container may forbid it). The answer is worked out
 * once per process and cached; `reason` says what is missing, for a test's skip message.
 */
export function testbedSupport(): TestbedSupport {
  support ??= probeSupport();
  return support;
}

function probeSupport(): TestbedSupport {
  if (process.platform !== 'linux') return { ok: false, reason: `testbeds need Linux (this is ${process.platform})` };
  const netAdmin = hasNetAdmin();
  if (netAdmin === false || (netAdmin === null && process.getuid?.() !== 0)) {
    return { ok: false, reason: 'testbeds need root or CAP_NET_ADMIN (network namespaces, veth)' };
  }
  for (const name of ['ip', 'ethtool']) {
    if (findTool(name) === null) return { ok: false, reason: `${name} is not installed (searched PATH, /usr/sbin, /sbin)` };
  }
  const probe = `${TESTBED_PREFIX}${process.pid.toString(36)}-probe`;
  try {
    if (namespaceExists(probe)) deleteNamespace(probe); // a dead process's, with our pid
    liveNamespaces.add(probe);
    updateHooks();
    run([tool('ip'), 'netns', 'add', probe]);
    deleteNamespace(probe);
  } catch (e) {
    try { deleteNamespace(probe); } catch { /* reported below */ }
    return { ok: false, reason: `cannot create a network namespace: ${(e as Error).message}` };
  } finally {
    liveNamespaces.delete(probe);
    updateHooks();
  }
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------------------------
// Testbeds

/** Options of {@link createTestbed}. */
export interface TestbedOptions {
  /** TX and RX queues of each veth end (`numtxqueues N numrxqueues N`), 1 to 4096. Default 1. */
  readonly queues?: number;
  /** MTU of both ends. The kernel decides what is valid (veth: 68 to 65535); a refused MTU fails the creation
   *  with `ERR_KBYPASS_TESTBED` and leaves nothing behind. Default 1500. */
  readonly mtu?: number;
  /** Generic receive offload on both ends (`ethtool -K IF gro on|off`). Native XDP on veth wants GRO on (or an
   *  XDP program) on the peer for redirected frames. Default false. */
  readonly gro?: boolean;
  /** Keep IPv6 on in both namespaces. Off, the link carries only what the tests send (no router solicitations,
   *  MLD reports or DAD probes). Default false. */
  readonly ipv6?: boolean;
  /** The IPv4 subnet, as `a.b.c.d/len` with `len` from 8 to 30 and `a.b.c.d` its network address: `ipA` is its
   *  first host, `ipB` its second. Default a /30 of 10.199.0.0/16, a different one for each testbed of a
   *  process. */
  readonly subnet?: string;
}

/** Two network namespaces joined by a veth pair; see the module's comment. */
export interface Testbed {
  /** The namespaces (names for `ip netns exec` / `ip -n`). */
  readonly nsA: string;
  readonly nsB: string;
  /** The veth ends: `ifA` lives in `nsA`, `ifB` in `nsB`. */
  readonly ifA: string;
  readonly ifB: string;
  /** Their IPv4 addresses (dotted quads, without the prefix length). */
  readonly ipA: string;
  readonly ipB: string;
  /** The subnet's prefix length (30 by default). */
  readonly prefixLength: number;
  /** Their MAC addresses, `02:…` (locally administered, unicast), lower case. */
  readonly macA: string;
  readonly macB: string;
  /** Their interface indexes, each in its own namespace. */
  readonly ifindexA: number;
  readonly ifindexB: number;
  /** The options it was made with, defaults filled in. */
  readonly mtu: number;
  readonly queues: number;
  readonly gro: boolean;
  /** Whether destroy() has completed. */
  readonly destroyed: boolean;
  /**
   * Remove both namespaces (and with them the veth pair). Processes still inside them — started by runIn or
   * not — are killed first with SIGKILL: a namespace with a process in it outlives its name. Idempotent; after a
   * failure (thrown once both namespaces have been tried) a second call tries again.
   */
  destroy(): void;
}

class TestbedImpl implements Testbed {
  readonly nsA: string;
  readonly nsB: string;
  readonly ifA: string;
  readonly ifB: string;
  readonly ipA: string;
  readonly ipB: string;
  readonly prefixLength: number;
  readonly macA: string;
  readonly macB: string;
  readonly ifindexA: number;
  readonly ifindexB: number;
  readonly mtu: number;
  readonly queues: number;
  readonly gro: boolean;
  #destroyed = false;

  constructor(fields: Omit<Testbed, 'destroyed' | 'destroy'>) {
    this.nsA = fields.nsA;
    this.nsB = fields.nsB;
    this.ifA = fields.ifA;
    this.ifB = fields.ifB;
    this.ipA = fields.ipA;
    this.ipB = fields.ipB;
    this.prefixLength = fields.prefixLength;
    this.macA = fields.macA;
    this.macB = fields.macB;
    this.ifindexA = fields.ifindexA;
    this.ifindexB = fields.ifindexB;
    this.mtu = fields.mtu;
    this.queues = fields.queues;
    this.gro = fields.gro;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  destroy(): void {
    if (this.#destroyed) return;
    let failure: unknown = null;
    for (const ns of [this.nsA, this.nsB]) {
      try { deleteNamespace(ns); } catch (e) { failure ??= e; }
    }
    updateHooks();
    if (failure !== null) throw failure;
    this.#destroyed = true;
  }
}

let sequence = 0;
let swept = false;

function ipToString(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join('.');
}

function parseSubnet(subnet: string): { network: number; prefixLength: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  if (!m) throw invalidArgValue('options.subnet', subnet, "must be an IPv4 subnet 'a.b.c.d/len'");
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  const prefixLength = Number(m[5]);
  if (octets.some((o) => o > 255)) throw invalidArgValue('options.subnet', subnet, 'has an octet over 255');
  if (prefixLength < 8 || prefixLength > 30) throw invalidArgValue('options.subnet', subnet, 'must have a prefix length from 8 to 30');
  const ip = octets.reduce((acc, o) => ((acc << 8) | o) >>> 0, 0);
  const mask = (0xffffffff << (32 - prefixLength)) >>> 0;
  if ((ip & ~mask) >>> 0 !== 0) throw invalidArgValue('options.subnet', subnet, 'must be a network address (host bits zero)');
  return { network: ip, prefixLength };
}

function checkInteger(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer from ${min} to ${max}`, value);
  return value;
}

function checkBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** `02:6b:62:<slot>:<host>`: locally administered (bit 1 of the first octet), unicast (bit 0 clear). */
function mac(slot: number, host: number): string {
  return [0x02, 0x6b, 0x62, (slot >>> 8) & 0xff, slot & 0xff, host].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function ifindexOf(ns: string, ifname: string): number {
  const out = run([tool('ip'), '-n', ns, '-j', 'link', 'show', 'dev', ifname]);
  const parsed = JSON.parse(out) as Array<{ ifindex?: unknown; operstate?: unknown }>;
  const index = parsed[0]?.ifindex;
  if (typeof index !== 'number') throw new TestbedError('ERR_KBYPASS_TESTBED', `no ifindex for ${ifname} in ${ns}: ${out.trim()}`);
  return index;
}

function operstateOf(ns: string, ifname: string): string {
  const out = run([tool('ip'), '-n', ns, '-j', 'link', 'show', 'dev', ifname]);
  const parsed = JSON.parse(out) as Array<{ operstate?: unknown }>;
  return String(parsed[0]?.operstate ?? '');
}

/** Add a namespace named for this process; a leftover with the same name (a dead process that had our pid) is
 *  removed first. */
function addNamespace(ns: string): void {
  if (namespaceExists(ns)) deleteNamespace(ns);
  liveNamespaces.add(ns);
  updateHooks();
  try {
    run([tool('ip'), 'netns', 'add', ns]);
  } catch (e) {
    if (!namespaceExists(ns)) liveNamespaces.delete(ns);
    throw e;
  }
}

/**
 * Make a testbed: two namespaces, a veth pair between them, addresses, MACs, neighbours, offloads; returns once
 * both ends report operstate UP (so the first frame sent is not dropped by a link not yet activated).
 * Synchronous (about 20 short commands). The first call in a process also sweeps dead processes' leftovers
 * ({@link sweepStaleTestbeds}).
 *
 * @throws `ERR_KBYPASS_TESTBED_UNSUPPORTED` when {@link testbedSupport} says no; `ERR_KBYPASS_TESTBED` when a
 *   command fails (everything made so far is removed first); argument errors for bad options.
 */
export function createTestbed(options: TestbedOptions = {}): Testbed {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const queues = checkInteger('options.queues', options.queues, 1, 4096, 1);
  const mtu = checkInteger('options.mtu', options.mtu, 1, 0x7fffffff, 1500);
  const gro = checkBoolean('options.gro', options.gro, false);
  const ipv6 = checkBoolean('options.ipv6', options.ipv6, false);
  if (options.subnet !== undefined && typeof options.subnet !== 'string') throw invalidArgType('options.subnet', 'of type string', options.subnet);

  const supported = testbedSupport();
  if (!supported.ok) throw new TestbedError('ERR_KBYPASS_TESTBED_UNSUPPORTED', supported.reason);
  if (!swept) {
    swept = true;
    try { sweepStaleTestbeds(); } catch { /* not ours to fail on */ }
  }

  const n = sequence++;
  const slot = ((process.pid % 1024) * 16 + n) % DEFAULT_BLOCK_SLOTS;
  const { network, prefixLength } = options.subnet !== undefined
    ? parseSubnet(options.subnet)
    : { network: (DEFAULT_BLOCK + slot * 4) >>> 0, prefixLength: 30 };
  const base = `${TESTBED_PREFIX}${process.pid.toString(36)}-${n.toString(36)}`;
  const nsA = `${base}a`;
  const nsB = `${base}b`;
  if (nsA.length > IFNAME_MAX) throw new TestbedError('ERR_KBYPASS_TESTBED', `interface name ${nsA} is longer than ${IFNAME_MAX} characters`);
  const ifA = nsA;
  const ifB = nsB;
  const ipA = ipToString(network + 1);
  const ipB = ipToString(network + 2);
  const macA = mac(slot, 1);
  const macB = mac(slot, 2);

  const ip = tool('ip');
  const ethtool = tool('ethtool');
  try {
    addNamespace(nsA);
    addNamespace(nsB);
    if (!ipv6) {
      // Before the veth exists, so that `default` covers it too.
      for (const ns of [nsA, nsB]) disableIpv6(ns);
    }
    const q = String(queues);
    // Each end is created directly in its namespace: nothing ever appears in the caller's namespace.
    run([ip, 'link', 'add', ifA, 'netns', nsA, 'address', macA, 'numtxqueues', q, 'numrxqueues', q,
      'type', 'veth', 'peer', 'name', ifB, 'netns', nsB, 'address', macB, 'numtxqueues', q, 'numrxqueues', q]);
    const ends = [
      { ns: nsA, ifname: ifA, local: ipA, peer: ipB, peerMac: macB },
      { ns: nsB, ifname: ifB, local: ipB, peer: ipA, peerMac: macA },
    ];
    for (const e of ends) run([ip, '-n', e.ns, 'link', 'set', 'dev', e.ifname, 'mtu', String(mtu)]);
    for (const e of ends) {
      run([ip, '-n', e.ns, 'address', 'add', `${e.local}/${prefixLength}`, 'dev', e.ifname]);
      run([ip, '-n', e.ns, 'link', 'set', 'dev', 'lo', 'up']);
    }
    for (const e of ends) {
      run([ip, 'netns', 'exec', e.ns, ethtool, '-K', e.ifname, 'tx', 'off', 'gro', gro ? 'on' : 'off']);
    }
    for (const e of ends) run([ip, '-n', e.ns, 'link', 'set', 'dev', e.ifname, 'up']);
    for (const e of ends) {
      run([ip, '-n', e.ns, 'neigh', 'replace', e.peer, 'lladdr', e.peerMac, 'dev', e.ifname, 'nud', 'permanent']);
    }
    // Carrier comes on at once, but the link is activated (its qdisc swapped in) by the kernel's linkwatch
    // worker a moment later; frames sent before that are dropped.
    const deadline = Date.now() + LINK_UP_TIMEOUT_MS;
    for (const e of ends) {
      for (;;) {
        const state = operstateOf(e.ns, e.ifname);
        if (state === 'UP') break;
        if (Date.now() > deadline) {
          throw new TestbedError('ERR_KBYPASS_TESTBED', `${e.ifname} in ${e.ns} is ${state}, not UP, after ${LINK_UP_TIMEOUT_MS} ms`);
        }
        sleepSync(5);
      }
    }
    const ifindexA = ifindexOf(nsA, ifA);
    const ifindexB = ifindexOf(nsB, ifB);
    return new TestbedImpl({ nsA, nsB, ifA, ifB, ipA, ipB, prefixLength, macA, macB, ifindexA, ifindexB, mtu, queues, gro });
  } catch (e) {
    for (const ns of [nsA, nsB]) {
      try { deleteNamespace(ns); } catch { /* the 'exit' hook tries again */ }
    }
    updateHooks();
    throw e;
  }
}

/** Turn IPv6 off in a namespace (all existing interfaces and the default for new ones). */
function disableIpv6(ns: string): void {
  const ip = tool('ip');
  const settings = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
  if (!fs.existsSync('/proc/sys/net/ipv6')) return; // no IPv6 in this kernel: nothing to turn off
  const sysctl = findTool('sysctl');
  if (sysctl !== null) {
    run([ip, 'netns', 'exec', ns, sysctl, '-q', '-w', ...settings]);
  } else {
    const script = "for (const f of ['all', 'default']) require('fs').writeFileSync(`/proc/sys/net/ipv6/conf/${f}/disable_ipv6`, '1')";
    run([ip, 'netns', 'exec', ns, process.execPath, '-e', script]);
  }
}

/**
 * Delete the namespaces that dead processes left (a name with our prefix whose pid, encoded in it, is no longer
 * alive; or one with this process's pid that this process did not make — a dead process had the pid before).
 * Processes still inside them (orphaned fixtures) are killed with SIGKILL. Returns the names deleted.
 */
export function sweepStaleTestbeds(): string[] {
  const deleted: string[] = [];
  if (findTool('ip') === null) return deleted;
  for (const ns of namespaceNames()) {
    const m = NAME_RE.exec(ns);
    if (!m || m[1] === undefined) continue;
    const pid = parseInt(m[1], 36);
    const stale = pid === process.pid ? !liveNamespaces.has(ns) : !pidAlive(pid);
    if (!stale) continue;
    try {
      deleteNamespace(ns);
      deleted.push(ns);
    } catch { /* someone else's problem now; it is still stale next time */ }
  }
  return deleted;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes in a namespace

/** Options of {@link runIn} and {@link nodeIn}. */
export interface RunOptions {
  /** Killed with SIGKILL past this many milliseconds (`result.timedOut` is then true). Default 60000. */
  readonly timeoutMs?: number;
  /** Its environment. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Its working directory. Default process.cwd(). */
  readonly cwd?: string;
  /** Written to its stdin, which is then closed. Default: none (stdin is closed at once, unless keepStdin). */
  readonly input?: string | Uint8Array;
  /** Leave stdin open as `child.stdin` for the caller to write (and end). Default false. */
  readonly keepStdin?: boolean;
}

/** Options of {@link nodeIn}. */
export interface NodeRunOptions extends RunOptions {
  /** Node's own flags, before the script (e.g. `['--expose-gc']`). Default none. */
  readonly nodeArgs?: readonly string[];
}

/** How a process in a namespace ended, with its whole output (each stream capped at 32 Mi characters). */
export interface NsResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Whether it was killed for running past `timeoutMs`. */
  readonly timedOut: boolean;
}

/** A process started in a namespace. */
export interface NsProcess {
  /** The process (`ip netns exec` replaces itself with the command, so this is the command's pid). */
  readonly child: ChildProcess;
  /** The namespace it runs in. */
  readonly ns: string;
  /** Settles when it has exited and its output is read; rejects only when it could not be started. */
  readonly result: Promise<NsResult>;
  /**
   * The next line of its stdout that parses as JSON (lines that do not are skipped, but stay in `stdout`). Lines
   * are queued from the start, so none is missed between calls. Rejects with `ERR_KBYPASS_TESTBED` when no line
   * comes within `timeoutMs` (default 10000) or the process exits first (the message has its stderr's tail).
   */
  nextJson<T = unknown>(timeoutMs?: number): Promise<T>;
  /** `result`, but rejects with `ERR_KBYPASS_TESTBED` (and its stderr) unless it exited with status 0. */
  succeeded(): Promise<NsResult>;
  /** Send a signal (default SIGKILL) if it is still running. */
  kill(signal?: NodeJS.Signals): void;
}

interface JsonWaiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

function tail(text: string, max = 2000): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(t.length - max)}` : t;
}

class NsProcessImpl implements NsProcess {
  readonly child: ChildProcess;
  readonly ns: string;
  readonly result: Promise<NsResult>;
  readonly #label: string;
  #stdout = '';
  #stderr = '';
  #partial = '';
  #json: unknown[] = [];
  #waiters: JsonWaiter[] = [];
  #ended: NsResult | null = null;
  #startError: Error | null = null;
  #timedOut = false;

  constructor(ns: string, command: string, args: readonly string[], options: RunOptions) {
    this.ns = ns;
    this.#label = `${command} ${args.join(' ')}`.slice(0, 200);
    const timeoutMs = options.timeoutMs ?? 60_000;
    const stdinPiped = options.input !== undefined || options.keepStdin === true;
    this.child = spawn(tool('ip'), ['netns', 'exec', ns, command, ...args], {
      stdio: [stdinPiped ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd ?? process.cwd(),
    });
    children.add(this);
    updateHooks();
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.kill('SIGKILL');
    }, timeoutMs);
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => this.#onStdout(chunk));
    this.child.stderr?.on('data', (chunk: string) => {
      if (this.#stderr.length < MAX_OUTPUT_CHARS) this.#stderr += chunk;
    });
    if (this.child.stdin) {
      this.child.stdin.on('error', () => { /* EPIPE when it exits without reading: its result says why */ });
      if (options.input !== undefined) this.child.stdin.end(options.input);
      else if (!options.keepStdin) this.child.stdin.end();
    }
    this.child.once('exit', () => {
      children.delete(this);
      updateHooks();
    });
    this.result = new Promise<NsResult>((resolve, reject) => {
      this.child.once('error', (e) => {
        clearTimeout(timer);
        children.delete(this);
        updateHooks();
        this.#startError = e;
        this.#failWaiters(new TestbedError('ERR_KBYPASS_TESTBED', `could not start ${this.#label} in ${ns}: ${e.message}`, [], '', { cause: e }));
        reject(e);
      });
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        if (this.#partial) this.#onLine(this.#partial);
        this.#partial = '';
        this.#ended = { code, signal, stdout: this.#stdout, stderr: this.#stderr, timedOut: this.#timedOut };
        this.#failWaiters(this.#exitedError('exited'));
        resolve(this.#ended);
      });
    });
    this.result.catch(() => { /* observed through nextJson/succeeded, or by the caller's own await */ });
  }

  #onStdout(chunk: string): void {
    if (this.#stdout.length < MAX_OUTPUT_CHARS) this.#stdout += chunk;
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > MAX_OUTPUT_CHARS) this.#partial = '';
    for (const line of lines) this.#onLine(line);
  }

  #onLine(line: string): void {
    const text = line.trim();
    if (!text) return;
    let value: unknown;
    try { value = JSON.parse(text); } catch { return; }
    const waiter = this.#waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(value);
    } else {
      this.#json.push(value);
    }
  }

  #exitedError(what: string): TestbedError {
    const r = this.#ended;
    const how = r === null ? 'is still running' : r.timedOut ? `was killed after running past its timeout` : r.signal ? `was killed by ${r.signal}` : `exited with status ${r.code}`;
    const err = tail(this.#stderr);
    return new TestbedError('ERR_KBYPASS_TESTBED', `${this.#label} in ${this.ns} ${how} (${what})${err ? `; stderr: ${err}` : ''}`, [], err);
  }

  #failWaiters(error: Error): void {
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  nextJson<T = unknown>(timeoutMs = 10_000): Promise<T> {
    if (this.#json.length > 0) return Promise.resolve(this.#json.shift() as T);
    if (this.#startError) return Promise.reject(new TestbedError('ERR_KBYPASS_TESTBED', `could not start ${this.#label}: ${this.#startError.message}`));
    if (this.#ended) return Promise.reject(this.#exitedError('no more JSON lines'));
    return new Promise<T>((resolve, reject) => {
      const waiter: JsonWaiter = {
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          const err = tail(this.#stderr);
          reject(new TestbedError('ERR_KBYPASS_TESTBED', `no JSON line from ${this.#label} in ${this.ns} within ${timeoutMs} ms${err ? `; stderr: ${err}` : ''}`, [], err));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  async succeeded(): Promise<NsResult> {
    const r = await this.result;
    if (r.code !== 0) throw this.#exitedError('expected status 0');
    return r;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try { this.child.kill(signal); } catch { /* gone */ }
  }
}

/**
 * Start `command ...args` inside network namespace `ns` (`ip netns exec ns command ...`), with stdout and stderr
 * piped and collected. It is killed with SIGKILL past `timeoutMs`, when its testbed is destroyed, and when this
 * process exits or is stopped by SIGINT/SIGTERM.
 */
export function runIn(ns: string, command: string, args: readonly string[] = [], options: RunOptions = {}): NsProcess {
  if (typeof ns !== 'string' || ns === '') throw invalidArgType('ns', 'a non-empty string', ns);
  if (typeof command !== 'string' || command === '') throw invalidArgType('command', 'a non-empty string', command);
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalidArgType('args', 'an array of strings', args);
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  checkInteger('options.timeoutMs', options.timeoutMs, 1, 0x7fffffff, 60_000);
  return new NsProcessImpl(ns, command, args, options);
}

/** {@link runIn} for `node [nodeArgs] scriptPath ...args` (this process's node binary). */
export function nodeIn(ns: string, scriptPath: string, args: readonly string[] = [], options: NodeRunOptions = {}): NsProcess {
  if (typeof scriptPath !== 'string' || scriptPath === '') throw invalidArgType('scriptPath', 'a non-empty string', scriptPath);
  const nodeArgs = options.nodeArgs ?? [];
  return runIn(ns, process.execPath, [...nodeArgs, scriptPath, ...args], options);
}
