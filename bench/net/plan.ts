/**
 * How much each part of `kbypass bench net` does, full or --quick: counts, durations and the time caps that
 * bound every loop (a cap reached is a failed measurement, except for echo, which reports the round trips it
 * timed if they are enough).
 */
export interface NetBenchPlan {
  echo: { bytes: number; roundTrips: number; warmup: number; capSec: number; minRoundTrips: number };
  http: { connections: number; durationSec: number };
  bulk: { bytes: number; chunk: number; capSec: number };
}

const MiB = 1 << 20;

export function planFor(quick: boolean): NetBenchPlan {
  return {
    echo: { bytes: 64, roundTrips: 20_000, warmup: quick ? 1_000 : 2_000, capSec: quick ? 20 : 60, minRoundTrips: 1_000 },
    http: { connections: 10, durationSec: quick ? 3 : 10 },
    bulk: { bytes: (quick ? 256 : 1024) * MiB, chunk: 64 * 1024, capSec: quick ? 60 : 120 },
  };
}
