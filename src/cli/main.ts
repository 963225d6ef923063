/**
 * The `kbypass` command. Subcommands:
 *   kbypass bench ipc [--quick] [--json] [--sizes 64,1024]   latency and throughput between two processes
 *   kbypass bench net [--quick] [--json]                    node:net / node:http programs over kbypass (preload) and TCP
 *   kbypass bench verbs [--quick] [--json]                  the verbs figures: perf's tests against their floors
 *   kbypass bench packet [--quick] [--json]                 packets/s on a veth pair: AF_XDP and PACKET_MMAP in JS, dgram, C
 *   kbypass perf <test> [server] [options]                   perftest's tools over kbypass/verbs (src/perf)
 *   kbypass capture -i IF -w FILE [options]                  capture from the packet rings into pcap (capture.ts)
 *   kbypass pktgen -i IF --dst-ip A --dst-mac M [options]    UDP traffic generator on the TX ring (pktgen.ts)
 *   kbypass stat [--interval S] [--count N] [-i IF] [--json] the live statistics of open packet ports (stat.ts)
 *   kbypass --version | --help
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';

const USAGE = `Usage: kbypass <command> [options]

Commands:
  bench ipc    Round-trip latency and streaming throughput between two processes:
               kbypass channels (shm-poll, shm-event), node:net over TCP and Unix sockets,
               and the C floors (c-floor, memcpy), measured in one run.
      --quick        fewer sizes and iterations (under 45 s)
      --json         print one JSON object on stdout instead of tables
      --sizes LIST   message sizes in bytes, comma-separated (default 8 B to 1 MiB)

  bench net    Unmodified node:net / node:http programs (server and client in two processes) over
               kbypass (both started with --require kbypass/preload) and over TCP, in one run:
               64 B echo round trip (p50, p99), HTTP/1.1 keep-alive requests/s (autocannon,
               10 connections, two rounds of 5 s), and 1 GiB piped transfers (bytes/s, the median of
               three), the transports alternating round by round. Fails if a kbypass figure
               was not measured over kbypass (the preload's KBYPASS_DEBUG lines say which way).
      --quick        one round of 3 s of HTTP per transport, 256 MiB transfers (about 15 s)
      --json         print one JSON object on stdout instead of tables

  bench verbs  kbypass/verbs on shm0 against the floors, in one run: write_lat and send_lat
               (8 B) against the C ping-pong (and the bare JavaScript ping-pong beside it),
               write_bw (64 KiB) against memcpy, send_bw (64 B).
      --quick        fewer iterations (about 20 s)
      --json         print one JSON object on stdout instead of the report

  bench packet Packets/s of 64 B UDP datagrams on a veth pair between two network namespaces
               made for the run (needs root): receiving and sending through kbypass/packet over
               AF_XDP (xdp-js) and PACKET_MMAP (packet-js), node:dgram, and a C AF_XDP program
               built with the package (xdp-c), in one run; median of 3 trials of 3 s.
      --quick        one 1.5 s trial per figure (about 15 s)
      --json         print one JSON object on stdout instead of the report

  perf <test> [server]
               perftest's tools over kbypass/verbs: send_lat, write_lat, read_lat, atomic_lat,
               send_bw, write_bw, read_bw. Start the server with no address and the client
               with the server's, or both with --local. \`kbypass perf <test> --help\` for options.

  capture -i IF -w FILE.pcap [-c N] [-G SECS] [--mode packet|xdp|auto]
               Capture from an interface's receive rings (kbypass/packet) into a pcap file, like
               tcpdump -w. \`kbypass capture --help\` for options.

  pktgen -i IF --dst-ip A --dst-mac M [-c N | -d SECS] [--rate PPS] [--mode xdp|packet|auto]
               Send sequence-numbered UDP frames from an interface's TX ring (kbypass/packet).
               \`kbypass pktgen --help\` for options.

  stat [--interval SECONDS] [--count N] [-i IF] [--json] [--dir DIR]
               Live statistics of the packet ports that running processes have open (rx/tx
               packets and rates, held frames, drops by reason, kernel counters); with -i, the
               interface's own counters beside its ports. \`kbypass stat --help\` for options.

Options:
  -h, --help       show this help
  -v, --version    print the version
`;

function version(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('../../../package.json') as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'perf') {
    const { runPerf } = await import('../perf/main');
    return runPerf(argv.slice(1));
  }
  if (argv[0] === 'stat') {
    const { runStat } = await import('./stat');
    return runStat(argv.slice(1));
  }
  if (argv[0] === 'capture') {
    const { runCapture } = await import('./capture');
    return runCapture(argv.slice(1));
  }
  if (argv[0] === 'pktgen') {
    const { runPktgen } = await import('./pktgen');
    return runPktgen(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        sizes: { type: 'string' },
      },
    });
  } catch (e) {
    process.stderr.write(`kbypass: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) { process.stdout.write(`${version()}\n`); return 0; }
  if (values.help || positionals.length === 0) { process.stdout.write(USAGE); return values.help ? 0 : 2; }
  const [cmd, sub] = positionals;
  if (cmd === 'bench' && sub === 'ipc') {
    let sizes: number[] | undefined;
    if (values.sizes !== undefined) {
      sizes = values.sizes.split(',').map((s) => Number(s.trim()));
      if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > (16 << 20))) {
        process.stderr.write('kbypass: --sizes takes whole numbers of bytes from 1 to 16777216\n');
        return 2;
      }
    }
    const { runIpcBench, formatIpcReport } = await import('../../bench/ipc/main');
    const result = await runIpcBench({ quick: values.quick === true, ...(sizes ? { sizes } : {}) });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ latency: result.latency, throughput: result.throughput })}\n`);
    } else {
      process.stdout.write(`${formatIpcReport(result)}\n`);
    }
    return 0;
  }
  if (cmd === 'bench' && sub === 'net') {
    const { parseNetBenchArgs } = await import('../../bench/net/args');
    let args;
    try {
      args = parseNetBenchArgs(argv);
    } catch (e) {
      process.stderr.write(`kbypass: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    const { runNetBench } = await import('../../bench/net/main');
    const { formatNetReport, toJson } = await import('../../bench/net/report');
    const result = await runNetBench({ quick: args.quick });
    process.stdout.write(args.json ? `${toJson(result)}\n` : `${formatNetReport(result)}\n`);
    return 0;
  }
  if (cmd === 'bench' && sub === 'verbs') {
    if (values.sizes !== undefined) { process.stderr.write('kbypass: bench verbs takes no --sizes\n'); return 2; }
    const { runVerbsBench, formatVerbsReport } = await import('../../bench/verbs/main');
    const result = await runVerbsBench({ quick: values.quick === true });
    process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : formatVerbsReport(result));
    return 0;
  }
  if (cmd === 'bench' && sub === 'packet') {
    if (values.sizes !== undefined) { process.stderr.write('kbypass: bench packet takes no --sizes\n'); return 2; }
    const { runPacketBench } = await import('../../bench/packet/main');
    const { formatPacketReport, toJson } = await import('../../bench/packet/report');
    const result = await runPacketBench({ quick: values.quick === true });
    process.stdout.write(values.json ? `${toJson(result)}\n` : `${formatPacketReport(result)}\n`);
    return 0;
  }
  process.stderr.write(`kbypass: unknown command '${positionals.join(' ')}'\n\n${USAGE}`);
  return 2;
}
