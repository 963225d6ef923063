// The packet testbed: two namespaces joined by a veth pair. What `ip -j` and `ethtool` say about a new testbed,
// UDP between child processes in its namespaces, destroy() and the clean-ups on failure, exit and signals, two
// testbeds at once, the sweep of dead processes' namespaces, and runIn's timeouts and JSON lines. Skipped, with
// the reason, where namespaces cannot be made (not root, no iproute2/ethtool, a container that forbids it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestbed, nodeIn, runIn, sweepStaleTestbeds, testbedSupport, TESTBED_PREFIX, type Testbed } from './testbed';

const support = testbedSupport();
const skip = support.ok ? false : support.reason;
const TIMEOUT = 60_000;
const ENV = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` };
const MODULE = path.join(__dirname, 'testbed.js');

/** Run a tool in this (the root) namespace; its stdout. */
function sh(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', env: ENV, timeout: 15_000, killSignal: 'SIGKILL' });
}

/** Namespaces `ip netns` knows, by name. */
function namespaces(): string[] {
  return sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

/** Namespaces named for this process. */
function ours(): string[] {
  return namespaces().filter((n) => n.startsWith(`${TESTBED_PREFIX}${process.pid.toString(36)}-`));
}

/** Interface names in the root namespace. */
function rootLinks(): string[] {
  return (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);
}

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

function linkIn(ns: string, ifname: string): IpLink {
  const links = JSON.parse(sh('ip', ['-n', ns, '-j', 'address', 'show', 'dev', ifname])) as IpLink[];
  assert.equal(links.length, 1);
  return links[0]!;
}

/** `ethtool -k` as a map, e.g. 'tx-checksumming' → 'off' ('[fixed]' dropped). */
function features(ns: string, ifname: string): Map<string, string> {
  const out = sh('ip', ['netns', 'exec', ns, 'ethtool', '-k', ifname]);
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^\s*([\w-]+):\s+(on|off)\b/.exec(line);
    if (m && m[1] !== undefined && m[2] !== undefined) map.set(m[1], m[2]);
  }
  return map;
}

/** Whether a pid is gone or a zombie (dead, waiting for its new parent, init here, to reap it: that can take a
 *  second or two in this VM). */
function dead(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /\) Z /.test(stat);
  } catch {
    return true;
  }
}

/** Wait (bounded) until a pid has died. */
async function gone(pid: number, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (dead(pid)) return true;
    if (Date.now() > end) return false;
    await sleep(10);
  }
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync('true', [], { env: ENV });
  const pid = r.pid;
  assert.ok(pid !== undefined && pid > 0);
  assert.throws(() => process.kill(pid, 0));
  return pid;
}

// A UDP receiver: binds to argv[1]:argv[2], says {ready}, then reports the first datagram and exits.
const RECEIVER = `
const dgram = require('node:dgram');
const [host, port] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.on('message', (msg, rinfo) => { console.log(JSON.stringify({ msg: msg.toString(), from: rinfo.address })); s.close(); });
s.bind(Number(port), host, () => console.log(JSON.stringify({ ready: true, port: s.address().port })));
setTimeout(() => process.exit(3), 20000).unref();
`;

// A UDP sender (a fixture file, for nodeIn): sends argv[4] to argv[2]:argv[3], reports {sent}.
const SENDER = `
const dgram = require('node:dgram');
const [host, port, text] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
s.send(Buffer.from(text), Number(port), host, (err) => {
  console.log(JSON.stringify({ sent: !err, error: err ? String(err) : undefined }));
  s.close();
});
`;

let senderPath: string | null = null;
function senderScript(): string {
  if (senderPath) return senderPath;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-testbed-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  senderPath = path.join(dir, 'udp-sender.js');
  fs.writeFileSync(senderPath, SENDER);
  return senderPath;
}

/** A datagram from a node child in nsA to a node child in nsB; returns what the receiver reported. */
async function udpAcross(tb: Testbed, text: string): Promise<{ msg: string; from: string }> {
  const receiver = runIn(tb.nsB, process.execPath, ['-e', RECEIVER, tb.ipB, '0'], { timeoutMs: 30_000 });
  try {
    const ready = await receiver.nextJson<{ ready: boolean; port: number }>();
    assert.equal(ready.ready, true);
    const sender = nodeIn(tb.nsA, senderScript(), [tb.ipB, String(ready.port), text], { timeoutMs: 30_000 });
    assert.deepEqual(await sender.nextJson(), { sent: true });
    await sender.succeeded();
    const got = await receiver.nextJson<{ msg: string; from: string }>();
    await receiver.succeeded();
    return got;
  } finally {
    receiver.kill();
  }
}

test('testbedSupport: an answer, cached', () => {
  const again = testbedSupport();
  assert.equal(again, support);
  if (!again.ok) assert.ok(again.reason.length > 0);
});

test('a testbed comes up: both ends UP with their addresses, MACs and neighbours, lo up, TX checksum and GRO off, no IPv6', { skip, timeout: TIMEOUT }, () => {
  const tb = createTestbed();
  try {
    assert.ok(tb.ifA.length <= 15 && tb.ifB.length <= 15);
    assert.notEqual(tb.nsA, tb.nsB);
    assert.equal(tb.prefixLength, 30);
    assert.match(tb.ipA, /^10\.199\.\d+\.\d+$/);
    assert.deepEqual([tb.mtu, tb.queues, tb.gro], [1500, 1, false]);
    for (const [ns, ifname, ip, mac, ifindex, peerIp, peerMac] of [
      [tb.nsA, tb.ifA, tb.ipA, tb.macA, tb.ifindexA, tb.ipB, tb.macB],
      [tb.nsB, tb.ifB, tb.ipB, tb.macB, tb.ifindexB, tb.ipA, tb.macA],
    ] as const) {
      assert.match(mac, /^02(:[0-9a-f]{2}){5}$/);
      const link = linkIn(ns, ifname);
      assert.equal(link.operstate, 'UP', `${ifname} in ${ns}`);
      assert.ok(link.flags.includes('UP') && link.flags.includes('LOWER_UP'));
      assert.equal(link.address, mac);
      assert.equal(link.ifindex, ifindex);
      assert.equal(link.mtu, 1500);
      const inet = (link.addr_info ?? []).filter((a) => a.family === 'inet');
      assert.deepEqual(inet.map((a) => [a.local, a.prefixlen]), [[ip, 30]]);
      assert.deepEqual((link.addr_info ?? []).filter((a) => a.family === 'inet6'), [], 'IPv6 is off');
      const lo = linkIn(ns, 'lo');
      assert.ok(lo.flags.includes('UP'), `lo up in ${ns}`);
      // The only interfaces in the namespace: lo and our end.
      const all = (JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show'])) as IpLink[]).map((l) => l.ifname).sort();
      assert.deepEqual(all, [ifname, 'lo'].sort());
      const neigh = JSON.parse(sh('ip', ['-n', ns, '-j', 'neigh', 'show', 'dev', ifname])) as Array<{ dst: string; lladdr: string; state: string[] }>;
      assert.deepEqual(neigh.map((n) => [n.dst, n.lladdr, n.state]), [[peerIp, peerMac, ['PERMANENT']]]);
      const f = features(ns, ifname);
      assert.equal(f.get('tx-checksumming'), 'off');
      assert.equal(f.get('tx-checksum-ip-generic'), 'off');
      assert.equal(f.get('generic-receive-offload'), 'off');
      const channels = sh('ip', ['netns', 'exec', ns, 'ethtool', '-l', ifname]);
      assert.match(channels, /Current hardware settings:\s*\nRX:\s*1\s*\nTX:\s*1\b/);
    }
    // Nothing of it appears in the root namespace.
    const root = rootLinks();
    assert.ok(!root.includes(tb.ifA) && !root.includes(tb.ifB));
  } finally {
    tb.destroy();
  }
});

test('options: queues, MTU, GRO on, a subnet of our own', { skip, timeout: TIMEOUT }, () => {
  const tb = createTestbed({ queues: 2, mtu: 9000, gro: true, subnet: '192.168.77.0/24' });
  try {
    assert.deepEqual([tb.ipA, tb.ipB, tb.prefixLength, tb.mtu, tb.queues, tb.gro], ['192.168.77.1', '192.168.77.2', 24, 9000, 2, true]);
    for (const [ns, ifname, ip] of [[tb.nsA, tb.ifA, tb.ipA], [tb.nsB, tb.ifB, tb.ipB]] as const) {
      const link = linkIn(ns, ifname);
      assert.equal(link.mtu, 9000);
      assert.deepEqual((link.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => [a.local, a.prefixlen]), [[ip, 24]]);
      const f = features(ns, ifname);
      assert.equal(f.get('generic-receive-offload'), 'on');
      assert.equal(f.get('tx-checksumming'), 'off');
      assert.match(sh('ip', ['netns', 'exec', ns, 'ethtool', '-l', ifname]), /Current hardware settings:\s*\nRX:\s*2\s*\nTX:\s*2\b/);
    }
  } finally {
    tb.destroy();
  }
});

test('a UDP datagram from a node child in nsA reaches a node child in nsB', { skip, timeout: TIMEOUT }, async () => {
  const tb = createTestbed();
  try {
    const got = await udpAcross(tb, 'hello across the veth');
    assert.deepEqual(got, { msg: 'hello across the veth', from: tb.ipA });
  } finally {
    tb.destroy();
  }
});

test('destroy() removes both namespaces and the veth pair, kills what runs inside, and is idempotent', { skip, timeout: TIMEOUT }, async () => {
  const tb = createTestbed();
  assert.ok(namespaces().includes(tb.nsA) && namespaces().includes(tb.nsB));
  const sleeper = runIn(tb.nsA, 'sleep', ['30'], { env: ENV });
  // Wait until it runs in the namespace (ip netns exec has switched and exec'd).
  const end = Date.now() + 5000;
  while (!sh('ip', ['netns', 'pids', tb.nsA]).split(/\s+/).includes(String(sleeper.child.pid))) {
    assert.ok(Date.now() < end, 'sleep never showed up in the namespace');
    await sleep(10);
  }
  assert.equal(tb.destroyed, false);
  tb.destroy();
  assert.equal(tb.destroyed, true);
  const r = await sleeper.result;
  assert.equal(r.signal, 'SIGKILL');
  const after = namespaces();
  assert.ok(!after.includes(tb.nsA) && !after.includes(tb.nsB));
  const root = rootLinks();
  assert.ok(!root.includes(tb.ifA) && !root.includes(tb.ifB));
  tb.destroy(); // again: nothing happens
  assert.deepEqual(ours(), []);
});

test('two testbeds at once: different names, subnets and MACs, both carry traffic', { skip, timeout: TIMEOUT }, async () => {
  const one = createTestbed();
  const two = createTestbed();
  try {
    const names = [one.nsA, one.nsB, two.nsA, two.nsB];
    assert.equal(new Set(names).size, 4);
    assert.equal(new Set([one.ipA, one.ipB, two.ipA, two.ipB]).size, 4);
    assert.equal(new Set([one.macA, one.macB, two.macA, two.macB]).size, 4);
    const [a, b] = await Promise.all([udpAcross(one, 'one'), udpAcross(two, 'two')]);
    assert.deepEqual(a, { msg: 'one', from: one.ipA });
    assert.deepEqual(b, { msg: 'two', from: two.ipA });
    one.destroy();
    // The other is untouched.
    assert.equal(linkIn(two.nsA, two.ifA).operstate, 'UP');
    assert.deepEqual(await udpAcross(two, 'still'), { msg: 'still', from: two.ipA });
  } finally {
    one.destroy();
    two.destroy();
  }
  assert.deepEqual(ours(), []);
});

test('a failure half-way (an MTU the kernel refuses) throws ERR_KBYPASS_TESTBED and leaves nothing behind', { skip, timeout: TIMEOUT }, () => {
  // Only names of ours are compared: other test processes may be making their own testbeds meanwhile.
  const links = (): string[] => rootLinks().filter((l) => l.startsWith(TESTBED_PREFIX));
  const linksBefore = links();
  for (const mtu of [10, 100_000]) {
    assert.throws(() => createTestbed({ mtu }), (e: Error & { code?: string; command?: string[]; stderr?: string }) => {
      assert.equal(e.code, 'ERR_KBYPASS_TESTBED');
      assert.match(e.message, /`.*ip -n kbp-\S+ link set dev kbp-\S+ mtu \d+` failed \(exit status \d+\): .*mtu/i);
      assert.ok(e.command?.includes(String(mtu)));
      assert.match(e.stderr ?? '', /mtu/i);
      return true;
    });
    assert.deepEqual(ours(), []);
    assert.deepEqual(links(), linksBefore);
  }
});

test('bad options are refused before anything is made', { skip, timeout: TIMEOUT }, () => {
  const cases: Array<[object, string]> = [
    [{ queues: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ queues: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ mtu: -1 }, 'ERR_OUT_OF_RANGE'],
    [{ mtu: '1500' }, 'ERR_INVALID_ARG_TYPE'],
    [{ gro: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
    [{ subnet: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ subnet: '10.0.0.1/30' }, 'ERR_INVALID_ARG_VALUE'],
    [{ subnet: '10.0.0.0/31' }, 'ERR_INVALID_ARG_VALUE'],
    [{ subnet: '10.0.300.0/24' }, 'ERR_INVALID_ARG_VALUE'],
    [{ subnet: 'fe80::/64' }, 'ERR_INVALID_ARG_VALUE'],
  ];
  for (const [options, code] of cases) {
    assert.throws(() => createTestbed(options as never), { code }, JSON.stringify(options));
  }
  assert.deepEqual(ours(), []);
});

test('sweepStaleTestbeds removes namespaces named for dead pids (and kills what runs in them), and nothing else', { skip, timeout: TIMEOUT }, async () => {
  const dead = deadPid().toString(36);
  const stale = `${TESTBED_PREFIX}${dead}-0a`;
  const alive = `${TESTBED_PREFIX}1-0a`; // pid 1 is alive
  const foreign = `kbpnot-${dead}-0a`; // not our prefix
  const made: string[] = [];
  let orphan: ReturnType<typeof spawn> | null = null;
  try {
    for (const ns of [stale, alive, foreign]) {
      sh('ip', ['netns', 'add', ns]);
      made.push(ns);
    }
    sh('ip', ['link', 'add', 'kbpstale0', 'netns', stale, 'type', 'veth', 'peer', 'name', 'kbpstale1', 'netns', stale]);
    // A process left inside, like an orphaned fixture.
    orphan = spawn('ip', ['netns', 'exec', stale, 'sleep', '30'], { env: ENV, stdio: 'ignore' });
    const end = Date.now() + 5000;
    while (!sh('ip', ['netns', 'pids', stale]).split(/\s+/).includes(String(orphan.pid))) {
      assert.ok(Date.now() < end, 'sleep never showed up in the namespace');
      await sleep(10);
    }
    const exited = new Promise<string | null>((resolve) => orphan!.once('exit', (_code, signal) => resolve(signal)));
    const removed = sweepStaleTestbeds();
    assert.ok(removed.includes(stale), `removed ${removed.join(', ')}`);
    assert.ok(!removed.includes(alive) && !removed.includes(foreign));
    const now = namespaces();
    assert.ok(!now.includes(stale));
    assert.ok(now.includes(alive) && now.includes(foreign));
    assert.equal(await exited, 'SIGKILL');
  } finally {
    orphan?.kill('SIGKILL');
    for (const ns of made) spawnSync('ip', ['netns', 'delete', ns], { env: ENV, timeout: 15_000 });
  }
});

// A child process that makes a testbed with a process inside, reports, then ends as the test asks: 'exit'
// (process.exit without destroy()), 'wait' (until a signal).
const LIFECYCLE = `
const { createTestbed, runIn } = require(process.argv[1]);
const tb = createTestbed();
const sleeper = runIn(tb.nsA, 'sleep', ['30']);
sleeper.child.once('spawn', () => {
  console.log(JSON.stringify({ nsA: tb.nsA, nsB: tb.nsB, sleepPid: sleeper.child.pid }));
  if (process.argv[2] === 'exit') process.exit(0);
  setTimeout(() => process.exit(4), 30000);
});
`;

async function lifecycle(mode: 'exit' | 'wait', signal?: NodeJS.Signals): Promise<{ info: { nsA: string; nsB: string; sleepPid: number }; code: number | null; signal: string | null }> {
  const child = spawn(process.execPath, ['-e', LIFECYCLE, MODULE, mode], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('close', (code, sig) => resolve({ code, signal: sig })));
  const end = Date.now() + 20_000;
  while (!stdout.includes('\n')) {
    if (Date.now() > end || child.exitCode !== null || child.signalCode !== null) break;
    await sleep(10);
  }
  if (!stdout.includes('\n')) {
    child.kill('SIGKILL');
    clearTimeout(killer);
    throw new Error(`the child did not report: ${stderr}`);
  }
  const info = JSON.parse(stdout.split('\n')[0]!) as { nsA: string; nsB: string; sleepPid: number };
  if (signal) child.kill(signal);
  const r = await closed;
  clearTimeout(killer);
  return { info, ...r };
}

test("a process's testbeds are removed on 'exit', SIGINT and SIGTERM (the signal is re-raised); after SIGKILL the sweep gets them", { skip, timeout: TIMEOUT }, async () => {
  for (const [mode, signal] of [['exit', undefined], ['wait', 'SIGTERM'], ['wait', 'SIGINT']] as const) {
    const r = await lifecycle(mode, signal);
    const label = signal ?? mode;
    if (signal) assert.equal(r.signal, signal, label);
    else assert.equal(r.code, 0, label);
    const now = namespaces();
    assert.ok(!now.includes(r.info.nsA) && !now.includes(r.info.nsB), `${label}: namespaces left`);
    assert.ok(await gone(r.info.sleepPid), `${label}: the process inside survived`);
  }
  const killed = await lifecycle('wait', 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  let now = namespaces();
  assert.ok(now.includes(killed.info.nsA) && now.includes(killed.info.nsB), 'SIGKILL leaves them (nothing can run)');
  const removed = sweepStaleTestbeds();
  assert.ok(removed.includes(killed.info.nsA) && removed.includes(killed.info.nsB));
  now = namespaces();
  assert.ok(!now.includes(killed.info.nsA) && !now.includes(killed.info.nsB));
  assert.ok(await gone(killed.info.sleepPid), 'the orphan inside survived the sweep');
});

test('runIn: timeouts (SIGKILL), JSON lines (non-JSON skipped, none missed), failures with their stderr', { skip, timeout: TIMEOUT }, async () => {
  const tb = createTestbed();
  try {
    const slow = runIn(tb.nsA, 'sleep', ['30'], { timeoutMs: 200, env: ENV });
    const r = await slow.result;
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    await assert.rejects(slow.nextJson(), { code: 'ERR_KBYPASS_TESTBED', message: /past its timeout/ });

    const talker = runIn(tb.nsB, process.execPath, ['-e', `
      console.log('not json');
      console.log(JSON.stringify({ n: 1 }));
      process.stdout.write(JSON.stringify({ n: 2 }) + '\\n' + JSON.stringify({ n: 3 }));
    `]);
    await talker.succeeded();
    assert.deepEqual([await talker.nextJson(), await talker.nextJson(), await talker.nextJson()], [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await assert.rejects(talker.nextJson(), { code: 'ERR_KBYPASS_TESTBED', message: /exited with status 0/ });
    assert.match((await talker.result).stdout, /^not json\n/);

    const silent = runIn(tb.nsA, 'sleep', ['30'], { env: ENV });
    await assert.rejects(silent.nextJson(100), { code: 'ERR_KBYPASS_TESTBED', message: /no JSON line .* within 100 ms/ });
    silent.kill();
    assert.equal((await silent.result).signal, 'SIGKILL');

    const failing = runIn(tb.nsA, 'sh', ['-c', 'echo oops >&2; exit 3'], { env: ENV });
    await assert.rejects(failing.succeeded(), { code: 'ERR_KBYPASS_TESTBED', message: /exited with status 3.*oops/s });

    const echo = runIn(tb.nsA, 'cat', [], { input: '{"echo":true}\n', env: ENV });
    assert.deepEqual(await echo.nextJson(), { echo: true });
    await echo.succeeded();

    // It really runs in the namespace: it sees only lo and its veth end.
    const links = runIn(tb.nsB, 'ip', ['-j', 'link', 'show'], { env: ENV });
    const list = (await links.nextJson<Array<{ ifname: string }>>()).map((l) => l.ifname).sort();
    assert.deepEqual(list, [tb.ifB, 'lo'].sort());
  } finally {
    tb.destroy();
  }
});

test('nothing of this process is left', { skip, timeout: TIMEOUT }, () => {
  assert.deepEqual(ours(), []);
  assert.ok(!rootLinks().some((l) => l.startsWith(TESTBED_PREFIX)));
});
