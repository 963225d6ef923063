// `node --import kbypass/preload app.mjs`: installs the CommonJS preload (which also updates the named exports
// of 'node:net' and 'node:tls' that ES modules import).
import '../dist/src/net/preload.js';
