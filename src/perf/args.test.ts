import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PERF_TESTS, parsePerfArgs, perfUsage, sizesFor, type PerfOptions, type PerfTest } from './args';

function usageFails(argv: string[], message: RegExp): void {
  assert.throws(() => parsePerfArgs(argv), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.equal((e as Error & { code?: string }).code, 'ERR_KBYPASS_USAGE', `code for ${argv.join(' ')}`);
    assert.equal(e.name, 'KbypassError');
    assert.match(e.message, message);
    return true;
  });
}

test('PERF_TESTS lists the seven tests', () => {
  assert.deepEqual([...PERF_TESTS], ['send_lat', 'write_lat', 'read_lat', 'atomic_lat', 'send_bw', 'write_bw', 'read_bw']);
});

test('defaults are perftest\'s for each test', () => {
  // perftest_parameters.h: DEF_SIZE_LAT 2, DEF_SIZE_BW 65536, DEF_SIZE_ATOMIC 8, DEF_ITERS 1000, DEF_ITERS_WB 5000
  // (write_bw only), DEF_TX_LAT 1, DEF_TX_BW 128, DEF_PORT 18515. CQ moderation: DEF_CQ_MOD 100, but 1
  // (DISABLED_CQ_MOD_VALUE) above MSG_SIZE_CQ_MOD_LIMIT 8192 bytes, which the default 65536 is.
  const expected: Record<PerfTest, [size: number, iterations: number, txDepth: number, cqMod: number]> = {
    send_lat: [2, 1000, 1, 1],
    write_lat: [2, 1000, 1, 1],
    read_lat: [2, 1000, 1, 1],
    atomic_lat: [8, 1000, 1, 1],
    send_bw: [65536, 1000, 128, 1],
    write_bw: [65536, 5000, 128, 1],
    read_bw: [65536, 1000, 128, 1],
  };
  for (const t of PERF_TESTS) {
    const o = parsePerfArgs([t]);
    const [size, iterations, txDepth, cqMod] = expected[t];
    const want: PerfOptions = {
      test: t, server: null, local: false, size, all: false, iterations, device: 'shm0', json: false, port: 18515,
      txDepth, cqMod, noPeak: false, events: false, atomicType: 'FETCH_AND_ADD', help: false,
    };
    assert.deepEqual(o, want, t);
    assert.equal('duration' in o, false);
  }
});

test('the second positional is the server address; options may come anywhere', () => {
  assert.equal(parsePerfArgs(['write_lat', '192.0.2.1']).server, '192.0.2.1');
  const o = parsePerfArgs(['-s', '64', 'write_lat', '-n', '10', 'host.example', '--json']);
  assert.equal(o.test, 'write_lat');
  assert.equal(o.server, 'host.example');
  assert.equal(o.size, 64);
  assert.equal(o.iterations, 10);
  assert.equal(o.json, true);
  assert.equal(parsePerfArgs(['write_lat', '--', '-weird-host']).server, '-weird-host');
});

test('-s, --size: short, attached, long with = and with a space, K and M suffixes', () => {
  for (const argv of [['-s', '64'], ['-s64'], ['--size=64'], ['--size', '64']]) {
    assert.equal(parsePerfArgs(['write_lat', ...argv]).size, 64, argv.join(' '));
  }
  assert.equal(parsePerfArgs(['write_bw', '-s', '4K']).size, 4096);
  assert.equal(parsePerfArgs(['write_bw', '-s', '8M']).size, 8 * 1024 * 1024);
  assert.equal(parsePerfArgs(['write_bw', '-s', '1']).size, 1);
});

test('-a, --all: sizes 2 to 2^23; size is the largest', () => {
  for (const flag of ['-a', '--all']) {
    const o = parsePerfArgs(['write_bw', flag]);
    assert.equal(o.all, true);
    assert.equal(o.size, 8388608);
    const sizes = sizesFor(o);
    assert.equal(sizes.length, 23);
    assert.equal(sizes[0], 2);
    assert.equal(sizes[22], 8388608);
    sizes.forEach((s, i) => assert.equal(s, 2 ** (i + 1)));
  }
});

test('sizesFor: the size, or 8 for atomic_lat', () => {
  assert.deepEqual(sizesFor(parsePerfArgs(['send_lat'])), [2]);
  assert.deepEqual(sizesFor(parsePerfArgs(['send_bw', '-s', '100'])), [100]);
  assert.deepEqual(sizesFor(parsePerfArgs(['atomic_lat'])), [8]);
  assert.deepEqual(sizesFor({ test: 'atomic_lat', all: true, size: 8 }), [8]);
});

test('every other option, short and long', () => {
  const pairs: [string[], string[], Partial<PerfOptions>][] = [
    [['-n', '77'], ['--iters=77'], { iterations: 77 }],
    [['-d', 'shm3'], ['--ib-dev', 'shm3'], { device: 'shm3' }],
    [['-p', '20000'], ['--port=20000'], { port: 20000 }],
    [['-t', '64'], ['--tx-depth', '64'], { txDepth: 64 }],
    [['-D', '3'], ['--duration=3'], { duration: 3 }],
    [['-h'], ['--help'], { help: true }],
  ];
  for (const [short, long, want] of pairs) {
    for (const argv of [short, long]) {
      const o = parsePerfArgs(['send_lat', ...argv]);
      for (const [k, v] of Object.entries(want)) assert.equal(o[k as keyof PerfOptions], v, argv.join(' '));
    }
  }
  assert.equal(parsePerfArgs(['send_lat', '--json']).json, true);
  assert.equal(parsePerfArgs(['send_lat', '--local']).local, true);
  assert.equal(parsePerfArgs(['write_bw', '-Q', '10']).cqMod, 10); // given: kept even above 8192 bytes
  assert.equal(parsePerfArgs(['write_bw', '--cq-mod=10']).cqMod, 10);
  assert.equal(parsePerfArgs(['write_bw', '-N']).noPeak, true);
  assert.equal(parsePerfArgs(['write_bw', '--noPeak']).noPeak, true);
  assert.equal(parsePerfArgs(['atomic_lat', '-A', 'CMP_AND_SWAP']).atomicType, 'CMP_AND_SWAP');
  assert.equal(parsePerfArgs(['atomic_lat', '--atomic_type=FETCH_AND_ADD']).atomicType, 'FETCH_AND_ADD');
  assert.equal(parsePerfArgs(['atomic_lat', '-s', '8']).size, 8);
  const clustered = parsePerfArgs(['write_bw', '-aN']);
  assert.equal(clustered.all, true);
  assert.equal(clustered.noPeak, true);
});

test('perftest\'s derived settings: cq-mod and peak', () => {
  assert.equal(parsePerfArgs(['write_bw', '-s', '8192']).cqMod, 100);
  assert.equal(parsePerfArgs(['write_bw', '-s', '8193']).cqMod, 1); // MSG_SIZE_CQ_MOD_LIMIT
  assert.equal(parsePerfArgs(['write_bw', '-s', '8193', '-Q', '50']).cqMod, 50);
  assert.equal(parsePerfArgs(['write_bw', '-a']).cqMod, 100);
  assert.equal(parsePerfArgs(['write_bw', '-s', '64']).cqMod, 100);
  assert.equal(parsePerfArgs(['write_bw', '-s', '64', '-t', '16']).cqMod, 16); // never above tx depth
  assert.equal(parsePerfArgs(['write_bw', '-Q', '64', '-t', '16']).cqMod, 16);
  assert.equal(parsePerfArgs(['write_bw', '-n', '20000']).noPeak, false);
  assert.equal(parsePerfArgs(['write_bw', '-n', '20001']).noPeak, true);
  assert.equal(parsePerfArgs(['write_bw', '-D', '2']).noPeak, true);
  assert.equal(parsePerfArgs(['write_lat', '-D', '2']).noPeak, false);
});

test('--help wins over everything but malformed options', () => {
  assert.equal(parsePerfArgs(['--help']).help, true);
  assert.equal(parsePerfArgs(['--help']).test, 'write_lat');
  assert.equal(parsePerfArgs(['read_bw', '-h']).test, 'read_bw');
  assert.equal(parsePerfArgs(['read_bw', '-a', '-s', '2', '-h']).help, true);
  usageFails(['read_bw', '-h', '--bogus'], /unknown option '--bogus'/);
});

test('unknown, duplicated and malformed options', () => {
  usageFails(['write_lat', '--bogus'], /unknown option '--bogus'/);
  usageFails(['write_lat', '-z'], /unknown option '-z'/);
  usageFails(['write_lat', '-s'], /-s needs a value/);
  usageFails(['write_lat', '--size'], /--size needs a value/);
  usageFails(['write_lat', '-d', '--json'], /-d needs a value/);
  usageFails(['write_lat', '--all=1'], /--all takes no value/);
  usageFails(['write_lat', '-s', '2', '--size=4'], /duplicated option -s\/--size/);
  usageFails(['write_lat', '--json', '--json'], /duplicated option --json/);
  usageFails(['write_lat', '--ib-dev='], /--ib-dev needs a device name/);
});

test('numbers out of perftest\'s ranges', () => {
  usageFails(['write_lat', '-s', 'abc'], /-s takes a size in bytes/);
  usageFails(['write_lat', '-s', '1.5'], /-s takes a size in bytes/);
  usageFails(['write_lat', '-s', '-5'], /-s takes a size in bytes/);
  usageFails(['write_lat', '-s', '0'], /-s must be between 1 and 8388608 bytes, got 0/);
  usageFails(['write_lat', '-s', '8388609'], /between 1 and 8388608/);
  usageFails(['write_lat', '-s', '9M'], /between 1 and 8388608/);
  usageFails(['write_lat', '-n', '4'], /-n must be between 5 and 4294967296, got 4/); // MIN_ITER 5
  usageFails(['write_lat', '--iters=4294967297'], /--iters must be between 5 and 4294967296/);
  usageFails(['write_lat', '-n', '1e3'], /-n takes a whole number, got '1e3'/);
  usageFails(['write_lat', '-t', '0'], /-t must be between 1 and 15000/); // MIN_TX, MAX_TX
  usageFails(['write_lat', '-t', '15001'], /-t must be between 1 and 15000/);
  usageFails(['write_lat', '-p', '0'], /-p must be between 1 and 65535/);
  usageFails(['write_lat', '-p', '65536'], /-p must be between 1 and 65535/);
  usageFails(['write_lat', '-D', '0'], /-D must be between 1 and/);
  usageFails(['write_bw', '-Q', '0'], /-Q must be between 1 and 1024/); // MIN_CQ_MOD, MAX_CQ_MOD
  usageFails(['write_bw', '-Q', '1025'], /-Q must be between 1 and 1024/);
  usageFails(['atomic_lat', '-A', 'SWAP'], /-A must be one of FETCH_AND_ADD, CMP_AND_SWAP, got 'SWAP'/);
});

test('test name and positionals', () => {
  usageFails([], /missing test name: one of send_lat, write_lat/);
  usageFails(['--json'], /missing test name/);
  usageFails(['write'], /unknown test 'write': one of/);
  usageFails(['ib_write_lat'], /unknown test 'ib_write_lat' \(did you mean 'write_lat'\?\)/);
  usageFails(['write_lat', 'a', 'b'], /unexpected argument 'b'/);
  usageFails(['write_lat', ''], /server address is empty/);
});

test('conflicting and inapplicable options', () => {
  usageFails(['write_lat', '--local', '10.0.0.1'], /--local .* cannot be used with a server address \('10\.0\.0\.1'\)/);
  usageFails(['write_lat', '-a', '-s', '64'], /-a\/--all .* cannot be used with -s\/--size/);
  usageFails(['write_bw', '-D', '5', '-a'], /-D\/--duration cannot be used with -a\/--all/);
  usageFails(['write_bw', '-D', '5', '-n', '100'], /-D\/--duration and -n\/--iters are mutually exclusive/);
  usageFails(['atomic_lat', '-s', '64'], /message size cannot be changed for atomic_lat .*got 64/);
  usageFails(['atomic_lat', '-a'], /-a\/--all is not available for atomic_lat/);
  usageFails(['write_lat', '-A', 'CMP_AND_SWAP'], /-A\/--atomic_type is only for atomic_lat/);
  usageFails(['write_lat', '-Q', '10'], /-Q\/--cq-mod is only for bandwidth tests/);
  usageFails(['read_lat', '-N'], /-N\/--noPeak is only for bandwidth tests/);
});

test('perfUsage lists the options with each test\'s defaults', () => {
  const all = perfUsage();
  for (const flag of ['-a, --all', '-A, --atomic_type=<type>', '-d, --ib-dev=<dev>', '-D, --duration=<sec>',
    '-h, --help', '--json', '--local', '-n, --iters=<iters>', '-N, --noPeak', '-p, --port=<port>', '-Q, --cq-mod=<n>',
    '-s, --size=<size>', '-t, --tx-depth=<dep>']) {
    assert.ok(all.includes(flag), flag);
  }
  assert.match(all, /^Usage:\n/);
  assert.match(all, /default 18515/);
  assert.match(all, /default shm0/);
  const wbw = perfUsage('write_bw');
  assert.match(wbw, /kbypass perf write_bw <host>/);
  assert.match(wbw, /at least 5, default 5000/);
  assert.match(wbw, /Size of message to exchange \(default 65536\)/);
  assert.match(wbw, /Size of tx queue \(default 128\)/);
  assert.doesNotMatch(wbw, /--atomic_type/);
  const atomic = perfUsage('atomic_lat');
  assert.doesNotMatch(atomic, /--size|--all|--noPeak|--cq-mod/);
  assert.match(atomic, /--atomic_type/);
  assert.match(perfUsage('send_lat'), /Size of message to exchange \(default 2\)/);
});

test('-e/--events: sleep on CQ events; refused for write_lat, which waits on memory', () => {
  assert.equal(parsePerfArgs(['send_lat', '-e']).events, true);
  assert.equal(parsePerfArgs(['send_bw', '--events', '--local']).events, true);
  assert.equal(parsePerfArgs(['read_lat']).events, false);
  assert.throws(() => parsePerfArgs(['write_lat', '-e']), (e: Error & { code?: string }) => e.code === 'ERR_KBYPASS_USAGE' && /write_lat/.test(e.message));
  assert.throws(() => parsePerfArgs(['send_lat', '-e', '-e']), (e: Error & { code?: string }) => e.code === 'ERR_KBYPASS_USAGE');
  assert.match(perfUsage('send_lat'), /-e, --events/);
  assert.doesNotMatch(perfUsage('write_lat'), /--events/);
});
