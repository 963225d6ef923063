// ES-module entry: the same objects as the CommonJS build (one copy of the state, no dual-package hazard).
import cjs from '../dist/src/index.js';

export const { listen, Server, connect, Channel, Claim, KbypassError, SystemError, createRegion, attachRegion } = cjs;
export default cjs;
