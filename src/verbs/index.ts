/**
 * kbypass/verbs: RDMA verbs with libibverbs' semantics (names in JS casing). Devices come from providers; the
 * shm provider (device `shm0`: processes on one host, over shared memory) is registered here.
 */
import { registerProvider } from './api';
import { shmProvider } from './shm/context';

registerProvider(shmProvider);

export {
  getDeviceList, openDevice, registerProvider, PostError,
  type Provider, type DeviceInfo, type Context, type ProtectionDomain, type MemoryRegion, type CompChannel,
  type CompletionQueue, type QpInitAttr, type SrqInitAttr, type QueuePair, type SharedReceiveQueue,
} from './api';
export * from './constants';
export { WorkCompletion, type Sge, type SendWr, type RecvWr, type AddressHandle, type QpCap, type DeviceAttr, type PortAttr } from './types';
export type { QpAttr, AhAttr } from './qp-attr';
