/**
 * How much each part of `kbypass bench net` does, full or --quick: counts, durations and the time caps that
 * bound every loop (a cap reached is a failed measurement, except for echo, which reports the round trips it
 * timed if they are enough). http and bulk are measured in alternating rounds (tcp, kbypass, tcp, kbypass, …):
 * on this VM the speed of a core moves by up to 2× from one second to the next (docs/BENCHMARKS.md), and one
 * sample per transport, taken seconds apart, compared those moments as much as the transports.
 */
export interface NetBenchPlan {
  echo: { bytes: number; roundTrips: number; warmup: number; capSec: number; minRoundTrips: number };
  /** `durationSec` per transport in all, as `rounds` runs of durationSec / rounds, the transports alternating. */
  http: { connections: number; durationSec: number; rounds: number };
  /** `repeats` transfers of `bytes` per transport, the transports alternating; each transport's median counts. */
  bulk: { bytes: number; chunk: number; capSec: number; repeats: number };
}

const MiB = 1 << 20;

export function planFor(quick: boolean): NetBenchPlan {
  return {
    echo: { bytes: 64, roundTrips: 20_000, warmup: quick ? 1_000 : 2_000, capSec: quick ? 20 : 60, minRoundTrips: 1_000 },
    http: { connections: 10, durationSec: quick ? 3 : 10, rounds: quick ? 1 : 2 },
    bulk: { bytes: (quick ? 256 : 1024) * MiB, chunk: 64 * 1024, capSec: quick ? 60 : 120, repeats: 3 },
  };
}
