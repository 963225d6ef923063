// ES-module entry for kbypass/packet: the same objects as the CommonJS build.
import cjs from '../dist/src/packet/index.js';

export const { openPort, XdpPort, PacketPort, interfaceInfo } = cjs;
export default cjs;
