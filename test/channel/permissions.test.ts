/**
 * Who may connect. A socket file is 0600 by default: another user's connect() fails with EACCES; with
 * mode 0o666 it succeeds and the channel shows the peer's uid. Abstract names have no permissions: by default
 * only this uid (and root) are accepted and others get a REJECT (EACCES); authorize() decides otherwise.
 * The cross-user cases run a child as uid/gid 65534 (nobody); they are skipped unless running as root, and
 * unless that user can read this checkout (the fixture and the addon).
 */
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { connect, type Channel, type PeerCredentials } from '../../src/index';
import { killPeers, spawnPeer } from '../helpers/peer';
import { abstractName, collect, isRoot, startServer, tmpDir, tmpSocketPath, TEST_TIMEOUT } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };
const NOBODY = 65534;

/** Why the cross-user cases cannot run here, or false: they need root, and a tree the child may read. */
function crossUserSkip(): string | false {
  if (!isRoot()) return 'needs root to run a child as another user';
  const files = [path.join(__dirname, '..', 'fixtures', 'try-connect.js'), addonPath()];
  const r = spawnSync(process.execPath, ['-e', `for (const f of ${JSON.stringify(files)}) require('fs').accessSync(f, 4)`],
    { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
  return r.status === 0 ? false : `uid ${NOBODY} cannot read this checkout (${r.stderr.split('\n').find((l) => l.includes('Error')) ?? String(r.error)})`;
}

/** The addon the loader will use (binding.ts search order). */
function addonPath(): string {
  const env = process.env['KBYPASS_NATIVE'];
  return env ? path.resolve(env) : path.join(__dirname, '..', '..', '..', 'build', 'Release', 'kbypass.node');
}

const skip = crossUserSkip();
after(killPeers);

interface Result { type: string; ok: boolean; code?: string; uid?: number; peerUid?: number; message?: string }

/** Run try-connect as nobody against `target` (a path or '\0name'); return what it reported. */
async function connectAsNobody(target: string): Promise<Result> {
  const arg = target.startsWith('\0') ? `@${target.slice(1)}` : target;
  const child = spawnPeer('try-connect', [arg], { uid: NOBODY, gid: NOBODY });
  const r = await child.next<Result>('result');
  await child.exited;
  return r;
}

/** A fresh directory others may traverse (mkdtemp is 0700; tmpDir() makes it 0755). */
function sharedSocketPath(): string {
  const d = tmpDir();
  assert.equal(fs.statSync(d).mode & 0o777, 0o755);
  return path.join(d, 'shared.sock');
}

describe('permissions', () => {
  it('a default (0600) socket file refuses another user: EACCES', { ...opts, skip }, async () => {
    const server = await startServer(undefined, sharedSocketPath());
    try {
      assert.equal(fs.statSync(server.address()).mode & 0o777, 0o600);
      let accepted = 0;
      server.on('channel', () => { accepted++; });
      const r = await connectAsNobody(server.address());
      assert.equal(r.ok, false);
      assert.equal(r.code, 'EACCES', r.message);
      assert.equal(accepted, 0);
    } finally {
      await server.close();
    }
  });

  it("mode 0o666 lets another user in; the channel shows the peer's uid", { ...opts, skip }, async () => {
    const server = await startServer({ mode: 0o666 }, sharedSocketPath());
    try {
      assert.equal(fs.statSync(server.address()).mode & 0o777, 0o666);
      const got = new Promise<Channel>((resolve) => server.once('channel', resolve));
      const result = connectAsNobody(server.address());
      const ch = await got;
      const hello = collect(ch, 1);
      const r = await result;
      assert.equal(r.ok, true, r.message);
      assert.equal(r.uid, NOBODY);
      assert.equal(r.peerUid, 0, "the child sees the server's uid (root)");
      assert.equal(ch.peer.uid, NOBODY);
      assert.equal(ch.peer.gid, NOBODY);
      assert.equal((await hello)[0]!.toString(), `hello from ${NOBODY}`);
    } finally {
      await server.close();
    }
  });

  it('an abstract name refuses another uid by default (REJECT → EACCES)', { ...opts, skip }, async () => {
    const server = await startServer(undefined, abstractName());
    try {
      assert.match(server.address(), /^@kbypass-test-/);
      let accepted = 0;
      server.on('channel', () => { accepted++; });
      const r = await connectAsNobody(`\0${server.address().slice(1)}`); // address() shows '@name'
      assert.equal(r.ok, false);
      assert.equal(r.code, 'EACCES', r.message);
      assert.match(r.message ?? '', /refused/);
      assert.equal(accepted, 0);
    } finally {
      await server.close();
    }
  });

  it('an abstract name accepts another uid when authorize() says so', { ...opts, skip }, async () => {
    const seen: PeerCredentials[] = [];
    const name = abstractName();
    const server = await startServer({ authorize: (peer) => { seen.push(peer); return true; } }, name);
    try {
      const got = new Promise<Channel>((resolve) => server.once('channel', resolve));
      const r = await connectAsNobody(name);
      assert.equal(r.ok, true, r.message);
      const ch = await got;
      assert.equal(ch.peer.uid, NOBODY);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.uid, NOBODY);
      assert.equal(seen[0]!.gid, NOBODY);
    } finally {
      await server.close();
    }
  });

  it('an abstract name accepts this uid by default', opts, async () => {
    const name = abstractName();
    const server = await startServer(undefined, name);
    try {
      const ch = await connect(name);
      assert.equal(ch.peer.uid, process.getuid!());
      ch.destroy();
    } finally {
      await server.close();
    }
  });

  it('authorize() returning false or throwing refuses with EACCES; the server keeps serving', opts, async () => {
    let mode: 'no' | 'throw' | 'yes' = 'no';
    const server = await startServer({
      authorize: () => {
        if (mode === 'throw') throw new Error('hook failed');
        return mode === 'yes';
      },
    }, tmpSocketPath());
    try {
      await assert.rejects(connect(server.address()), (e: Error & { code?: string }) => e.code === 'EACCES');
      mode = 'throw';
      await assert.rejects(connect(server.address()), (e: Error & { code?: string }) => e.code === 'EACCES');
      mode = 'yes';
      const ch = await connect(server.address());
      assert.equal(ch.state, 'open');
      ch.destroy();
    } finally {
      await server.close();
    }
  });
});
