// docs/VERBS.md's example, run as it is written (register, connect, RDMA WRITE, poll).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');

test('the docs/VERBS.md example prints what the doc says', { timeout: 20_000 }, () => {
  const doc = readFileSync(path.join(root, 'docs', 'VERBS.md'), 'utf8');
  const m = /```js\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('## Example')));
  assert.ok(m?.[1], 'docs/VERBS.md has a js example under "## Example"');
  const said = /It prints `([^`]*)`/.exec(doc)?.[1];
  assert.equal(said, 'true hello');
  const out = execFileSync(process.execPath, ['-e', m[1]], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(out, `${said}\n`);
});
