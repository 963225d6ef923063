/**
 * What the benchmark's two processes agree on. The parent measures; the child (peer.ts) echoes or sinks.
 * - latency: the parent sends `bytes`, the child sends the same bytes back; a zero-length message ends it (shm).
 * - throughput: the parent streams `bytes`-sized messages until its time is up, then a zero-length message
 *   (shm) or a half-close (node:net); the child answers with the count it received (8 bytes, float64) and the
 *   parent's clock stops there.
 */
export type Transport = 'shm-poll' | 'shm-event' | 'tcp' | 'unix' | 'js-floor';

/**
 * The JS floor's slots (a region passed to the child as fd 3): the least JavaScript can do per round trip —
 * copy the payload with TypedArray.set, store a sequence number, spin on the other's with Atomics.load. No
 * framing, no checks, no API: what V8 itself costs over shared memory, next to the C floor.
 *   +0 i32 ping sequence   +64 ping payload (bytes)   +P i32 pong sequence   +P+64 pong payload
 * where P = 64 + bytes rounded up to 64.
 */
export const jsFloorPong = (bytes: number): number => 64 + Math.ceil(bytes / 64) * 64;
export const jsFloorBytes = (bytes: number): number => 2 * jsFloorPong(bytes);
export type Kind = 'latency' | 'throughput';

export interface PeerArgs {
  transport: Transport;
  kind: Kind;
  /** Where to connect: a kbypass/unix socket path, or a TCP port on 127.0.0.1. */
  address: string;
  bytes: number;
}

// An abstract socket name ('\0name') travels as '@name' (argv cannot hold NUL bytes).
export const encodeArgs = (a: PeerArgs): string[] => [a.transport, a.kind, a.address.replace(/^\0/, '@'), String(a.bytes)];

/** Ring size per direction for a run: the default (1 MiB) where a message is one record (≤ a quarter of the
 *  ring), else 8 MiB, so that messages up to 1 MiB are single records rather than fragments reassembled by a copy. */
export const ringSizeFor = (bytes: number): number => (bytes <= (1 << 18) - 8 ? 0 : BENCH_RING_SIZE);

export function decodeArgs(argv: string[]): PeerArgs {
  const [transport, kind, address, bytes] = argv;
  if (!transport || !kind || !address || !bytes) throw new Error('usage: peer TRANSPORT KIND ADDRESS BYTES');
  return { transport: transport as Transport, kind: kind as Kind, address: address.replace(/^@/, '\0'), bytes: Number(bytes) };
}

/** Ring size per direction used by the shm runs (large enough that 1 MiB messages are single records). */
export const BENCH_RING_SIZE = 8 << 20;
