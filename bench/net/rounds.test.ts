// Combining bench net's alternating rounds: http's requests/s weighted by duration, bulk's median transfer (not
// the best), and the evidence added up.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { combineHttp, medianBulk, sumEvidence } from './rounds';
import type { BulkRun, HttpRun } from './runs';

const ev = (k: number, reasons: string[] = []) => ({ viaKbypass: k, viaTcp: reasons.length, tcpReasons: reasons, accepts: k });
const http = (rps: number, secs: number): HttpRun => ({
  requests_per_sec: rps, requests: rps * secs, duration_sec: secs, errors: 0, timeouts: 0, mismatches: 0, non2xx: 0, evidence: ev(10),
} as HttpRun);
const bulk = (secs: number): BulkRun => ({ bytes: 1 << 30, secs, server: { received: 1 << 30, secs: secs - 0.01 }, evidence: ev(1) });

test('http rounds: requests/s weighted by each round\'s duration; requests and seconds summed; every round kept', () => {
  const c = combineHttp([http(30_000, 5), http(40_000, 5)]);
  assert.equal(c.requests_per_sec, 35_000);
  assert.equal(c.requests, 350_000);
  assert.equal(c.duration_sec, 10);
  assert.deepEqual(c.rounds, [30_000, 40_000]);
  assert.equal(combineHttp([http(10_000, 1), http(40_000, 3)]).requests_per_sec, 32_500);
  assert.equal(c.evidence.viaKbypass, 20);
  assert.throws(() => combineHttp([]), RangeError);
});

test('bulk transfers: the median counts (the middle of three, the lower middle of an even count), every rate kept', () => {
  const runs = [bulk(0.5), bulk(0.25), bulk(1)];
  const m = medianBulk(runs);
  assert.equal(m.median, runs[0], 'the middle rate, not the fastest');
  assert.deepEqual(m.runs, [(1 << 30) / 0.5, (1 << 30) / 0.25, 1 << 30], 'in the order run');
  assert.equal(medianBulk([bulk(0.5), bulk(0.25)]).median.secs, 0.5);
  assert.equal(medianBulk([bulk(0.3)]).median.secs, 0.3);
  assert.equal(m.evidence.accepts, 3);
  assert.throws(() => medianBulk([]), RangeError);
});

test('evidence: counts added, at most five reasons for tcp kept', () => {
  const e = sumEvidence([ev(2, ['a', 'b', 'c']), ev(3, ['d', 'e', 'f'])]);
  assert.deepEqual(e, { viaKbypass: 5, viaTcp: 6, tcpReasons: ['a', 'b', 'c', 'd', 'e'], accepts: 5 });
});
