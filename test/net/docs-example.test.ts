// docs/NET.md's example, run as it is written, from CommonJS; and kbypass/net and kbypass/preload by their
// package names, from both module systems.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');

test('the docs/NET.md example prints what the doc says', { timeout: 20_000 }, () => {
  const doc = readFileSync(path.join(root, 'docs', 'NET.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Example'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(m?.[1], 'docs/NET.md has a js example under "## Example"');
  const said = /It prints `([^`]+)`/.exec(section);
  assert.ok(said?.[1]);
  const out = execFileSync(process.execPath, ['-e', m[1]], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(out, `${said[1]}\n`);
});

test('kbypass/net loads as an ES module; kbypass/preload patches node:net for ES modules', { timeout: 20_000 }, () => {
  const code = `
    import { createServer, connect, Socket } from 'node:net';
    import * as knet from 'kbypass/net';
    if (typeof knet.connect !== 'function' || knet.Socket === undefined) process.exit(3);
    const srv = createServer((s) => s.end(String(s.bypassed)));
    srv.listen(0, '127.0.0.1', () => {
      const c = new Socket();
      c.connect(srv.address().port, '127.0.0.1');
      let got = '';
      c.on('data', (d) => { got += d; });
      c.on('close', () => { console.log(got, c.bypassed, c instanceof Socket, connect === knet.connect); srv.close(); });
    });
  `;
  const out = execFileSync(process.execPath, ['--import', 'kbypass/preload', '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  assert.equal(out, 'true true true true\n');
});

test('node --require kbypass/preload resolves by package name', { timeout: 20_000 }, () => {
  const out = execFileSync(process.execPath, ['--require', 'kbypass/preload', '-e', `
    const net = require('net');
    const srv = net.createServer((s) => s.end('x'));
    srv.listen(0, () => { const c = net.connect(srv.address().port, () => { console.log(c.bypassed); c.destroy(); srv.close(); }); });
  `], { cwd: root, encoding: 'utf8', timeout: 15_000, env: { ...process.env, KBYPASS_DEBUG: '' } });
  assert.equal(out, 'true\n');
});
