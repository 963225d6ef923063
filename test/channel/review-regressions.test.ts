/**
 * Regressions found in review: 'drain' must not come while the ring is still full when the doorbell rings for
 * incoming data; an orderly close must not drop messages a paused listener (the async iterator) has not taken
 * yet; close() aborts an open claim (nothing may follow the closed flag); a 'message' listener that throws
 * does not stop delivery.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { checkSeqMessage, pair, seqMessage, sleep, TEST_TIMEOUT, until } from '../helpers/util';

const opts = { timeout: TEST_TIMEOUT };

describe('review regressions', () => {
  it("no 'drain' while the ring is still full when the peer's data rings the doorbell", opts, async () => {
    const p = await pair({ ringSize: 65536 });
    try {
      const { srv, cli } = p;
      cli.on('message', () => {}); // event-driven receive: parks on the doorbell when idle
      const msg = new Uint8Array(1000);
      let sent = 0;
      while (cli.trySend(msg)) sent++;
      assert.ok(sent > 0);
      await sleep(20); // the receiver parks (spin 20 µs, yield 200 µs)
      let drainOk: boolean | null = null;
      cli.once('drain', () => { drainOk = cli.trySend(msg); });
      srv.send('ping'); // the server reads nothing: only the client's receive side is woken
      await sleep(50);
      assert.notEqual(drainOk, false, "'drain' came while the ring was still full");
      assert.equal(drainOk, null);
      let got = 0;
      while (got < sent) got += srv.poll(() => {}, Infinity); // make room: now 'drain' follows
      await until(() => drainOk !== null, 5000, "'drain'");
      assert.equal(drainOk, true);
    } finally {
      await p.close();
    }
  });

  it('an orderly close delivers every message to an async iterator that holds the sender back', opts, async () => {
    const p = await pair();
    try {
      const { srv, cli } = p;
      const it = cli[Symbol.asyncIterator]();
      const N = 3000; // more than the 1024 the iterator queues before it pauses
      for (let i = 0; i < N; i++) assert.equal(srv.send(seqMessage(i, 16)), true);
      await srv.close();
      await sleep(20);
      let n = 0;
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        assert.equal(checkSeqMessage(r.value), n);
        n++;
      }
      assert.equal(n, N, `${N - n} messages lost on orderly close`);
      assert.equal(cli.state, 'closed');
    } finally {
      await p.close();
    }
  });

  it('close() aborts an open claim: its commit throws and the peer never sees it', opts, async () => {
    const p = await pair();
    try {
      const { srv, cli } = p;
      const got: string[] = [];
      srv.on('message', (m) => got.push(Buffer.from(m).toString()));
      cli.send('before');
      const claim = cli.claim(5);
      assert.ok(claim);
      claim.view.set(Buffer.from('after'));
      const closing = cli.close();
      assert.equal(claim.open, false);
      assert.throws(() => claim.commit(), { code: 'ERR_KBYPASS_CLAIM_DONE' });
      await closing;
      await until(() => srv.closed, 5000, 'server side closed');
      assert.deepEqual(got, ['before']);
    } finally {
      await p.close();
    }
  });

  it("a 'message' listener that throws does not stop delivery", opts, () => {
    // In a child: node:test would count the (deliberate) uncaught exception against this test.
    const root = path.resolve(__dirname, '..', '..', '..');
    const code = `
      const { listen, connect } = require('kbypass');
      const name = '\\0kbypass-throw-' + process.pid;
      let uncaught = 0;
      process.on('uncaughtException', () => { uncaught++; });
      const s = listen(name);
      s.on('channel', (ch) => {
        const seen = [];
        ch.on('message', (m) => {
          seen.push(Buffer.from(m).toString());
          if (seen.length === 1) throw new Error('listener bug');
          if (seen.length === 3) { console.log(JSON.stringify({ seen, uncaught })); process.exit(0); }
        });
      });
      connect(name).then(async (c) => {
        c.send('a');
        await new Promise((r) => setTimeout(r, 50)); // the receiver parks after the throw
        c.send('b'); c.send('c');
        setTimeout(() => { console.log('stalled'); process.exit(1); }, 3000);
      });
    `;
    const out = execFileSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', timeout: 10_000 });
    assert.deepEqual(JSON.parse(out), { seen: ['a', 'b', 'c'], uncaught: 1 });
  });
});
