/*
 * errors.c — errno → name table and the Error / TypeError / RangeError builders used by every native entry point
 * (see errors.h for the shape of what is thrown).
 */
#include "errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct errno_name {
  int value;
  const char *name;
};

#define E(x) { x, #x },
/* Where two names share a number (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP, EDEADLK/EDEADLOCK) the first listed
 * wins, matching what libuv/Node report. */
static const struct errno_name errno_names[] = {
  E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD)
  E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(ENOTBLK) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
  E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS)
  E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ENOTEMPTY)
  E(ELOOP) E(ENOMSG) E(EIDRM) E(ENOSTR) E(ENODATA) E(ETIME) E(ENOSR) E(ENOLINK) E(EPROTO) E(EBADMSG)
  E(EOVERFLOW) E(EILSEQ) E(EUSERS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT)
  E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(ENOTSUP) E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE)
  E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENETRESET) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS)
  E(EISCONN) E(ENOTCONN) E(ESHUTDOWN) E(ETOOMANYREFS) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN)
  E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS) E(ESTALE) E(EDQUOT) E(ECANCELED) E(EOWNERDEAD)
  E(ENOTRECOVERABLE) E(ENOKEY) E(EKEYEXPIRED) E(EKEYREVOKED) E(EKEYREJECTED) E(ERFKILL) E(EHWPOISON)
  E(EOPNOTSUPP) E(EWOULDBLOCK) E(EDEADLOCK)
};
#undef E

const char *kb_errno_name(int err) {
  for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++) {
    if (errno_names[i].value == err) return errno_names[i].name;
  }
  return NULL;
}

static bool pending(napi_env env) {
  bool is_pending = false;
  if (napi_is_exception_pending(env, &is_pending) != napi_ok) return true; /* cannot tell: do not pile on */
  return is_pending;
}

static napi_value make_string(napi_env env, const char *s) {
  napi_value v = NULL;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

/* Set error.code = code and throw it. */
static void throw_with_code(napi_env env, napi_value error, const char *code) {
  napi_value code_v = make_string(env, code);
  if (code_v != NULL) napi_set_named_property(env, error, "code", code_v);
  napi_throw(env, error);
}

napi_value kb_throw_errno(napi_env env, int err, const char *syscall) {
  if (pending(env)) return NULL;
  char code_buf[24];
  const char *code = kb_errno_name(err);
  if (code == NULL) {
    snprintf(code_buf, sizeof code_buf, "E%d", err);
    code = code_buf;
  }
  char desc_buf[128];
  const char *desc = strerror_r(err, desc_buf, sizeof desc_buf); /* GNU variant: returns the string */
  char message[256];
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall, code, desc ? desc : "unknown error");

  napi_value msg_v = make_string(env, message);
  napi_value error = NULL;
  if (msg_v == NULL || napi_create_error(env, NULL, msg_v, &error) != napi_ok) {
    napi_throw_error(env, code, message); /* last resort: still carries the code */
    return NULL;
  }
  napi_value errno_v = NULL;
  if (napi_create_int32(env, -err, &errno_v) == napi_ok) napi_set_named_property(env, error, "errno", errno_v);
  napi_value syscall_v = make_string(env, syscall);
  if (syscall_v != NULL) napi_set_named_property(env, error, "syscall", syscall_v);
  throw_with_code(env, error, code);
  return NULL;
}

napi_value kb_throw_type(napi_env env, const char *name, const char *expected) {
  if (pending(env)) return NULL;
  char message[256];
  snprintf(message, sizeof message, "The \"%s\" argument must be %s", name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

napi_value kb_throw_range(napi_env env, const char *message) {
  if (pending(env)) return NULL;
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  return NULL;
}

napi_value kb_throw_napi(napi_env env, const char *what) {
  /* Read the failed call's error info first: any later Node-API call resets it. */
  const napi_extended_error_info *info = NULL;
  char message[512];
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL && info->error_message != NULL) {
    snprintf(message, sizeof message, "kbypass native: %s failed: %s", what, info->error_message);
  } else {
    snprintf(message, sizeof message, "kbypass native: %s failed", what);
  }
  if (pending(env)) return NULL;
  napi_throw_error(env, "ERR_KBYPASS_NATIVE", message);
  return NULL;
}
