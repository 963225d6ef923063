// Published port statistics: the publisher/reader round trip, atomic replacement (a reader never sees part of a
// file), removal of a killed process's files, skipping of anything that is not a version-1 file, and a directory
// that cannot be used (null, never a throw).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PortStats } from './port-base';
import {
  DEFAULT_STATS_DIR, STATS_FILE_VERSION, StatsPublisher, isProcessAlive, readPublishedPorts, statsDir, type PortIdentity,
} from './stats-file';

const MODULE = path.join(__dirname, 'stats-file.js');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-stats-test-'));
}

const IDENTITY: PortIdentity = {
  mode: 'xdp', ifname: 'veth0', ifindex: 7, queue: 1, xdpMode: 'native', zeroCopy: false,
  fallbackReason: 'zero-copy refused by the driver of veth0 (EOPNOTSUPP): using copy mode',
};

function fakeStats(n: number): PortStats {
  return {
    rxPackets: n, rxBytes: n * 64, txSubmitted: n + 2, txCompleted: n + 1, txBytes: n * 60, held: 3,
    drops: { rxRingFull: 5, rxFillRingEmpty: 0 },
    kernel: { rxDropped: 5, rxInvalidDescs: 0, txInvalidDescs: 0, rxRingFull: 5, rxFillRingEmptyDescs: 0, txRingEmptyDescs: 9 },
  };
}

/** Run a child that publishes to `dir` (script below), resolve with it once it printed its file's path. */
function publishingChild(dir: string, body: string): Promise<{ child: ReturnType<typeof spawn>; file: string }> {
  const script = `
    const { StatsPublisher } = require(${JSON.stringify(MODULE)});
    const pub = StatsPublisher.open(${JSON.stringify(IDENTITY)}, ${JSON.stringify(dir)});
    if (pub === null) { console.error('not published'); process.exit(3); }
    ${body}
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, file: out.slice(0, nl) });
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before publishing`)));
  });
}

function exited(child: ReturnType<typeof spawn>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

test('round trip: open publishes zero counters, update replaces them, close removes the file', () => {
  const dir = path.join(tmpDir(), 'missing', 'stats');
  const pub = StatsPublisher.open(IDENTITY, dir);
  assert.ok(pub !== null);
  try {
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700, 'the directory is created 0700');
    assert.equal(fs.statSync(pub.file).mode & 0o777, 0o600, 'files are 0600');
    assert.match(path.basename(pub.file), new RegExp(`^${process.pid}-[0-9]+\\.json$`));

    let [p] = readPublishedPorts(dir);
    assert.ok(p !== undefined);
    assert.equal(p.stats.rxPackets, 0);
    assert.deepEqual(p.stats.drops, {});

    const before = Date.now();
    assert.equal(pub.update(fakeStats(1000)), true);
    const ports = readPublishedPorts(dir);
    assert.equal(ports.length, 1);
    p = ports[0]!;
    assert.equal(p.version, STATS_FILE_VERSION);
    assert.equal(p.pid, process.pid);
    assert.equal(p.alive, true);
    assert.equal(p.file, pub.file);
    assert.equal(p.mode, 'xdp');
    assert.equal(p.ifname, 'veth0');
    assert.equal(p.ifindex, 7);
    assert.equal(p.queue, 1);
    assert.equal(p.xdpMode, 'native');
    assert.equal(p.zeroCopy, false);
    assert.equal(p.fallbackReason, IDENTITY.fallbackReason);
    assert.ok(p.startedAt <= p.updatedAt && p.updatedAt >= before && p.updatedAt <= Date.now());
    assert.deepEqual(p.stats, fakeStats(1000));
    // No temporary file is left behind.
    assert.deepEqual(fs.readdirSync(dir), [path.basename(pub.file)]);
  } finally {
    pub.close();
  }
  assert.equal(fs.existsSync(pub.file), false);
  assert.deepEqual(readPublishedPorts(dir), []);
  pub.close(); // idempotent
  assert.equal(pub.closed, true);
  assert.equal(pub.update(fakeStats(1)), false, 'a closed publisher writes nothing');
  assert.equal(fs.existsSync(pub.file), false);
});

test('identity is read at each write (a fallbackReason set after open shows); two ports get two files', () => {
  const dir = tmpDir();
  const id = { ...IDENTITY, mode: 'packet' as 'xdp' | 'packet', xdpMode: null, fallbackReason: '' };
  const a = StatsPublisher.open(id, dir)!;
  const b = StatsPublisher.open({ ...IDENTITY, queue: 0 }, dir)!;
  try {
    assert.notEqual(a.file, b.file);
    id.fallbackReason = 'AF_XDP unavailable: EPERM';
    a.update(fakeStats(1));
    const ports = readPublishedPorts(dir);
    assert.equal(ports.length, 2);
    // Sorted by interface, then queue.
    assert.deepEqual(ports.map((p) => [p.queue, p.mode, p.xdpMode]), [[0, 'xdp', 'native'], [1, 'packet', null]]);
    assert.equal(ports[1]!.fallbackReason, 'AF_XDP unavailable: EPERM');
  } finally {
    a.close();
    b.close();
  }
});

test('a name already taken is never overwritten', () => {
  const dir = tmpDir();
  // Files under this pid that claim to have started now (so nobody takes them for an earlier process's).
  const now = Date.now();
  const theirs = JSON.stringify({
    version: 1, pid: process.pid, startedAt: now, ...IDENTITY, updatedAt: now, stats: fakeStats(123),
  });
  const taken = new Set<string>();
  for (let n = 0; n < 64; n++) {
    const name = `${process.pid}-${n}.json`;
    fs.writeFileSync(path.join(dir, name), theirs);
    taken.add(name);
  }
  const pubs: StatsPublisher[] = [];
  try {
    for (let i = 0; i < 70; i++) {
      const pub = StatsPublisher.open(IDENTITY, dir);
      assert.ok(pub !== null);
      pubs.push(pub);
    }
    for (const name of taken) {
      assert.equal(fs.readFileSync(path.join(dir, name), 'utf8'), theirs, name);
      assert.ok(!pubs.some((p) => path.basename(p.file) === name), name);
    }
    assert.equal(new Set(pubs.map((p) => p.file)).size, pubs.length);
  } finally {
    for (const p of pubs) p.close();
  }
});

test('atomic replacement: a reader never sees a partial or missing file while another process rewrites it', async () => {
  const dir = tmpDir();
  // The child rewrites its file as fast as it can, with ~30 KiB of counters all equal to the round number.
  const { child, file } = await publishingChild(dir, `
    const keys = Array.from({ length: 250 }, (_, i) => 'counter_with_a_long_name_' + i);
    const stats = (n) => ({ rxPackets: n, rxBytes: n, txSubmitted: n, txCompleted: n, txBytes: n, held: n,
      drops: Object.fromEntries(keys.slice(0, 40).map((k) => [k, n])), kernel: Object.fromEntries(keys.map((k) => [k, n])) });
    pub.update(stats(1));
    console.log(pub.file);
    let n = 1;
    const end = Date.now() + 1500;
    while (Date.now() < end) pub.update(stats(++n));
    console.error('child rounds ' + n);
    pub.close();
  `);
  let reads = 0;
  let last = 0;
  const seen = new Set<number>();
  try {
    for (let i = 0; i < 1_000_000 && child.exitCode === null; i++) {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT' && child.exitCode === null && !fs.existsSync(file)) {
          // close() at the end removes the file: only then may it be missing.
          await exited(child);
          break;
        }
        throw e;
      }
      const o = JSON.parse(text) as { stats: PortStats };
      const n = o.stats.rxPackets;
      assert.ok(Object.values(o.stats.kernel).every((v) => v === n), 'every counter from one write');
      assert.ok(Object.values(o.stats.drops).every((v) => v === n));
      assert.ok(n >= last, 'never an older content after a newer one');
      last = n;
      seen.add(n);
      reads++;
      if (i % 64 === 0) await new Promise((r) => setImmediate(r)); // let the child's exit be noticed
    }
  } finally {
    child.kill('SIGKILL');
    await exited(child);
  }
  assert.ok(reads > 50, `read ${reads} times`);
  assert.ok(seen.size > 10, `saw ${seen.size} different writes`);
});

test('the files of a SIGKILLed process are seen as not alive and removed with removeStale', async () => {
  const dir = tmpDir();
  const { child, file } = await publishingChild(dir, `
    pub.update({ rxPackets: 42, rxBytes: 0, txSubmitted: 0, txCompleted: 0, txBytes: 0, held: 0, drops: {}, kernel: {} });
    console.log(pub.file);
    setInterval(() => {}, 1000);
  `);
  const pid = child.pid!;
  // A temporary file that the killed process might have left mid-write.
  const tmp = path.join(dir, `.${pid}-9.json.tmp`);
  fs.writeFileSync(tmp, '{"version":1,"pi');
  let ports = readPublishedPorts(dir);
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!.pid, pid);
  assert.equal(ports[0]!.alive, true);
  assert.equal(ports[0]!.stats.rxPackets, 42);

  child.kill('SIGKILL');
  await exited(child);
  assert.equal(isProcessAlive(pid), false);
  ports = readPublishedPorts(dir);
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!.alive, false);
  assert.ok(fs.existsSync(file), 'not removed without removeStale');

  ports = readPublishedPorts(dir, { removeStale: true });
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!.alive, false);
  assert.equal(fs.existsSync(file), false);
  assert.equal(fs.existsSync(tmp), false);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('a process that exits without closing its publisher removes its file', async () => {
  const dir = tmpDir();
  const { child, file } = await publishingChild(dir, 'console.log(pub.file);');
  await exited(child);
  assert.equal(child.exitCode, 0);
  assert.equal(fs.existsSync(file), false);
});

test('partial, garbage, other-version and foreign files are skipped, not thrown on', () => {
  const dir = tmpDir();
  const pub = StatsPublisher.open(IDENTITY, dir)!;
  try {
    pub.update(fakeStats(7));
    const good = JSON.parse(fs.readFileSync(pub.file, 'utf8')) as Record<string, unknown>;
    const pid = process.pid;
    const write = (name: string, content: string) => fs.writeFileSync(path.join(dir, name), content);
    write(`${pid}-900.json`, '');
    write(`${pid}-901.json`, JSON.stringify(good).slice(0, 100));
    write(`${pid}-902.json`, '\x00\x01garbage\xff');
    write(`${pid}-903.json`, JSON.stringify({ ...good, version: 2 }));
    write(`${pid}-904.json`, JSON.stringify({ ...good, pid: pid + 1 }));                   // not the name's pid
    write(`${pid}-905.json`, JSON.stringify({ ...good, stats: { ...fakeStats(1), rxPackets: 'x' } }));
    write(`${pid}-906.json`, JSON.stringify({ ...good, mode: 'dpdk' }));
    write(`${pid}-907.json`, JSON.stringify([1, 2, 3]));
    write(`${pid}-908.json`, 'null');
    write(`${pid}-909.json`, JSON.stringify({ ...good, stats: { ...fakeStats(1), kernel: { a: -1 } } }));
    write(`${pid}-910.json`, ' '.repeat(70 * 1024));                                       // too large
    fs.mkdirSync(path.join(dir, `${pid}-911.json`));                                     // a directory
    fs.symlinkSync(pub.file, path.join(dir, `${pid}-912.json`));                         // a symlink
    write('notes.txt', 'hello');
    write('abc-1.json', JSON.stringify(good));
    write(`0-1.json`, JSON.stringify({ ...good, pid: 0 }));
    const ports = readPublishedPorts(dir, { removeStale: true });
    assert.equal(ports.length, 1);
    assert.equal(ports[0]!.file, pub.file);
    assert.deepEqual(ports[0]!.stats, fakeStats(7));
    // Foreign files of a live pid and files that are not ours by name are left alone.
    assert.ok(fs.existsSync(path.join(dir, 'notes.txt')));
    assert.ok(fs.existsSync(path.join(dir, `${pid}-902.json`)));
  } finally {
    pub.close();
  }
});

test('a directory that cannot be used gives null, never a throw; a missing one reads as no ports', () => {
  const base = tmpDir();
  const file = path.join(base, 'a-file');
  fs.writeFileSync(file, 'x');
  assert.equal(StatsPublisher.open(IDENTITY, file), null, 'a regular file');
  assert.equal(StatsPublisher.open(IDENTITY, path.join(file, 'sub')), null, 'below a regular file');
  const real = path.join(base, 'real');
  fs.mkdirSync(real);
  fs.symlinkSync(real, path.join(base, 'link'));
  assert.equal(StatsPublisher.open(IDENTITY, path.join(base, 'link')), null, 'a symbolic link');
  assert.equal(StatsPublisher.open(IDENTITY, '/proc/kbypass-stats'), null, 'a file system that refuses');
  assert.deepEqual(readPublishedPorts(path.join(base, 'missing')), []);
  assert.throws(() => readPublishedPorts(file), { code: 'ENOTDIR' });
});

test('the directory: the argument, else $KBYPASS_STATS_DIR, else /dev/shm/kbypass-stats', () => {
  const saved = process.env['KBYPASS_STATS_DIR'];
  try {
    delete process.env['KBYPASS_STATS_DIR'];
    assert.equal(statsDir(), DEFAULT_STATS_DIR);
    assert.equal(DEFAULT_STATS_DIR, '/dev/shm/kbypass-stats');
    process.env['KBYPASS_STATS_DIR'] = '';
    assert.equal(statsDir(), DEFAULT_STATS_DIR);
    const dir = tmpDir();
    process.env['KBYPASS_STATS_DIR'] = dir;
    assert.equal(statsDir(), dir);
    assert.equal(statsDir('/x'), '/x');
    const pub = StatsPublisher.open(IDENTITY)!;
    try {
      assert.equal(path.dirname(pub.file), dir);
      assert.equal(readPublishedPorts().length, 1);
    } finally {
      pub.close();
    }
  } finally {
    if (saved === undefined) delete process.env['KBYPASS_STATS_DIR']; else process.env['KBYPASS_STATS_DIR'] = saved;
  }
});

test('start() writes now and on a timer that does not keep the process alive; close() stops it', async () => {
  const dir = tmpDir();
  const pub = StatsPublisher.open(IDENTITY, dir)!;
  let n = 0;
  let throwNext = false;
  pub.start(() => {
    if (throwNext) { throwNext = false; throw new Error('port gone'); }
    return fakeStats(++n);
  }, 100);
  try {
    assert.equal(readPublishedPorts(dir)[0]!.stats.rxPackets, 1, 'written at once');
    throwNext = true; // a read that throws skips one write
    await new Promise((r) => setTimeout(r, 450));
    const seen = readPublishedPorts(dir)[0]!.stats.rxPackets;
    assert.ok(seen >= 2 && seen === n, `rxPackets ${seen}, reads ${n}`);
  } finally {
    pub.close();
  }
  const after = n;
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(n, after, 'no reads after close');
  assert.deepEqual(fs.readdirSync(dir), []);
});
