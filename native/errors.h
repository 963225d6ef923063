/*
 * errors.h — how the native core reports failures to JavaScript.
 *
 * System call failures become an Error shaped like Node's own system errors:
 *   message "memfd_create failed: EACCES (Permission denied)", code "EACCES", errno -13, syscall "memfd_create".
 * Wrong argument types (the TypeScript layer validates first, so this only guards against misuse) become a
 * TypeError with code ERR_INVALID_ARG_TYPE.
 *
 * Every kb_throw_* returns NULL so callers can `return kb_throw_errno(...)` from a napi_callback.
 * None of them throws a second exception if one is already pending.
 */
#ifndef KBYPASS_ERRORS_H
#define KBYPASS_ERRORS_H

#include <node_api.h>

/* The errno's symbolic name ("EACCES"), or NULL if it is not in the table. */
const char *kb_errno_name(int err);

/* Throw a system error for positive errno `err` from `syscall`. Returns NULL. */
napi_value kb_throw_errno(napi_env env, int err, const char *syscall);

/* Throw a TypeError with code ERR_INVALID_ARG_TYPE: `The "<name>" argument must be <expected>`. Returns NULL. */
napi_value kb_throw_type(napi_env env, const char *name, const char *expected);

/* Throw a RangeError with code ERR_OUT_OF_RANGE and the given message. Returns NULL. */
napi_value kb_throw_range(napi_env env, const char *message);

/* Throw a plain Error with code ERR_KBYPASS_NATIVE for a Node-API call that failed unexpectedly. Returns NULL.
 * If the failed call left an exception pending, that one is kept instead. */
napi_value kb_throw_napi(napi_env env, const char *what);

/* Evaluate a Node-API call; on failure throw (unless something is pending) and return NULL from the caller. */
#define KB_NAPI(env, call)                                  \
  do {                                                      \
    if ((call) != napi_ok) return kb_throw_napi((env), #call); \
  } while (0)

#endif
