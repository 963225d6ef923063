// ES-module entry for kbypass/cm: the same objects as the CommonJS build.
import cjs from '../dist/src/cm/index.js';

export const { listen, connect, initQp, CmListener, CmConnection, ConnectRequest, CmError, CM_UDP_QKEY } = cjs;
export default cjs;
