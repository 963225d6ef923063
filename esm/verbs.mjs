// ES-module entry for kbypass/verbs: the same objects as the CommonJS build.
import cjs from '../dist/src/verbs/index.js';

export const { getDeviceList, openDevice, registerProvider, PostError, WorkCompletion, Access, ACCESS_ALL, QpType, QpState, QpAttrMask, Mtu, WrOpcode, SendFlags, WcOpcode, WcFlags, WcStatus, AtomicCap, GRH_BYTES, RNR_TIMER_US, wcStatusName } = cjs;
export default cjs;
