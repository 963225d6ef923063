/**
 * The verbs API as a provider implements it: libibverbs' objects (ibv_context, ibv_pd, ibv_mr, ibv_cq,
 * ibv_comp_channel, ibv_qp, ibv_srq) as TypeScript interfaces, and the device list. A provider (shm0 today; a
 * RoCEv2 provider and real NICs later) registers itself here and implements these interfaces; users only ever
 * see the interfaces, so a new provider changes nothing above this file.
 */
import { KbypassError } from '../errors';
import type { QpAttr } from './qp-attr';
import type { AddressHandle, DeviceAttr, PortAttr, QpCap, RecvWr, SendWr, WorkCompletion } from './types';
import type { QpTypeValue } from './constants';
import type { Region } from '../memory/region';

/** ibv_device, as getDeviceList() lists it. */
export interface DeviceInfo {
  readonly name: string;
  readonly guid: bigint;
  /** 'shm' (same-host shared memory), later 'roce', 'ib'. */
  readonly transport: string;
}

/** A provider: a kind of device. */
export interface Provider {
  devices(): DeviceInfo[];
  open(name: string): Context;
}

/** ibv_context */
export interface Context {
  readonly device: DeviceInfo;
  /** ibv_query_device */
  query(): DeviceAttr;
  /** ibv_query_port (ports are numbered from 1) */
  queryPort(port: number): PortAttr;
  allocPd(): ProtectionDomain;
  createCompChannel(): CompChannel;
  /** ibv_create_cq: at least `cqe` entries (rounded up, as libibverbs allows). */
  createCq(cqe: number, channel?: CompChannel | null): CompletionQueue;
  /** ibv_close_device: everything created from it must be destroyed first (EBUSY otherwise). */
  close(): void;
}

/** ibv_pd */
export interface ProtectionDomain {
  readonly context: Context;
  /**
   * ibv_reg_mr: register a shared region (or a new one of `length` bytes) with Access.* flags. Remote write or
   * remote atomic access needs local write (EINVAL otherwise, as in libibverbs).
   */
  registerMemory(regionOrLength: Region | number, access: number): MemoryRegion;
  createQp(init: QpInitAttr): QueuePair;
  createSrq(init: SrqInitAttr): SharedReceiveQueue;
  /** ibv_create_ah (UD destinations). */
  createAh(attr: { dlid: number; portNum?: number }): AddressHandle;
  /** ibv_dealloc_pd: EBUSY while MRs, QPs or SRQs remain. */
  dealloc(): void;
}

/** ibv_mr */
export interface MemoryRegion {
  readonly pd: ProtectionDomain;
  /** The registered memory's address (an I/O virtual address: use it in SGEs and give it to peers). */
  readonly addr: number;
  readonly length: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly access: number;
  /** The registered bytes themselves (index 0 is `addr`). */
  readonly buffer: Uint8Array;
  /** ibv_dereg_mr: peers fail with REM_ACCESS_ERR from their next operation. */
  deregister(): void;
}

/** ibv_comp_channel: a completion event channel, awaitable from the event loop. */
export interface CompChannel {
  /** ibv_get_cq_event: resolves with the CQ that has an event (after its requestNotify). */
  getCqEvent(): Promise<CompletionQueue>;
  /** ibv_destroy_comp_channel: EBUSY while CQs use it. */
  destroy(): void;
}

/** ibv_cq */
export interface CompletionQueue {
  readonly cqe: number;
  readonly channel: CompChannel | null;
  /**
   * ibv_poll_cq: fill up to `max` completions into `out` (default: this CQ's own reusable array, `wc`), oldest
   * first; returns how many. No allocation per completion: the objects are reused by the next poll.
   */
  poll(max?: number, out?: WorkCompletion[]): number;
  /** The CQ's reusable completions (`poll()` without `out` fills these). */
  readonly wc: WorkCompletion[];
  /** ibv_req_notify_cq: the next completion (or the next solicited one) raises one channel event. */
  requestNotify(solicitedOnly?: boolean): void;
  /**
   * True once a completion arrived while the CQ was full and was lost (libibverbs reports this as the async event
   * IBV_EVENT_CQ_ERR); the QP that produced it went to ERROR.
   */
  readonly overrun: boolean;
  /** ibv_ack_cq_events */
  ackEvents(n: number): void;
  destroy(): void;
}

/** ibv_qp_init_attr */
export interface QpInitAttr {
  /** QpType.RC | UC | UD */
  qpType: QpTypeValue;
  sendCq: CompletionQueue;
  recvCq: CompletionQueue;
  /** Receives come from this SRQ instead of the QP's own receive queue. Default none. */
  srq?: SharedReceiveQueue | null;
  cap: Partial<QpCap>;
  /** Every send WR generates a completion (else only SIGNALED ones). Default false. */
  sqSigAll?: boolean;
}

/** ibv_srq_init_attr */
export interface SrqInitAttr {
  maxWr: number;
  maxSge?: number;
}

/** ibv_qp */
export interface QueuePair {
  readonly qpNum: number;
  readonly qpType: QpTypeValue;
  readonly pd: ProtectionDomain;
  readonly state: number;
  /** The capabilities granted (rounded up). */
  readonly cap: QpCap;
  /** ibv_modify_qp: all or nothing (EINVAL and nothing applied when any attribute is missing, extra or bad). */
  modify(attr: QpAttr, mask: number): void;
  /** ibv_query_qp */
  query(): QpAttr;
  /**
   * ibv_post_send. Throws a PostError (code EINVAL / ENOMEM, `badWr` the index of the first WR not posted) for a
   * WR the queue cannot take; the WRs before it were posted.
   */
  postSend(wr: SendWr | readonly SendWr[]): void;
  postRecv(wr: RecvWr | readonly RecvWr[]): void;
  destroy(): void;
}

/** ibv_srq */
export interface SharedReceiveQueue {
  readonly pd: ProtectionDomain;
  readonly maxWr: number;
  readonly maxSge: number;
  postRecv(wr: RecvWr | readonly RecvWr[]): void;
  destroy(): void;
}

/** ibv_post_send / ibv_post_recv failed at WR `badWr`; `code` is the errno name. */
export class PostError extends KbypassError {
  readonly badWr: number;
  constructor(code: string, badWr: number, message: string) {
    super(code, `${message} (bad WR: index ${badWr})`);
    this.badWr = badWr;
    this.name = 'PostError';
  }
}

const providers: Provider[] = [];

/** Add a provider (the shm provider registers itself when kbypass/verbs is loaded). */
export function registerProvider(p: Provider): void {
  if (!providers.includes(p)) providers.push(p);
}

/** ibv_get_device_list */
export function getDeviceList(): DeviceInfo[] {
  return providers.flatMap((p) => p.devices());
}

/** ibv_open_device, by name (e.g. 'shm0'). ENODEV when no provider has it. */
export function openDevice(name: string): Context {
  if (typeof name !== 'string') throw new KbypassError('ERR_INVALID_ARG_TYPE', `The "name" argument must be of type string`);
  for (const p of providers) if (p.devices().some((d) => d.name === name)) return p.open(name);
  throw new KbypassError('ENODEV', `no RDMA device named '${name}' (devices: ${getDeviceList().map((d) => d.name).join(', ') || 'none'})`);
}
