/**
 * The measured loops of `kbypass perf -e`: as loops.ts, but every wait for a completion sleeps on the CQ's
 * completion channel (perftest's `-e`, its ctx_notify_events): poll; if nothing, arm the CQ (requestNotify),
 * poll once more, then wait for the channel's event. write_lat has no such loop: it waits on memory. Nor have
 * read_lat and atomic_lat: the requester completes a one-sided WR before postSend returns, so the busy loop's
 * first poll always finds its completion, and there is never anything to sleep for.
 *
 * These mirror loops.ts step for step, on purpose: one loop for both would put an `await` (a microtask turn,
 * tens of nanoseconds) into every wait of the busy-polling loops the bars are measured with.
 */
import { KbypassError } from '../errors';
import { WrOpcode } from '../verbs/constants';
import type { CompChannel, CompletionQueue } from '../verbs';
import { BwWindow, check, deltas, recvWr, sendLatStart, type BwResult, type Samples } from './loops';
import { PEER_TIMEOUT_MS, type PerfSession } from './session';

/** At least one completion from `cq` (up to `max`), sleeping on `ch` while there is none; bounded. */
export async function pollEv(cq: CompletionQueue, ch: CompChannel, max: number): Promise<number> {
  let n = cq.poll(max);
  while (n === 0) {
    cq.requestNotify();
    n = cq.poll(max); // arrived while arming: the event it may raise is taken (and acknowledged) by a later wait
    if (n !== 0) break;
    let timer: NodeJS.Timeout | undefined;
    const ev = await Promise.race([
      ch.getCqEvent(),
      new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), PEER_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    if (ev === null) throw new KbypassError('ETIMEDOUT', 'no completion event: the peer stopped');
    ev.ackEvents(1);
    n = cq.poll(max);
  }
  check(cq, n);
  return n;
}

function channels(s: PerfSession): { send: CompChannel; recv: CompChannel } {
  if (s.sendChannel === null || s.recvChannel === null) throw new KbypassError('EINVAL', 'this perf session has no completion channels');
  return { send: s.sendChannel, recv: s.recvChannel };
}

/** send_lat -e: SEND ping-pong; each end sleeps for its completions and reposts the receive it consumed. */
export async function sendLatEv(s: PerfSession, client: boolean, size: number, iters: number, warmup: number, clockNs: number): Promise<Samples> {
  const ch = channels(s);
  const { recv, wr, stamps, total } = sendLatStart(s, size, iters, warmup);
  for (let i = 0; i < total; i++) {
    if (client) {
      if (i >= warmup) stamps[i - warmup] = performance.now();
      s.qp.postSend(wr);
      await pollEv(s.sendCq, ch.send, 1);
      await pollEv(s.recvCq, ch.recv, 1);
      s.qp.postRecv(recv);
    } else {
      await pollEv(s.recvCq, ch.recv, 1);
      s.qp.postRecv(recv);
      s.qp.postSend(wr);
      await pollEv(s.sendCq, ch.send, 1);
    }
  }
  s.barrier();
  return client ? deltas(stamps, clockNs) : new Float64Array(0);
}

/** send_bw / write_bw / read_bw -e (client): as bwClient, sleeping for completions when the window is full. */
export async function bwClientEv(s: PerfSession, opcode: number, size: number, iters: number, txDepth: number, cqMod: number, stampEach: boolean): Promise<BwResult> {
  const ch = channels(s);
  const w = new BwWindow(s, opcode, size, iters, txDepth, cqMod, stampEach);
  s.barrier();
  const t0 = performance.now();
  while (!w.done) {
    w.fill();
    w.complete(await pollEv(s.sendCq, ch.send, 16));
  }
  const totalNs = (performance.now() - t0) * 1e6;
  s.barrier();
  return { totalNs, posted: w.posted, completed: w.completed };
}

/** The server's side of a bandwidth test with -e: for send_bw, sleep for arrivals and repost. */
export async function bwServerEv(s: PerfSession, opcode: number, iters: number): Promise<void> {
  const ch = channels(s);
  if (opcode === WrOpcode.SEND) {
    s.fillRecvs(512);
    const recv = recvWr(s);
    s.barrier();
    let got = 0;
    while (got < iters) {
      const n = await pollEv(s.recvCq, ch.recv, 16);
      got += n;
      for (let k = 0; k < n; k++) s.qp.postRecv(recv);
    }
  } else {
    s.barrier(true);
  }
  s.barrier(true);
}
