import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Histogram } from './histogram';

test('exact below 2048 ns', () => {
  const h = new Histogram();
  for (let v = 1; v <= 1000; v++) h.record(v);
  assert.equal(h.percentile(50), 500);
  assert.equal(h.percentile(99), 990);
  assert.equal(h.percentile(100), 1000);
  assert.equal(h.min, 1);
  assert.equal(h.count, 1000);
});

test('three significant digits over a wide range', () => {
  for (const v of [2048, 3000, 12_345, 999_999, 25_000_000, 3e9]) {
    const h = new Histogram();
    h.record(v);
    h.record(v * 4);
    const got = h.percentile(50);
    assert.ok(Math.abs(got - v) / v <= 0.001, `${v} → ${got}`);
  }
});

test('percentiles of a skewed distribution', () => {
  const h = new Histogram();
  for (let i = 0; i < 9990; i++) h.record(100);
  for (let i = 0; i < 10; i++) h.record(50_000);
  assert.equal(h.percentile(50), 100);
  assert.equal(h.percentile(99.9), 100);
  assert.ok(Math.abs(h.percentile(99.95) - 50_000) < 50);
});
