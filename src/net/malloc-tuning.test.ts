import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../native/binding';
import { userChoseMalloc } from './malloc-tuning';

test("the program's own malloc settings win", () => {
  assert.equal(userChoseMalloc({}), false);
  assert.equal(userChoseMalloc({ MALLOC_TRIM_THRESHOLD_: '0' }), true);
  assert.equal(userChoseMalloc({ MALLOC_MMAP_THRESHOLD_: '65536' }), true);
  assert.equal(userChoseMalloc({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1' }), true);
  assert.equal(userChoseMalloc({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }), false);
  assert.equal(userChoseMalloc({ KBYPASS_MALLOC: 'default' }), true);
});

test('mallocTune applies on glibc and checks its arguments', () => {
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime !== undefined;
  assert.equal(native().mallocTune(32 << 20, 4 << 20), glibc);
  assert.throws(() => native().mallocTune(-1, 0), { code: 'EINVAL' });
});
