/*
 * membarrier.c — membarrier(2): one process makes every running thread of the processes registered for it pass
 * a full memory barrier. It lets the side of a protocol that acts rarely pay for the ordering the frequent side
 * would otherwise pay on every operation (src/verbs/shm/arm-fence.ts: arming a CQ against its producers).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

/* membarrier(cmd) → the system call's result (for MEMBARRIER_CMD_QUERY, the mask of commands the kernel
 * supports); a failure throws with its errno (ENOSYS where the kernel or a seccomp filter lacks it). */
napi_value kb_membarrier(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t cmd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "cmd", &cmd)) return NULL;
  if (cmd < 0) return kb_throw_errno(env, EINVAL, "membarrier");
#ifdef __NR_membarrier
  long r = syscall(__NR_membarrier, cmd, 0, 0);
  if (r < 0) return kb_throw_errno(env, errno, "membarrier");
#else
  return kb_throw_errno(env, ENOSYS, "membarrier");
  long r = 0;
#endif
  napi_value out;
  KB_NAPI(env, napi_create_int32(env, (int32_t)r, &out));
  return out;
}
