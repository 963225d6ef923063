// The README's example, run as it is written (as msgpack-javascript does), from CommonJS, plus the ES-module
// entry point.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

function exampleCode(): string {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Example'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(m?.[1], 'README has a js example under "## Example"');
  return m[1];
}

test('the README example prints what the README says', { timeout: 20_000 }, () => {
  const out = execFileSync(process.execPath, ['-e', exampleCode()], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(out, 'hello over shared memory\n');
});

test('the package loads as an ES module with named exports', { timeout: 20_000 }, () => {
  const code = `
    import { listen, connect, Channel, KbypassError } from 'kbypass';
    import cjs from 'kbypass';
    if (typeof listen !== 'function' || typeof connect !== 'function' || cjs.listen !== listen) process.exit(3);
    const s = listen('\\0kbypass-esm-${process.pid}');
    s.on('channel', (ch) => ch.on('message', (m) => ch.send(m)));
    const ch = await connect('\\0kbypass-esm-${process.pid}');
    if (!(ch instanceof Channel)) process.exit(4);
    ch.send('esm');
    for await (const m of ch) { console.log(Buffer.from(m).toString()); break; }
    await ch.close(); await s.close();
    try { ch.send('x'); } catch (e) { console.log(e instanceof KbypassError, e.code); }
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(out, 'esm\ntrue ERR_KBYPASS_CHANNEL_CLOSED\n');
});
