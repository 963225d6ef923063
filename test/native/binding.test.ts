/**
 * The native core (native/*.c) through its loader, one function at a time, asserting real kernel-visible
 * behaviour: seals refuse ftruncate, two mappings share bytes, fds really cross a Unix socket, watchers fire on
 * the event loop, error objects carry code/errno/syscall, no fd leaks on error paths. Also the kbypass-floor
 * benchmark binary.
 *
 * Run: npx tsc -p tsconfig.json && node --expose-gc --test dist/test/native/binding.test.js
 */
import { describe, it, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, execFileSync } from 'node:child_process';
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  native, MEMFD_HUGETLB, MAP_LOCK, MAP_POPULATE, WATCH_READABLE, WATCH_WRITABLE, type WatchHandle,
} from '../../src/native/binding';

const n = native();
const F_SEAL_SEAL = 1;
const F_SEAL_SHRINK = 2;
const F_SEAL_GROW = 4;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kbypass-native-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bindingModule = path.resolve(__dirname, '../../src/native/binding');
const buildDir = process.env['KBYPASS_NATIVE']
  ? path.dirname(path.resolve(process.env['KBYPASS_NATIVE']))
  : path.resolve(__dirname, '..', '..', '..', 'build', 'Release');
const floorBin = path.join(buildDir, 'kbypass-floor');

let uniq = 0;
function unique(prefix: string): string {
  uniq += 1;
  return `${prefix}-${process.pid}-${uniq}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The open-file flags of fd, from /proc/self/fdinfo. */
function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(m?.[1], `no flags for fd ${fd}`);
  return parseInt(m[1], 8);
}
function assertCloexec(fd: number, nonblock = false): void {
  const flags = fdFlags(fd);
  assert.ok(flags & O_CLOEXEC, `fd ${fd} must be close-on-exec (flags ${flags.toString(8)})`);
  if (nonblock) assert.ok(flags & O_NONBLOCK, `fd ${fd} must be non-blocking (flags ${flags.toString(8)})`);
}
function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
function fdOpen(fd: number): boolean {
  return fs.existsSync(`/proc/self/fd/${fd}`);
}

/** Expect a system error shaped like Node's: code, negative errno, syscall, readable message. */
function throwsSys(fn: () => unknown, code: string | string[], syscall: string): void {
  const codes = Array.isArray(code) ? code : [code];
  assert.throws(fn, (e: unknown) => {
    const err = e as Error & { code?: string; errno?: number; syscall?: string };
    assert.ok(err instanceof Error, 'an Error');
    assert.ok(codes.includes(err.code ?? ''), `code ${String(err.code)} not in ${codes.join('/')}: ${err.message}`);
    const expected = (os.constants.errno as Record<string, number>)[err.code ?? ''];
    assert.equal(err.errno, -(expected ?? NaN), 'errno is the negative errno number');
    assert.equal(err.syscall, syscall);
    assert.match(err.message, new RegExp(`^${syscall} failed: ${err.code} \\(.+\\)$`));
    return true;
  });
}
function throwsType(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TypeError, `TypeError expected, got ${String(e)}`);
    assert.equal((e as { code?: string }).code, 'ERR_INVALID_ARG_TYPE');
    return true;
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** fds opened by a test, closed when the whole file finishes (tests close their own where it matters). */
const opened: number[] = [];
function track(fd: number): number {
  opened.push(fd);
  return fd;
}
after(() => {
  for (const fd of opened) {
    try { n.close(fd); } catch { /* already closed by the test */ }
  }
});

/** Tests that need a GC on demand are skipped (not hung) without --expose-gc. */
const NEEDS_GC = typeof (globalThis as { gc?: unknown }).gc === 'function' ? false : 'needs node --expose-gc';

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  assert.ok(g, 'run with --expose-gc');
  g();
}

/** A connected pair through a path listener: [listenFd, client, server]. */
function connectedPair(): [number, number, number] {
  const name = unique('pair');
  const lfd = track(n.unixListen(name, true, 0o600, 8));
  const cli = track(n.unixConnect(name, true));
  const srv = n.unixAccept(lfd);
  assert.ok(srv >= 0, 'accept after connect');
  track(srv);
  return [lfd, cli, srv];
}

// ---------------------------------------------------------------------------------------------------------

describe('memfd regions', () => {
  it('memfdCreate: size, seals, CLOEXEC; sealed fds refuse ftruncate (EPERM)', () => {
    const fd = track(n.memfdCreate('kb-test', 65536, 0));
    assert.ok(Number.isInteger(fd) && fd >= 0);
    assert.equal(n.fdSize(fd), 65536);
    assert.equal(n.fdSeals(fd), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    assertCloexec(fd);
    assert.match(fs.readlinkSync(`/proc/self/fd/${fd}`), /^\/memfd:kb-test \(deleted\)$/);
    assert.throws(() => fs.ftruncateSync(fd, 4096), { code: 'EPERM' });
    assert.throws(() => fs.ftruncateSync(fd, 131072), { code: 'EPERM' });
    assert.equal(n.fdSize(fd), 65536);
    // Not write-sealed: ordinary writes within the size still work.
    assert.equal(fs.writeSync(fd, Buffer.from('abc'), 0, 3, 0), 3);
  });

  it('memfdCreate: failures throw system errors and leak no fd', () => {
    const before = fdCount();
    throwsSys(() => n.memfdCreate('n'.repeat(300), 4096, 0), 'EINVAL', 'memfd_create'); // name > 249 bytes
    throwsSys(() => n.memfdCreate('neg', -1, 0), 'EINVAL', 'ftruncate');
    assert.equal(fdCount(), before);
  });

  it('memfdCreate with MEMFD_HUGETLB: a region, or a clean system error when huge pages are unavailable', () => {
    const before = fdCount();
    const huge = 2 * 1024 * 1024;
    let fd = -1;
    try {
      fd = n.memfdCreate('kb-huge', huge, MEMFD_HUGETLB);
    } catch (e) {
      const err = e as { code?: string; syscall?: string };
      assert.match(err.code ?? '', /^E[A-Z0-9]+$/);
      assert.ok(['memfd_create', 'ftruncate', 'fcntl'].includes(err.syscall ?? ''), String(err.syscall));
      assert.equal(fdCount(), before);
      return;
    }
    assert.equal(n.fdSize(fd), huge);
    n.close(fd);
    assert.equal(fdCount(), before);
  });

  it('fdSize / fdSeals on a non-memfd; bad fds give EBADF', () => {
    const file = path.join(tmp, 'plain');
    fs.writeFileSync(file, 'hello');
    const fd = fs.openSync(file, 'r');
    try {
      assert.equal(n.fdSize(fd), 5);
      // Files that were not created sealable: tmpfs reports F_SEAL_SEAL, other filesystems EINVAL.
      let seals: number | string;
      try { seals = n.fdSeals(fd); } catch (e) { seals = String((e as { code?: string }).code); }
      assert.ok(seals === F_SEAL_SEAL || seals === 'EINVAL', String(seals));
    } finally {
      fs.closeSync(fd);
    }
    throwsSys(() => n.fdSize(-1), 'EBADF', 'fstat');
    throwsSys(() => n.fdSeals(-1), 'EBADF', 'fcntl');
  });

  it('mmapShared: bytes written through one mapping are seen through a second mapping and the fd', () => {
    const fd = n.memfdCreate('kb-map', 8192, 0);
    const a = new Uint8Array(n.mmapShared(fd, 8192, 0));
    const b = new Uint8Array(n.mmapShared(fd, 8192, MAP_POPULATE));
    n.close(fd); // mappings outlive the descriptor
    assert.equal(a.byteLength, 8192);
    a[0] = 0x11;
    a[8191] = 0x22;
    new DataView(a.buffer).setUint32(4096, 0xdeadbeef, true);
    assert.equal(b[0], 0x11);
    assert.equal(b[8191], 0x22);
    assert.equal(new DataView(b.buffer).getUint32(4096, true), 0xdeadbeef);
    b[1] = 0x33;
    assert.equal(a[1], 0x33);

    const fd2 = track(n.memfdCreate('kb-map2', 4096, 0));
    const m = new Uint8Array(n.mmapShared(fd2, 4096, 0));
    m.set([1, 2, 3, 4], 100);
    const buf = Buffer.alloc(4);
    fs.readSync(fd2, buf, 0, 4, 100);
    assert.deepEqual([...buf], [1, 2, 3, 4]);
  });

  it('mmapShared: size 0, past the end of the file, or a bad fd are refused', () => {
    const fd = track(n.memfdCreate('kb-map3', 4096, 0));
    throwsSys(() => n.mmapShared(fd, 0, 0), 'EINVAL', 'mmap');
    throwsSys(() => n.mmapShared(fd, -4096, 0), 'EINVAL', 'mmap');
    throwsSys(() => n.mmapShared(fd, 8192, 0), 'EINVAL', 'mmap'); // would SIGBUS past 4096
    throwsSys(() => n.mmapShared(-1, 4096, 0), 'EBADF', 'fstat');
  });

  it('mmapShared with MAP_LOCK locks within the limit', () => {
    const fd = track(n.memfdCreate('kb-lock', 65536, 0));
    const m = new Uint8Array(n.mmapShared(fd, 65536, MAP_LOCK | MAP_POPULATE));
    m[0] = 1;
    assert.equal(m[0], 1);
  });

  it('mmapShared with MAP_LOCK over RLIMIT_MEMLOCK fails with ENOMEM/EPERM from mlock', (t) => {
    const have = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
    if (!have('prlimit') || !have('setpriv')) {
      t.skip('needs prlimit and setpriv');
      return;
    }
    // Drop CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK otherwise) and cap locked memory at 64 KiB.
    const script = `
      const { native } = require(${JSON.stringify(bindingModule)});
      const n = native();
      const fd = n.memfdCreate('kb-overlock', 1 << 20, 0);
      try { n.mmapShared(fd, 1 << 20, 1); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, message: e.message,
                                                maps: require('fs').readFileSync('/proc/self/maps', 'utf8')
                                                  .includes('kb-overlock'), limit: n.memlockLimit() })); }`;
    const r = spawnSync('setpriv', ['--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock',
      'prlimit', '--memlock=65536:65536', process.execPath, '-e', script], { encoding: 'utf8' });
    if (r.status !== 0 && /setpriv|prlimit/.test(r.stderr)) {
      t.skip(`cannot drop CAP_IPC_LOCK here: ${r.stderr.trim()}`);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ok?: boolean; code?: string; errno?: number; syscall?: string;
      message?: string; maps?: boolean; limit?: number[] };
    assert.ok(!out.ok, 'mlock over the limit must fail');
    assert.deepEqual(out.limit, [65536, 65536]);
    assert.ok(out.code === 'ENOMEM' || out.code === 'EPERM', String(out.code));
    assert.equal(out.syscall, 'mlock');
    assert.equal(out.errno, -(os.constants.errno as Record<string, number>)[out.code ?? '']!);
    assert.match(out.message ?? '', /^mlock failed: (ENOMEM|EPERM) \(/);
    assert.equal(out.maps, false, 'the failed mapping was unmapped');
  });

  it('the mapping is unmapped only when the ArrayBuffer is collected', { skip: NEEDS_GC }, async () => {
    const name = unique('kb-gc');
    const mapped = (): boolean => fs.readFileSync('/proc/self/maps', 'utf8').includes(`/memfd:${name}`);
    const fd = n.memfdCreate(name, 65536, 0);
    let ab: ArrayBuffer | undefined = n.mmapShared(fd, 65536, 0);
    n.close(fd);
    new Uint8Array(ab)[0] = 1;
    gc();
    await sleep(5);
    assert.ok(mapped(), 'still mapped while referenced');
    assert.equal(new Uint8Array(ab)[0], 1);
    ab = undefined;
    for (let i = 0; i < 50 && mapped(); i++) {
      gc();
      await new Promise((r) => setImmediate(r));
      await sleep(2);
    }
    assert.ok(!mapped(), 'munmapped after collection');
  });

  it('close: closes, and EBADF on a closed or invalid fd', () => {
    const fd = n.eventfd();
    n.close(fd);
    assert.ok(!fdOpen(fd));
    throwsSys(() => n.close(fd), 'EBADF', 'close');
    throwsSys(() => n.close(-1), 'EBADF', 'close');
  });

  it('memlockLimit matches /proc/self/limits', () => {
    const [soft, hard] = n.memlockLimit();
    const line = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    assert.ok(line);
    const parse = (s: string | undefined): number => (s === 'unlimited' ? -1 : Number(s));
    assert.equal(soft, parse(line[1]));
    assert.equal(hard, parse(line[2]));
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('eventfd doorbells and watchers', () => {
  it('eventfd: non-blocking, CLOEXEC; signal adds one, drain returns the count then 0', () => {
    const fd = track(n.eventfd());
    assertCloexec(fd, true);
    assert.equal(n.eventfdDrain(fd), 0);
    n.eventfdSignal(fd);
    n.eventfdSignal(fd);
    n.eventfdSignal(fd);
    assert.equal(n.eventfdDrain(fd), 3);
    assert.equal(n.eventfdDrain(fd), 0);
    throwsSys(() => n.eventfdSignal(-1), 'EBADF', 'write');
    throwsSys(() => n.eventfdDrain(-1), 'EBADF', 'read');
  });

  it('watch fires on the event loop when the eventfd is signalled; watchStop is idempotent and final', async () => {
    const fd = track(n.eventfd());
    const seen: Array<[number, number, number]> = [];
    const h = n.watch(fd, WATCH_READABLE, (status, events) => {
      seen.push([status, events, n.eventfdDrain(fd)]);
    });
    await sleep(10);
    assert.equal(seen.length, 0, 'nothing before a signal');
    n.eventfdSignal(fd);
    n.eventfdSignal(fd);
    assert.equal(seen.length, 0, 'never synchronously');
    await waitFor(() => seen.length === 1, 'the watcher');
    assert.deepEqual(seen[0], [0, WATCH_READABLE, 2]);
    n.watchStop(h);
    n.watchStop(h);
    n.eventfdSignal(fd);
    await sleep(20);
    assert.equal(seen.length, 1, 'no callback after watchStop');
    assert.equal(n.eventfdDrain(fd), 1);
    n.watchRef(h, true); // harmless on a stopped handle
    throwsSys(() => n.watchUpdate(h, WATCH_READABLE), 'EBADF', 'uv_poll_start');
  });

  it('watchStop from inside the callback', async () => {
    const fd = track(n.eventfd());
    let calls = 0;
    const h: WatchHandle = n.watch(fd, WATCH_READABLE, () => {
      calls += 1;
      n.watchStop(h); // fd stays readable (not drained): a live watcher would fire again
    });
    n.eventfdSignal(fd);
    await waitFor(() => calls === 1, 'the watcher');
    await sleep(20);
    assert.equal(calls, 1);
  });

  it('watchUpdate changes the events watched', async () => {
    const fd = track(n.eventfd());
    const events: number[] = [];
    const h = n.watch(fd, WATCH_WRITABLE, (status, ev) => {
      assert.equal(status, 0);
      events.push(ev);
      if (events.length === 1) n.watchUpdate(h, WATCH_READABLE); // an eventfd is always writable
      if (ev & WATCH_READABLE) n.eventfdDrain(fd); // level-triggered: drain or it fires again
    });
    await waitFor(() => events.length === 1, 'writable');
    assert.equal(events[0], WATCH_WRITABLE);
    await sleep(20);
    assert.equal(events.length, 1, 'no longer watching writable');
    n.eventfdSignal(fd);
    await waitFor(() => events.length === 2, 'readable');
    assert.equal(events[1], WATCH_READABLE);
    await sleep(20);
    assert.equal(events.length, 2, 'drained: quiet again');
    n.watchStop(h);
  });

  it('the callback runs in its own async context and keeps AsyncLocalStorage', async () => {
    const als = new AsyncLocalStorage<string>();
    const fd = track(n.eventfd());
    let store: string | undefined;
    const h = als.run('from-watch', () => n.watch(fd, WATCH_READABLE, () => {
      store = als.getStore();
      n.eventfdDrain(fd);
    }));
    n.eventfdSignal(fd);
    await waitFor(() => store !== undefined, 'the watcher');
    assert.equal(store, 'from-watch');
    n.watchStop(h);
  });

  it('watch: bad fd, non-pollable fd, bad events', () => {
    throwsSys(() => n.watch(-1, WATCH_READABLE, () => undefined), 'EBADF', 'uv_poll_init');
    const file = path.join(tmp, 'regular');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r');
    try {
      throwsSys(() => n.watch(fd, WATCH_READABLE, () => undefined), 'EPERM', 'uv_poll_init');
    } finally {
      fs.closeSync(fd);
    }
    const efd = track(n.eventfd());
    throwsSys(() => n.watch(efd, 64, () => undefined), 'EINVAL', 'uv_poll_start');
  });

  it('an active watcher lives on without its handle; a stopped one is collected', { skip: NEEDS_GC }, async () => {
    const fd = track(n.eventfd());
    let fired = 0;
    let weak: WeakRef<object> | undefined;
    (() => {
      weak = new WeakRef(n.watch(fd, WATCH_READABLE, () => { fired += 1; n.eventfdDrain(fd); }) as unknown as object);
    })();
    await sleep(1);
    for (let i = 0; i < 3; i++) { gc(); await sleep(2); }
    n.eventfdSignal(fd);
    await waitFor(() => fired === 1, 'the unreferenced watcher');
    (() => {
      const h = weak?.deref(); // scoped: a live local would keep the handle reachable
      assert.ok(h, 'the active watcher kept its handle alive');
      n.watchStop(h as unknown as WatchHandle);
    })();
    // deref() pins its target until the current job ends, so never deref and gc() in the same job.
    let collected = false;
    for (let i = 0; i < 50 && !collected; i++) {
      await sleep(1);
      gc();
      await sleep(1);
      collected = weak?.deref() === undefined;
    }
    assert.ok(collected, 'a stopped watcher is collectable');
    n.eventfdSignal(fd);
    await sleep(20);
    assert.equal(fired, 1);
  });

  it('watchRef(false) lets the process exit; a throwing callback is an uncaught exception', () => {
    const script = `
      const { native } = require(${JSON.stringify(bindingModule)});
      const n = native();
      const a = n.eventfd();
      const h = n.watch(a, 1, () => {});
      n.watchRef(h, false);                  // must not keep the loop alive
      const b = n.eventfd();
      const h2 = n.watch(b, 1, () => { n.watchStop(h2); throw new Error('boom-from-watch'); });
      process.on('uncaughtException', (e) => { console.log('caught ' + e.message); });
      n.eventfdSignal(b);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.signal, null, 'exited on its own');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'caught boom-from-watch');
  });

  it('watchers left running in a worker are cleaned up when it exits', async () => {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(`
      const { native } = require(${JSON.stringify(bindingModule)});
      const n = native();
      n.watch(n.eventfd(), 1, () => {});
      n.watch(n.eventfd(), 2, () => {});   // writable at once: fires until the worker goes
      setTimeout(() => process.exit(0), 20);`, { eval: true });
    const code = await new Promise<number>((resolve, reject) => { w.on('exit', resolve); w.on('error', reject); });
    assert.equal(code, 0);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('unix socket rendezvous', () => {
  it('unixListen on a path applies the mode (0600, 0660) before anyone can connect; CLOEXEC everywhere', () => {
    for (const mode of [0o600, 0o660]) {
      const sock = path.join(tmp, unique('s'));
      const lfd = track(n.unixListen(sock, false, mode, 16));
      assertCloexec(lfd, true);
      const st = fs.statSync(sock);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, mode);
      assert.equal(n.unixAccept(lfd), -1, 'nothing pending');
      const cli = track(n.unixConnect(sock, false));
      assertCloexec(cli, true);
      const srv = n.unixAccept(lfd);
      assert.ok(srv >= 0);
      track(srv);
      assertCloexec(srv, true);
      assert.deepEqual(n.peerCred(srv), [process.pid, process.getuid?.(), process.getgid?.()]);
      assert.deepEqual(n.peerCred(cli), [process.pid, process.getuid?.(), process.getgid?.()]);
    }
  });

  it('EADDRINUSE on double bind (path and abstract), without leaking fds', () => {
    const sock = path.join(tmp, unique('dup'));
    track(n.unixListen(sock, false, 0o600, 1));
    const abs = unique('kb-abs-dup');
    track(n.unixListen(abs, true, 0, 1));
    const before = fdCount();
    throwsSys(() => n.unixListen(sock, false, 0o600, 1), 'EADDRINUSE', 'bind');
    throwsSys(() => n.unixListen(abs, true, 0, 1), 'EADDRINUSE', 'bind');
    assert.equal(fdCount(), before);
  });

  it('connect to nothing: ENOENT (no file), ECONNREFUSED (stale file, no abstract listener); no fd leak', () => {
    const before = fdCount();
    throwsSys(() => n.unixConnect(path.join(tmp, 'missing.sock'), false), 'ENOENT', 'connect');
    const stale = path.join(tmp, unique('stale'));
    const lfd = n.unixListen(stale, false, 0o600, 1);
    n.close(lfd); // the socket file stays behind
    throwsSys(() => n.unixConnect(stale, false), 'ECONNREFUSED', 'connect');
    throwsSys(() => n.unixConnect(unique('kb-abs-none'), true), 'ECONNREFUSED', 'connect');
    assert.equal(fdCount(), before);
  });

  it('abstract names: listen, connect, accept; no file is created', () => {
    const name = unique('kb-abstract');
    const lfd = track(n.unixListen(name, true, 0o600, 4));
    assert.ok(!fs.existsSync(name));
    const cli = track(n.unixConnect(name, true));
    const srv = n.unixAccept(lfd);
    assert.ok(srv >= 0);
    track(srv);
    assert.deepEqual(n.peerCred(srv), [process.pid, process.getuid?.(), process.getgid?.()]);
    assert.equal(n.sendFds(cli, new Uint8Array([7]), []), 1);
    const buf = new Uint8Array(4);
    assert.equal(n.recvFds(srv, buf, new Int32Array(0)), 1);
    assert.equal(buf[0], 7);
  });

  it('names: ENAMETOOLONG over sun_path, EINVAL for empty or NUL-containing paths', () => {
    throwsSys(() => n.unixListen(path.join(tmp, 'x'.repeat(120)), false, 0o600, 1), 'ENAMETOOLONG', 'bind');
    throwsSys(() => n.unixListen('y'.repeat(108), true, 0, 1), 'ENAMETOOLONG', 'bind');
    throwsSys(() => n.unixConnect('y'.repeat(108), true), 'ENAMETOOLONG', 'connect');
    track(n.unixListen(`${unique('z')}${'z'.repeat(80)}`.slice(0, 107), true, 0, 1)); // 107 bytes fit
    throwsSys(() => n.unixListen('', false, 0o600, 1), 'EINVAL', 'bind');
    throwsSys(() => n.unixListen('', true, 0o600, 1), 'EINVAL', 'bind');
    throwsSys(() => n.unixListen(path.join(tmp, 'a\0b'), false, 0o600, 1), 'EINVAL', 'bind');
  });

  it('a watcher on the listening fd fires when a client connects', async () => {
    const name = unique('kb-watch-listen');
    const lfd = track(n.unixListen(name, true, 0, 4));
    const accepted: number[] = [];
    const h = n.watch(lfd, WATCH_READABLE, () => {
      for (let fd = n.unixAccept(lfd); fd >= 0; fd = n.unixAccept(lfd)) accepted.push(track(fd));
    });
    track(n.unixConnect(name, true));
    await waitFor(() => accepted.length === 1, 'accept');
    n.watchStop(h);
  });

  it('unixAccept on a non-socket throws ENOTSOCK', () => {
    const fd = track(n.eventfd());
    throwsSys(() => n.unixAccept(fd), 'ENOTSOCK', 'accept4');
  });

  it('sendFds/recvFds pass an eventfd and a memfd that work on the other side', async () => {
    const [, cli, srv] = connectedPair();
    const efd = track(n.eventfd());
    const mfd = track(n.memfdCreate('kb-pass', 4096, 0));
    const local = new Uint8Array(n.mmapShared(mfd, 4096, 0));
    local.set([9, 8, 7], 0);

    assert.equal(n.sendFds(cli, new TextEncoder().encode('hi'), [efd, mfd]), 2);
    const data = new Uint8Array(16);
    const fds = new Int32Array(4).fill(12345);
    assert.equal(n.recvFds(srv, data, fds), 2);
    assert.equal(new TextDecoder().decode(data.subarray(0, 2)), 'hi');
    const [gotEfd, gotMfd] = [fds[0]!, fds[1]!];
    assert.ok(gotEfd >= 0 && gotMfd >= 0 && gotEfd !== efd && gotMfd !== mfd);
    assert.equal(fds[2], -1);
    assert.equal(fds[3], -1);
    track(gotEfd);
    track(gotMfd);
    assertCloexec(gotEfd, true); // MSG_CMSG_CLOEXEC; O_NONBLOCK belongs to the shared open file
    assertCloexec(gotMfd);

    // The received eventfd is the same counter: ringing it wakes a watcher on the original.
    let woke = 0;
    const h = n.watch(efd, WATCH_READABLE, () => { woke = n.eventfdDrain(efd); });
    n.eventfdSignal(gotEfd);
    await waitFor(() => woke === 1, 'the original eventfd to wake');
    n.watchStop(h);

    // The received memfd is the same region, seals included.
    assert.equal(n.fdSize(gotMfd), 4096);
    assert.equal(n.fdSeals(gotMfd), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    const remote = new Uint8Array(n.mmapShared(gotMfd, 4096, 0));
    assert.deepEqual([...remote.subarray(0, 3)], [9, 8, 7]);
    remote[3] = 6;
    assert.equal(local[3], 6);
  });

  it('recvFds closes the fds that do not fit', () => {
    const [, cli, srv] = connectedPair();
    const sent = [n.eventfd(), n.eventfd(), n.eventfd(), n.eventfd()];
    assert.equal(n.sendFds(cli, new Uint8Array([1]), sent), 1);
    for (const fd of sent) n.close(fd); // only the in-flight copies remain
    const before = fdCount();
    const out = new Int32Array(1);
    assert.equal(n.recvFds(srv, new Uint8Array(8), out), 1);
    assert.ok(out[0]! >= 0);
    assert.equal(fdCount(), before + 1, 'exactly one fd kept, three closed');
    n.close(out[0]!);

    // Nothing room for at all: all closed.
    const sent2 = [n.eventfd(), n.eventfd()];
    n.sendFds(cli, new Uint8Array([2]), sent2);
    for (const fd of sent2) n.close(fd);
    const before2 = fdCount();
    assert.equal(n.recvFds(srv, new Uint8Array(8), new Int32Array(0)), 1);
    assert.equal(fdCount(), before2);
  });

  it('sendFds limits: more than 8 fds or no data is EINVAL; EAGAIN when full is -1; recv EAGAIN is -1', () => {
    const [, cli, srv] = connectedPair();
    const efd = track(n.eventfd());
    throwsSys(() => n.sendFds(cli, new Uint8Array(1), new Array<number>(9).fill(efd)), 'EINVAL', 'sendmsg');
    throwsSys(() => n.sendFds(cli, new Uint8Array(0), [efd]), 'EINVAL', 'sendmsg');
    assert.equal(n.recvFds(srv, new Uint8Array(8), new Int32Array(1)), -1, 'nothing to read');
    throwsSys(() => n.recvFds(srv, new Uint8Array(0), new Int32Array(1)), 'EINVAL', 'recvmsg');
    const chunk = new Uint8Array(65536);
    let r = 0;
    for (let i = 0; i < 10000 && r !== -1; i++) r = n.sendFds(cli, chunk, []);
    assert.equal(r, -1, 'a full socket reports -1');
    assert.ok(n.peerAlive(srv), 'data pending: alive');
  });

  it('peerAlive, EOF and EPIPE after the peer closes; shutdownWrite half-closes', () => {
    const [, cli, srv] = connectedPair();
    assert.equal(n.peerAlive(cli), true);
    assert.equal(n.peerAlive(srv), true);

    n.shutdownWrite(cli);
    assert.equal(n.recvFds(srv, new Uint8Array(4), new Int32Array(0)), 0, 'EOF after SHUT_WR');
    assert.equal(n.peerAlive(srv), false);
    assert.equal(n.sendFds(srv, new Uint8Array([5]), []), 1, 'the other direction still works');
    const b = new Uint8Array(4);
    assert.equal(n.recvFds(cli, b, new Int32Array(0)), 1);
    assert.equal(b[0], 5);

    n.close(srv);
    assert.equal(n.peerAlive(cli), false);
    assert.equal(n.recvFds(cli, b, new Int32Array(0)), 0);
    throwsSys(() => n.sendFds(cli, new Uint8Array([1]), []), ['EPIPE', 'ECONNRESET'], 'sendmsg');

    n.shutdownWrite(cli); // already shut down / peer gone: no error
    const lfd = track(n.unixListen(unique('kb-unconnected'), true, 0, 1));
    n.shutdownWrite(lfd); // ENOTCONN is ignored
    throwsSys(() => n.shutdownWrite(-1), 'EBADF', 'shutdown');
    throwsSys(() => n.peerAlive(-1), 'EBADF', 'recv');
    throwsSys(() => n.peerCred(-1), 'EBADF', 'getsockopt');
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('wrong argument types never crash', () => {
  it('throws TypeError ERR_INVALID_ARG_TYPE', () => {
    const raw = n as unknown as Record<string, (...args: unknown[]) => unknown>;
    const call = (fn: string, ...args: unknown[]) => (): unknown => raw[fn]!(...args);
    const efd = track(n.eventfd());
    throwsType(call('memfdCreate', 1, 4096, 0));
    throwsType(call('memfdCreate', 'x', '4096', 0));
    throwsType(call('memfdCreate'));
    throwsType(call('fdSize', '3'));
    throwsType(call('fdSeals', null));
    throwsType(call('mmapShared', efd, {}, 0));
    throwsType(call('close', undefined));
    throwsType(call('eventfdSignal', 'x'));
    throwsType(call('eventfdDrain', []));
    throwsType(call('unixListen', 5, false, 0, 1));
    throwsType(call('unixListen', 'x', 'yes', 0, 1));
    throwsType(call('unixConnect', 'x', 1));
    throwsType(call('sendFds', efd, [1, 2], []));
    throwsType(call('sendFds', efd, new Uint16Array(2), []));
    throwsType(call('sendFds', efd, new Uint8Array(2), 'fds'));
    throwsType(call('sendFds', efd, new Uint8Array(2), ['x']));
    throwsType(call('recvFds', efd, new Uint8Array(2), new Uint32Array(2)));
    throwsType(call('recvFds', efd, 'buf', new Int32Array(2)));
    throwsType(call('watch', efd, 1, 'not a function'));
    throwsType(call('watch', efd, '1', () => undefined));
    throwsType(call('watchUpdate', {}, 1));
    throwsType(call('watchRef', null, true));
    throwsType(call('watchStop', 42));
    throwsType(call('watchStop', new Uint8Array(1)));
    const h = n.watch(efd, WATCH_READABLE, () => undefined);
    throwsType(call('watchRef', h, 'yes'));
    throwsType(call('watchUpdate', h, 'x'));
    n.watchStop(h);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('kbypass-floor', () => {
  it('pingpong writes I uint32 samples and one JSON line', () => {
    const out = path.join(tmp, 'samples.bin');
    const r = spawnSync(floorBin, ['pingpong', '--bytes', '64', '--iterations', '1000', '--warmup', '100', '--out', out],
      { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const j = JSON.parse(lines[0]!) as { clock_ns: number; iterations: number };
    assert.equal(j.iterations, 1000);
    assert.ok(j.clock_ns > 0 && j.clock_ns < 10000, String(j.clock_ns));
    const buf = fs.readFileSync(out);
    assert.equal(buf.length, 4000);
    for (let i = 0; i < 1000; i++) assert.ok(buf.readUInt32LE(i * 4) > 0, `sample ${i} is a positive duration`);
  });

  it('pingpong with a 1 MiB payload', () => {
    const out = path.join(tmp, 'samples-big.bin');
    const r = spawnSync(floorBin, ['pingpong', '--bytes', '1048576', '--iterations', '20', '--out', out],
      { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.statSync(out).size, 80);
  });

  it('memcpy prints one JSON line', () => {
    const stdout = execFileSync(floorBin, ['memcpy', '--bytes', '64', '--span', '4096', '--seconds', '0.05'],
      { encoding: 'utf8' });
    const j = JSON.parse(stdout.trim()) as { bytes: number; span: number; bytes_per_sec: number };
    assert.equal(j.bytes, 64);
    assert.equal(j.span, 4096);
    assert.ok(j.bytes_per_sec > 1e6, String(j.bytes_per_sec));
  });

  it('bad arguments: usage on stderr, exit 2', () => {
    const bad = [
      [],
      ['nope'],
      ['pingpong', '--bytes', '64', '--iterations', '10'],
      ['pingpong', '--bytes', '0', '--iterations', '10', '--out', '/dev/null'],
      ['pingpong', '--bytes', '2097152', '--iterations', '10', '--out', '/dev/null'],
      ['pingpong', '--bytes', '64', '--iterations', '-1', '--out', '/dev/null'],
      ['pingpong', '--bytes', '64x', '--iterations', '10', '--out', '/dev/null'],
      ['memcpy', '--bytes', '64', '--span', '32', '--seconds', '1'],
      ['memcpy', '--bytes', '64', '--span', '128', '--seconds', '0'],
      ['memcpy', '--bytes', '64', '--span', '128'],
      ['memcpy', '--bytes', '64', '--span', '128', '--seconds', '1', '--extra'],
    ];
    for (const args of bad) {
      const r = spawnSync(floorBin, args, { encoding: 'utf8' });
      assert.equal(r.status, 2, `exit 2 for ${args.join(' ')}`);
      assert.match(r.stderr, /usage:/);
      assert.equal(r.stdout, '');
    }
  });
});
