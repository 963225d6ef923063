/*
 * doorbell.c — eventfd doorbells: create (non-blocking, close-on-exec), ring (add 1) and drain (read the counter
 * until empty). A peer waits on the fd with watch() (watcher.c).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

napi_value kb_eventfd(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return kb_throw_errno(env, errno, "eventfd");
  return kb_int32(env, fd);
}

napi_value kb_eventfd_signal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  const uint64_t one = 1;
  for (;;) {
    ssize_t n = write(fd, &one, sizeof one);
    if (n == (ssize_t)sizeof one) break;
    if (n < 0 && errno == EINTR) continue;
    /* EAGAIN: the counter is saturated, so the reader is woken anyway. */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return kb_throw_errno(env, n < 0 ? errno : EIO, "write");
  }
  return kb_undefined(env);
}

napi_value kb_eventfd_drain(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  double total = 0; /* a JS number: exact up to 2^53 */
  for (;;) {
    uint64_t value = 0;
    ssize_t n = read(fd, &value, sizeof value);
    if (n == (ssize_t)sizeof value) {
      total += (double)value;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return kb_throw_errno(env, n < 0 ? errno : EIO, "read");
  }
  return kb_double(env, total);
}
