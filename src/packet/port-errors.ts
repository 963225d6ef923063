/**
 * Errors that tell the user what to do. A port's set-up fails with the errno `code` and `syscall` of the call
 * that failed (as everywhere in kbypass) and a message that names the missing capability, the limit to raise,
 * or the option to change.
 */
import { SystemError } from '../errors';
import { memlockLimitText } from '../memory/region';

/** What the failing call was doing, for the message. */
export type SetupStep =
  | 'xsk-socket' | 'umem' | 'xsk-rings' | 'xsk-mmap' | 'xsk-bind' | 'bpf-map' | 'bpf-prog' | 'xdp-attach' | 'xskmap-update'
  | 'packet-socket' | 'packet-ring' | 'packet-mmap' | 'packet-bind' | 'packet-fanout' | 'packet-option';

interface Raw { code?: string; errno?: number; syscall?: string; message?: string }


/** True for errno 95 under either of its names. */
export function isNotSupported(code: unknown): boolean { return code === 'EOPNOTSUPP' || code === 'ENOTSUP'; }

/** Turn a native failure during `step` into a SystemError with advice; anything that is not a system error is returned as is. */
export function setupError(e: unknown, step: SetupStep, ctx: { ifname: string; queue: number; bytes?: number; rxQueues?: number }): unknown {
  const err = e as Raw;
  if (typeof err?.code !== 'string' || typeof err.syscall !== 'string') return e;
  const { syscall } = err;
  // errno 95: Node and libuv call it ENOTSUP; the kernel, its tools and the AF_XDP docs say EOPNOTSUPP.
  const code = err.code === 'ENOTSUP' ? 'EOPNOTSUPP' : err.code;
  const base = `${step}: ${syscall} failed: ${code}`;
  let advice = '';
  if (code === 'EPERM' || code === 'EACCES') {
    if (step === 'xsk-socket' || step === 'packet-socket') {
      advice = 'raw packet sockets need CAP_NET_RAW: run as root, or grant it with `setcap cap_net_raw,cap_net_admin+ep "$(command -v node)"`';
    } else if (step.startsWith('bpf') || step === 'xdp-attach' || step === 'xskmap-update') {
      advice = 'loading and attaching an XDP program needs CAP_BPF and CAP_NET_ADMIN (or root)';
    } else if (step === 'umem') {
      advice = `pinning the UMEM needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK: ${memlockLimitText()}`;
    } else {
      advice = 'this needs CAP_NET_RAW and CAP_NET_ADMIN (or root)';
    }
  } else if ((code === 'ENOBUFS' || code === 'ENOMEM') && (step === 'umem' || step === 'xsk-rings' || step === 'xsk-mmap')) {
    advice = `the kernel could not pin ${ctx.bytes ?? 'the'} bytes of UMEM/rings: ${memlockLimitText()}. ` +
      'Raise it with `ulimit -l unlimited` (LimitMEMLOCK= in systemd, --ulimit memlock=-1 in Docker), or use fewer/smaller frames';
  } else if (code === 'EBUSY' && step === 'xsk-bind') {
    advice = `queue ${ctx.queue} of ${ctx.ifname} is already bound by another AF_XDP socket (or one that was just closed is still being torn down)`;
  } else if (code === 'EBUSY' && step === 'xdp-attach') {
    advice = `another XDP program is attached to ${ctx.ifname} (by another process or thread: see \`ip link show ${ctx.ifname}\`); detach it, or use mode: 'packet'`;
  } else if (code === 'EINVAL' && step === 'xsk-bind' && ctx.rxQueues !== undefined && ctx.queue >= ctx.rxQueues) {
    advice = `${ctx.ifname} has ${ctx.rxQueues} receive queue(s): choose a queue below ${ctx.rxQueues}`;
  } else if (code === 'EOPNOTSUPP' && step === 'xsk-bind') {
    advice = `the driver of ${ctx.ifname} does not support AF_XDP zero-copy: use copyMode: 'copy' (or 'auto')`;
  } else if ((code === 'EOPNOTSUPP' || code === 'EINVAL') && step === 'xdp-attach') {
    advice = `the driver of ${ctx.ifname} has no native XDP: use xdpMode: 'skb' (or 'auto')`;
  } else if (code === 'ENETDOWN' || code === 'ENXIO') {
    advice = `${ctx.ifname} is down: bring it up with \`ip link set ${ctx.ifname} up\``;
  } else if (code === 'EAFNOSUPPORT') {
    advice = step === 'xsk-socket' ? 'this kernel has no AF_XDP (CONFIG_XDP_SOCKETS): use mode: \'packet\'' : 'this kernel has no AF_PACKET';
  }
  return new SystemError(code, err.errno ?? 0, syscall, advice ? `${base}: ${advice}` : (err.message ?? base));
}
