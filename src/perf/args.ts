/**
 * Command-line options of `kbypass perf <test>`, modelled on linux-rdma/perftest (`ib_write_lat` & co.).
 *
 * Defaults, limits and the short/long option names are perftest's (src/perftest_parameters.h `DEF_*`, `MIN_*`,
 * `MAX_*`; src/perftest_parameters.c `init_perftest_params`, `parser`, `force_dependecies`, `usage`). Where
 * kbypass differs it says so next to the option:
 * - message sizes are capped at {@link MAX_SIZE} (perftest's `-a` ceiling, 8 MiB) instead of perftest's
 *   `UINT_MAX / 2`;
 * - combinations perftest silently resolves are errors here: `-a` with `-s` (perftest lets `-a` win),
 *   `-D` with `-n` (perftest ignores `-n`), `-Q` on latency tests (perftest ignores it);
 * - `--local` (run both ends here) and `--json` (print JSON on stdout) are kbypass's own.
 */
import { KbypassError } from '../errors';

/** The tests, named like perftest's tools without the `ib_` prefix. */
export const PERF_TESTS = ['send_lat', 'write_lat', 'read_lat', 'atomic_lat', 'send_bw', 'write_bw', 'read_bw'] as const;

/** One of {@link PERF_TESTS}. */
export type PerfTest = (typeof PERF_TESTS)[number];

/** perftest's atomic operations (`-A`, `atomicTypesStr`). */
export const ATOMIC_TYPES = ['FETCH_AND_ADD', 'CMP_AND_SWAP'] as const;

/** One of {@link ATOMIC_TYPES}. */
export type AtomicType = (typeof ATOMIC_TYPES)[number];

/** perftest's `DEF_PORT`: the TCP port the two ends meet on. */
export const DEFAULT_PORT = 18515;
/** The device used when `-d` is not given (perftest takes the first device found). */
export const DEFAULT_DEVICE = 'shm0';
/** The largest message size: perftest's `MAX_SIZE` (2^23, the last size `-a` runs). */
export const MAX_SIZE = 8_388_608;
/** Atomic tests move 8 bytes, always (perftest's `DEF_SIZE_ATOMIC`). */
export const ATOMIC_SIZE = 8;
/** perftest's `MIN_ITER` and `MAX_ITER` (the range of `-n`). */
export const MIN_ITERS = 5;
export const MAX_ITERS = 4_294_967_296;
/** perftest's `MIN_TX` and `MAX_TX` (the range of `-t`). */
export const MIN_TX_DEPTH = 1;
export const MAX_TX_DEPTH = 15_000;
/** perftest's `MIN_CQ_MOD` and `MAX_CQ_MOD` (the range of `-Q`). */
export const MIN_CQ_MOD = 1;
export const MAX_CQ_MOD = 1024;
/** Above this many iterations perftest stops measuring the peak bandwidth (`force_dependecies`). */
export const PEAK_MAX_ITERS = 20_000;
/** Above this message size perftest signals every completion unless `-Q` or `-a` is given (`MSG_SIZE_CQ_MOD_LIMIT`). */
export const CQ_MOD_SIZE_LIMIT = 8192;

const DEF_SIZE_LAT = 2;
const DEF_SIZE_BW = 65_536;
const DEF_ITERS = 1000;
const DEF_ITERS_WRITE_BW = 5000;
const DEF_TX_LAT = 1;
const DEF_TX_BW = 128;
const DEF_CQ_MOD = 100;
const MAX_DURATION = 2_147_483_647;

/** The parsed command line of `kbypass perf <test>`. */
export interface PerfOptions {
  /** The test to run: the first positional argument. */
  readonly test: PerfTest;
  /** Address of the server to connect to: the second positional argument. `null` (the default): this is the server. */
  readonly server: string | null;
  /** `--local`: run both ends on this machine. Default false. Not with a server address. */
  readonly local: boolean;
  /**
   * `-s, --size=<bytes>`: message size. Default 2 for latency tests, 65536 for bandwidth tests, 8 (fixed) for
   * atomic_lat. 1 to {@link MAX_SIZE}; `K` and `M` suffixes multiply by 1024 and 1024², as in perftest. With `-a`
   * it is {@link MAX_SIZE} (the largest size run, as perftest sets it); use {@link sizesFor} for the sizes to run.
   */
  readonly size: number;
  /** `-a, --all`: run every size from 2 to 2^23 (powers of two). Default false. Not with `-s`, `-D` or atomic_lat. */
  readonly all: boolean;
  /** `-n, --iters=<n>`: number of exchanges, 5 to 2^32. Default 5000 for write_bw, 1000 for the others. Not with `-D`. */
  readonly iterations: number;
  /** `-d, --ib-dev=<dev>`: the device. Default `'shm0'`. */
  readonly device: string;
  /** `--json`: print one JSON object per test instead of perftest's table. Default false. */
  readonly json: boolean;
  /** `-p, --port=<port>`: TCP port to listen on or connect to, 1 to 65535. Default 18515. */
  readonly port: number;
  /** `-t, --tx-depth=<n>`: send queue depth, 1 to 15000. Default 1 for latency tests, 128 for bandwidth tests. */
  readonly txDepth: number;
  /** `-D, --duration=<seconds>`: run for this many seconds instead of `iterations`. Default: absent (run `iterations`). */
  readonly duration?: number;
  /**
   * `-Q, --cq-mod=<n>`: bandwidth tests ask for a completion every `cqMod` messages, 1 to 1024. Default 100, but 1
   * when the size is above 8192 bytes without `-a` (perftest's rule) — so 1 at the default 65536 — and never more
   * than `txDepth`. Always 1 for latency tests (every operation is signalled; `-Q` is rejected there).
   */
  readonly cqMod: number;
  /**
   * `-N, --noPeak`: do not compute the peak bandwidth (its column prints 0). Default false, but true with `-D` or
   * with more than 20000 iterations (perftest's rule). Bandwidth tests only; always false for latency tests.
   */
  readonly noPeak: boolean;
  /**
   * `-e, --events`: wait for completions on the CQs' completion channels (requestNotify, then sleep on the
   * channel until the event), as perftest's `-e` does, instead of busy-polling. Default false. Not with
   * write_lat, which waits on memory, not on a CQ. The server follows the client's choice.
   */
  readonly events: boolean;
  /** `-A, --atomic_type=<type>`: the atomic_lat operation. Default `'FETCH_AND_ADD'`. Only with atomic_lat. */
  readonly atomicType: AtomicType;
  /**
   * `-h, --help`: show {@link perfUsage}. Default false. When set, the other options are not checked (only
   * unknown or malformed ones are reported); `test` is `'write_lat'` if no valid test was named.
   */
  readonly help: boolean;
}

type Key =
  | 'size' | 'all' | 'iters' | 'device' | 'port' | 'txDepth' | 'duration' | 'cqMod' | 'noPeak' | 'atomicType' | 'events'
  | 'help' | 'json' | 'local';

interface OptSpec {
  readonly key: Key;
  readonly short?: string;
  readonly long: string;
  readonly takesValue: boolean;
}

const SPECS: readonly OptSpec[] = [
  { key: 'all', short: 'a', long: 'all', takesValue: false },
  { key: 'atomicType', short: 'A', long: 'atomic_type', takesValue: true },
  { key: 'device', short: 'd', long: 'ib-dev', takesValue: true },
  { key: 'duration', short: 'D', long: 'duration', takesValue: true },
  { key: 'events', short: 'e', long: 'events', takesValue: false },
  { key: 'help', short: 'h', long: 'help', takesValue: false },
  { key: 'iters', short: 'n', long: 'iters', takesValue: true },
  { key: 'noPeak', short: 'N', long: 'noPeak', takesValue: false },
  { key: 'port', short: 'p', long: 'port', takesValue: true },
  { key: 'cqMod', short: 'Q', long: 'cq-mod', takesValue: true },
  { key: 'size', short: 's', long: 'size', takesValue: true },
  { key: 'txDepth', short: 't', long: 'tx-depth', takesValue: true },
  { key: 'json', long: 'json', takesValue: false },
  { key: 'local', long: 'local', takesValue: false },
];

/** An option as the user spelled it, with its value (`''` for flags). */
interface Given {
  readonly name: string;
  readonly value: string;
}

interface Tokens {
  readonly given: ReadonlyMap<Key, Given>;
  readonly positionals: readonly string[];
}

function usageError(message: string): KbypassError {
  return new KbypassError('ERR_KBYPASS_USAGE', message);
}

function spelled(spec: OptSpec): string {
  return spec.short === undefined ? `--${spec.long}` : `-${spec.short}/--${spec.long}`;
}

/** True for the latency tests (`*_lat`). */
export function isLatencyTest(test: PerfTest): boolean {
  return test.endsWith('_lat');
}

function isPerfTest(name: string): name is PerfTest {
  return (PERF_TESTS as readonly string[]).includes(name);
}

/** perftest's CQ moderation when `-Q` is not given (`init_perftest_params`, `force_dependecies`). */
function defaultCqMod(lat: boolean, size: number, all: boolean): number {
  return lat || (!all && size > CQ_MOD_SIZE_LIMIT) ? 1 : DEF_CQ_MOD;
}

/** perftest's defaults for `test` (no server: this end is the server). */
export function perfDefaults(test: PerfTest): PerfOptions {
  const lat = isLatencyTest(test);
  return {
    test,
    server: null,
    local: false,
    size: test === 'atomic_lat' ? ATOMIC_SIZE : lat ? DEF_SIZE_LAT : DEF_SIZE_BW,
    all: false,
    iterations: test === 'write_bw' ? DEF_ITERS_WRITE_BW : DEF_ITERS,
    device: DEFAULT_DEVICE,
    json: false,
    port: DEFAULT_PORT,
    txDepth: lat ? DEF_TX_LAT : DEF_TX_BW,
    cqMod: defaultCqMod(lat, lat ? DEF_SIZE_LAT : DEF_SIZE_BW, false),
    noPeak: false,
    events: false,
    atomicType: 'FETCH_AND_ADD',
    help: false,
  };
}

/** Splits argv into options (getopt_long style: `-s 64`, `-s64`, `-ah`, `--size 64`, `--size=64`, `--`) and positionals. */
function tokenize(argv: readonly string[]): Tokens {
  const given = new Map<Key, Given>();
  const positionals: string[] = [];
  const put = (spec: OptSpec, name: string, value: string): void => {
    if (given.has(spec.key)) throw usageError(`duplicated option ${spelled(spec)}`);
    given.set(spec.key, { name, value });
  };
  const valueAt = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || (v.startsWith('-') && v.length > 1 && !/^-\d/.test(v))) {
      throw usageError(`option ${name} needs a value`);
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const long = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const spec = SPECS.find((s) => s.long === long);
      if (spec === undefined) throw usageError(`unknown option '--${long}'`);
      const name = `--${long}`;
      if (!spec.takesValue) {
        if (eq >= 0) throw usageError(`option ${name} takes no value`);
        put(spec, name, '');
      } else if (eq >= 0) {
        put(spec, name, arg.slice(eq + 1));
      } else {
        put(spec, name, valueAt(++i, name));
      }
    } else if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const ch = arg[j] as string;
        const spec = SPECS.find((s) => s.short === ch);
        if (spec === undefined) throw usageError(`unknown option '-${ch}'`);
        const name = `-${ch}`;
        if (!spec.takesValue) {
          put(spec, name, '');
          continue;
        }
        put(spec, name, j + 1 < arg.length ? arg.slice(j + 1) : valueAt(++i, name));
        break;
      }
    } else {
      positionals.push(arg);
    }
  }
  return { given, positionals };
}

function wholeNumber(g: Given, min: number, max: number, unit = ''): number {
  const n = /^\d+$/.test(g.value) ? Number(g.value) : NaN;
  if (!Number.isSafeInteger(n)) throw usageError(`${g.name} takes a whole number, got '${g.value}'`);
  if (n < min || n > max) throw usageError(`${g.name} must be between ${min} and ${max}${unit}, got ${n}`);
  return n;
}

/** perftest's `-s`: a whole number with an optional `K` (×1024) or `M` (×1024²) suffix. */
function messageSize(g: Given): number {
  const m = /^(\d+)([KM]?)$/.exec(g.value);
  const n = m ? Number(m[1]) * (m[2] === 'K' ? 1024 : m[2] === 'M' ? 1024 * 1024 : 1) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw usageError(`${g.name} takes a size in bytes (optionally with a K or M suffix), got '${g.value}'`);
  }
  if (n < 1 || n > MAX_SIZE) throw usageError(`${g.name} must be between 1 and ${MAX_SIZE} bytes, got ${n}`);
  return n;
}

function testName(positionals: readonly string[]): PerfTest {
  const name = positionals[0];
  if (name === undefined) throw usageError(`missing test name: one of ${PERF_TESTS.join(', ')}`);
  if (isPerfTest(name)) return name;
  const bare = name.replace(/^ib_/, '');
  const hint = isPerfTest(bare) ? ` (did you mean '${bare}'?)` : '';
  throw usageError(`unknown test '${name}'${hint}: one of ${PERF_TESTS.join(', ')}`);
}

function serverAddress(positionals: readonly string[]): string | null {
  if (positionals.length > 2) throw usageError(`unexpected argument '${positionals[2] as string}'`);
  const server = positionals[1];
  if (server === undefined) return null;
  if (server === '') throw usageError('the server address is empty');
  return server;
}

/** Rejects options that do not apply to `test` or that contradict each other. */
function checkCombinations(test: PerfTest, given: ReadonlyMap<Key, Given>, server: string | null): void {
  const has = (k: Key): boolean => given.has(k);
  if (has('local') && server !== null) {
    throw usageError(`--local runs both ends here: it cannot be used with a server address ('${server}')`);
  }
  if (has('all') && has('size')) throw usageError('-a/--all runs every size: it cannot be used with -s/--size');
  if (has('duration') && has('all')) throw usageError('-D/--duration cannot be used with -a/--all');
  if (has('duration') && has('iters')) throw usageError('-D/--duration and -n/--iters are mutually exclusive');
  if (test === 'atomic_lat' && has('all')) {
    throw usageError(`-a/--all is not available for atomic_lat: its message size is fixed at ${ATOMIC_SIZE} bytes`);
  }
  if (test !== 'atomic_lat' && has('atomicType')) throw usageError('-A/--atomic_type is only for atomic_lat');
  if (isLatencyTest(test) && has('cqMod')) throw usageError('-Q/--cq-mod is only for bandwidth tests');
  if (isLatencyTest(test) && has('noPeak')) throw usageError('-N/--noPeak is only for bandwidth tests');
  if (test === 'write_lat' && has('events')) throw usageError('-e/--events is not available for write_lat: it waits on memory, not on a CQ');
}

function atomicType(g: Given): AtomicType {
  const t = ATOMIC_TYPES.find((a) => a === g.value);
  if (t === undefined) throw usageError(`${g.name} must be one of ${ATOMIC_TYPES.join(', ')}, got '${g.value}'`);
  return t;
}

/** The `size` field: `-s` (checked), the largest size with `-a` (as perftest sets it), else the test's default. */
function resolveSize(test: PerfTest, sizeArg: Given | undefined, all: boolean, byDefault: number): number {
  const size = sizeArg ? messageSize(sizeArg) : byDefault;
  if (test === 'atomic_lat' && size !== ATOMIC_SIZE) {
    throw usageError(`the message size cannot be changed for atomic_lat (it is ${ATOMIC_SIZE} bytes), got ${size}`);
  }
  return all ? MAX_SIZE : size;
}

/**
 * Parses the arguments that follow `kbypass perf`: `<test> [server] [options]`, options as perftest spells them.
 * @throws KbypassError `ERR_KBYPASS_USAGE` for an unknown, duplicated or malformed option, a missing value, a
 * number out of perftest's range, a missing or unknown test, an option that does not apply to the test, and the
 * conflicts listed in the module comment.
 */
export function parsePerfArgs(argv: readonly string[]): PerfOptions {
  const { given, positionals } = tokenize(argv);
  if (given.has('help')) {
    const name = positionals[0];
    return { ...perfDefaults(name !== undefined && isPerfTest(name) ? name : 'write_lat'), help: true };
  }
  const test = testName(positionals);
  const server = serverAddress(positionals);
  checkCombinations(test, given, server);
  const d = perfDefaults(test);
  const g = (k: Key): Given | undefined => given.get(k);

  const all = given.has('all');
  const size = resolveSize(test, g('size'), all, d.size);
  const itersArg = g('iters');
  const durationArg = g('duration');
  const iterations = itersArg ? wholeNumber(itersArg, MIN_ITERS, MAX_ITERS) : d.iterations;
  const duration = durationArg ? wholeNumber(durationArg, 1, MAX_DURATION, ' seconds') : undefined;
  const txArg = g('txDepth');
  const txDepth = txArg ? wholeNumber(txArg, MIN_TX_DEPTH, MAX_TX_DEPTH) : d.txDepth;
  const portArg = g('port');
  const deviceArg = g('device');
  if (deviceArg && deviceArg.value === '') throw usageError(`${deviceArg.name} needs a device name`);

  const lat = isLatencyTest(test);
  const cqArg = g('cqMod');
  const cqMod = Math.min(txDepth, cqArg ? wholeNumber(cqArg, MIN_CQ_MOD, MAX_CQ_MOD) : defaultCqMod(lat, size, all));
  const noPeak = !lat && (given.has('noPeak') || duration !== undefined || iterations > PEAK_MAX_ITERS);
  const atomicArg = g('atomicType');

  return {
    test,
    server,
    local: given.has('local'),
    size,
    all,
    iterations,
    device: deviceArg ? deviceArg.value : d.device,
    json: given.has('json'),
    port: portArg ? wholeNumber(portArg, 1, 65_535) : d.port,
    txDepth,
    ...(duration !== undefined ? { duration } : {}),
    cqMod,
    noPeak,
    events: given.has('events'),
    atomicType: atomicArg ? atomicType(atomicArg) : d.atomicType,
    help: false,
  };
}

/** The message sizes to run, in order: 8 for atomic_lat, 2, 4, … 2^23 with `-a`, otherwise `size`. */
export function sizesFor(o: Pick<PerfOptions, 'test' | 'all' | 'size'>): number[] {
  if (o.test === 'atomic_lat') return [ATOMIC_SIZE];
  if (!o.all) return [o.size];
  const sizes: number[] = [];
  for (let s = 2; s <= MAX_SIZE; s *= 2) sizes.push(s);
  return sizes;
}

/**
 * The help text, laid out like perftest's `usage()`. With a test, only the options that apply to it are listed,
 * with that test's defaults; without, all options with the defaults of each kind of test.
 */
export function perfUsage(test?: PerfTest): string {
  const name = test ?? '<test>';
  const d = test === undefined ? undefined : perfDefaults(test);
  const iters = d ? String(d.iterations) : `${DEF_ITERS}; write_bw ${DEF_ITERS_WRITE_BW}`;
  const size = d ? String(d.size) : `${DEF_SIZE_LAT}; bw tests ${DEF_SIZE_BW}`;
  const tx = d ? String(d.txDepth) : `${DEF_TX_LAT}; bw tests ${DEF_TX_BW}`;
  const bw = test === undefined || !isLatencyTest(test);
  const notAtomic = test !== 'atomic_lat';
  const atomic = test === undefined || test === 'atomic_lat';
  const lines = [
    'Usage:',
    `  kbypass perf ${name}                start a server and wait for connection`,
    `  kbypass perf ${name} <host>         connect to the server at <host>`,
    `  kbypass perf ${name} --local        run the server and the client on this machine`,
    '',
    `Tests: ${PERF_TESTS.join(', ')}`,
    '',
    "Note: Some options must match on both server and client for consistent behavior (marked 'SYMMETRIC').",
    '',
    'Options:',
  ];
  const opt = (show: boolean, flags: string, text: string): void => {
    if (show) lines.push(`  ${flags.padEnd(26)} ${text}`);
  };
  opt(notAtomic, '-a, --all', 'Run sizes from 2 till 2^23 (SYMMETRIC)');
  opt(atomic, '-A, --atomic_type=<type>',
    'type of atomic operation from {CMP_AND_SWAP,FETCH_AND_ADD} (default FETCH_AND_ADD) (SYMMETRIC)');
  opt(true, '-d, --ib-dev=<dev>', `Use device <dev> (default ${DEFAULT_DEVICE})`);
  opt(true, '-D, --duration=<sec>', 'Run test for a customized period of seconds. (SYMMETRIC)');
  opt(test !== 'write_lat', '-e, --events', 'Sleep on CQ events (default poll); the server follows the client');
  opt(true, '-h, --help', 'Show this help screen.');
  opt(true, '    --json', 'Print the results as JSON on stdout');
  opt(true, '    --local', 'Run both ends on this machine');
  opt(true, '-n, --iters=<iters>', `Number of exchanges (at least ${MIN_ITERS}, default ${iters}) (SYMMETRIC)`);
  opt(bw, '-N, --noPeak', `Cancel peak-bw calculation (default with peak up to iters=${PEAK_MAX_ITERS})`);
  opt(true, '-p, --port=<port>', `Listen on/connect to port <port> (default ${DEFAULT_PORT}) (SYMMETRIC)`);
  opt(bw, '-Q, --cq-mod=<n>', `Generate Cqe only after <--cq-mod> completion (default ${DEF_CQ_MOD}; 1 above ${CQ_MOD_SIZE_LIMIT} bytes without -a)`);
  opt(notAtomic, '-s, --size=<size>', `Size of message to exchange (default ${size}) (SYMMETRIC)`);
  opt(true, '-t, --tx-depth=<dep>', `Size of tx queue (default ${tx})`);
  return `${lines.join('\n')}\n`;
}
