/**
 * The fence between arming a CQ and pushing into it from another process (layout.ts part 1, CQ_FLAG_ARM_FENCE).
 *
 * A consumer about to sleep arms its CQ, then polls once more. A producer commits a completion, then reads the
 * armed flag. Each side stores, then loads what the other stored, so one side needs a full fence between the
 * two, or both can miss: the producer sees "not armed" and the consumer sees no completion, and the wake-up is
 * lost. x86 lets a load overtake an earlier store. So without help the producer pays a locked instruction
 * on every completion it pushes into a peer's CQ, although arming is rare.
 *
 * membarrier(2) moves that cost to the rare side. A process that may push into peers' CQs registers once
 * (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED). A CQ owner that can issue the fence marks its CQ with
 * CQ_FLAG_ARM_FENCE, and runs MEMBARRIER_CMD_GLOBAL_EXPEDITED after each arm of a shared CQ: every running
 * thread of every registered process passes a full barrier before it returns. A registered producer then reads
 * the flag of a marked CQ with a plain load, in program order after its commit. Either the barrier finds the
 * producer before its load, and the commit is visible to the poll that follows the arm; or the load comes after
 * the barrier, and sees the arm.
 *
 * Where either half is missing, producers keep the locked read: the kernel or a seccomp filter lacks the
 * commands, the CQ is not marked, or KBYPASS_MEMBARRIER=off. Old and new processes therefore mix safely.
 * The price: an arm of a shared CQ costs one system call, about 1.5 µs here, and an inter-processor interrupt
 * to each CPU running a registered process. A program about to wait for an event makes system calls anyway.
 */
import { native } from '../../native/binding';

/** <linux/membarrier.h> */
export const MEMBARRIER_CMD_QUERY = 0;
export const MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1;
export const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2;

let available: boolean | undefined;
let registered: boolean | undefined;

/** False when the environment turns the fence off (KBYPASS_MEMBARRIER=off): every producer locks. */
function allowed(): boolean {
  return process.env['KBYPASS_MEMBARRIER'] !== 'off';
}

/** Can this process fence every registered process? Asked of the kernel once. */
export function armFenceAvailable(): boolean {
  if (available === undefined) {
    const want = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
    try {
      available = allowed() && (native().membarrier(MEMBARRIER_CMD_QUERY) & want) === want;
    } catch {
      available = false; // ENOSYS (an old kernel, a seccomp filter) or EPERM: the locked read stays
    }
  }
  return available;
}

/**
 * Register this process for the fence of CQ owners (once); true if it is registered. Only a registered process
 * may read a marked CQ's armed flag with a plain load.
 */
export function armFenceRegistered(): boolean {
  if (registered === undefined) {
    try {
      registered = armFenceAvailable() && native().membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) >= 0;
    } catch {
      registered = false;
    }
  }
  return registered;
}

/** The owner's half, after arming a CQ that peers push into: a full barrier in every registered process. */
export function armFence(): void {
  native().membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}
