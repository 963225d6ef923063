/**
 * Shared helpers of the `kbypass capture` and `kbypass pktgen` tests: running the CLI (here, or in a testbed's
 * network namespace), checking its bad-usage errors, waiting on a running tool, a UDP sink for the traffic, and
 * reading a pcap back with tshark. The CLI runs from dist (bin/kbypass.js loads dist/src/cli/main.js): build first.
 * For a testbed per test (or a skip with the reason), see `testbedFor` in ./packet.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { nodeIn, runIn, type NsProcess, type NsResult, type Testbed } from '../../bench/packet/testbed';

/** The `kbypass` executable (from dist/test/helpers: the repository's bin/kbypass.js). */
export const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'kbypass.js');

/** The UDP destination port of the test traffic: pktgen's default `--dst-port`, where {@link udpSink} listens. */
export const DST_PORT = 9001;

/** Runs `kbypass ...args` here, to completion (killed after `timeout` ms); its status, stdout and stderr. */
export function run(args: readonly string[], timeout = 20_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout });
}

/**
 * Asserts that `parse` throws `ERR_KBYPASS_USAGE`, with a message matching the pattern, for each command line.
 * Each case is [arguments, pattern for the message].
 */
export function assertUsageErrors(parse: (argv: string[]) => unknown, cases: ReadonlyArray<readonly [string[], RegExp]>): void {
  for (const [args, message] of cases) {
    assert.throws(() => parse(args), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'ERR_KBYPASS_USAGE', args.join(' '));
      assert.match(e.message ?? '', message, args.join(' '));
      return true;
    });
  }
}

/**
 * Asserts that `kbypass ...args` exits 2 for each command line, with nothing on stdout and a message on stderr
 * that starts with `kbypass <tool>: `.
 */
export function assertBadUsageExits(tool: string, commandLines: ReadonlyArray<readonly string[]>): void {
  for (const args of commandLines) {
    const r = run(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^kbypass ${tool}: `));
    assert.equal(r.stdout, '');
  }
}

/** Whether tshark is installed (on the PATH, and runs). */
export function hasTshark(): boolean {
  return spawnSync('tshark', ['--version'], { encoding: 'utf8', timeout: 20_000 }).status === 0;
}

/**
 * Reads a pcap with tshark, UDP to {@link DST_PORT} decoded as data: per packet, the given fields (`-e`, in
 * order; '' where a packet has none). Asserts that tshark exited 0 and had nothing to complain about on stderr.
 */
export function tsharkFields(file: string, fields: readonly string[]): string[][] {
  const r = spawnSync('tshark', ['-r', file, '-d', `udp.port==${DST_PORT},data`, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])],
    { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `tshark exited ${r.status}: ${r.stderr}`);
  const complaints = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/Running as user "root"/.test(l));
  assert.deepEqual(complaints, [], 'tshark read the file without errors or warnings');
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => fields.map((_, i) => l.split('\t')[i] ?? ''));
}

/** A fresh temporary directory (named `prefix`…), removed after the test. */
export function tmpDirFor(t: TestContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits until `p` writes a line matching `re` on stderr; rejects if it exits first or `timeoutMs` passes. */
export function waitForStderr(p: NsProcess, re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer | string): void => {
      seen += chunk.toString();
      if (re.test(seen)) done(null);
    };
    const timer = setTimeout(() => done(new Error(`no ${re} on stderr within ${timeoutMs} ms; stderr: ${seen}`)), timeoutMs);
    const done = (e: Error | null): void => {
      clearTimeout(timer);
      p.child.stderr?.off('data', onData);
      if (e) reject(e); else resolve();
    };
    p.child.stderr?.on('data', onData);
    p.result.then((r) => done(new Error(`exited (status ${r.code}) before ${re}; stderr: ${r.stderr}`)), (e: Error) => done(e));
  });
}

/**
 * A UDP socket on {@link DST_PORT} in nsB for the duration of the test: with a listener, the kernel answers the
 * test frames with no ICMP port unreachable (which an AF_PACKET capture would see, outgoing, among the frames).
 */
export async function udpSink(t: TestContext, tb: Testbed): Promise<NsProcess> {
  const script = `const s = require('dgram').createSocket('udp4'); s.bind(${DST_PORT}, () => console.log('{"ready":true}')); ` +
    'setTimeout(() => process.exit(0), 120000);';
  const p = runIn(tb.nsB, process.execPath, ['-e', script], { timeoutMs: 130_000 });
  t.after(() => p.kill());
  await p.nextJson(15_000);
  return p;
}

/**
 * Starts `kbypass capture -i <nsB's interface> ...args` in nsB, killed after the test (if still running), and
 * waits until it is listening.
 */
export async function startCapture(t: TestContext, tb: Testbed, args: readonly string[], timeoutMs: number): Promise<NsProcess> {
  const cap = nodeIn(tb.nsB, BIN, ['capture', '-i', tb.ifB, ...args], { timeoutMs });
  t.after(() => cap.kill());
  await waitForStderr(cap, /listening on/, 15_000);
  return cap;
}

/** The result of a process, or null if it is still running after `ms`. */
export async function within(p: NsProcess, ms: number): Promise<NsResult | null> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.result, new Promise<null>((res) => { timer = setTimeout(res, ms, null); })]);
  clearTimeout(timer);
  return r;
}
