#!/usr/bin/env node
'use strict';
require('../dist/src/cli/main.js').main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`kbypass: ${err && err.message ? err.message : err}\n`);
    // Exit now: a failed run may hold channels or timers open.
    process.exit(1);
  },
);
