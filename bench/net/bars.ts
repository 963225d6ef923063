/**
 * The bars for kbypass/net against TCP, each a ratio of two figures of the same run:
 *   (1) echo 64 B p50: kbypass ≤ ⅓ of tcp   (2) http requests/s: kbypass ≥ 1.5 × tcp   (3) bulk bytes/s: kbypass ≥ 2 × tcp
 * A missed bar is a result, not a failure (the exit code stays 0).
 */
import type { NetResult } from './report';

export interface Bar {
  name: 'echo' | 'http' | 'bulk';
  /** What is compared, e.g. 'kbypass echo 64 B p50 ÷ tcp p50'. */
  what: string;
  /** kbypass's figure ÷ tcp's (NaN if either is missing). */
  ratio: number;
  /** The bar, as printed: '≤ 0.333', '≥ 1.5', '≥ 2'. */
  bar: string;
  ok: boolean;
}

export function evaluateBars(r: NetResult): Bar[] {
  const echo = (t: string) => r.echo.find((x) => x.transport === t);
  const http = (t: string) => r.http.find((x) => x.transport === t);
  const bulk = (t: string) => r.bulk.find((x) => x.transport === t);
  const div = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !(b > 0) ? NaN : a / b);
  const ke = echo('kbypass')?.p50_ns; const te = echo('tcp')?.p50_ns;
  const kh = http('kbypass')?.requests_per_sec; const th = http('tcp')?.requests_per_sec;
  const kb = bulk('kbypass')?.bytes_per_sec; const tb = bulk('tcp')?.bytes_per_sec;
  const bytes = echo('kbypass')?.bytes ?? 64;
  return [
    // Compared as kbypass × 3 ≤ tcp, so that exactly a third passes.
    { name: 'echo', what: `kbypass echo ${bytes} B p50 ÷ tcp p50`, ratio: div(ke, te), bar: '≤ 0.333',
      ok: ke !== undefined && te !== undefined && ke > 0 && ke * 3 <= te },
    { name: 'http', what: 'kbypass http requests/s ÷ tcp', ratio: div(kh, th), bar: '≥ 1.5',
      ok: kh !== undefined && th !== undefined && th > 0 && kh >= 1.5 * th },
    { name: 'bulk', what: 'kbypass bulk bytes/s ÷ tcp', ratio: div(kb, tb), bar: '≥ 2',
      ok: kb !== undefined && tb !== undefined && tb > 0 && kb >= 2 * tb },
  ];
}

export function formatBar(b: Bar): string {
  return `${b.what} = ${Number.isFinite(b.ratio) ? b.ratio.toFixed(b.name === 'echo' ? 3 : 2) : '-'} (bar ${b.bar}) ${b.ok ? 'ok' : 'MISSED'}`;
}
