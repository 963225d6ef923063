/*
 * args.h — argument extraction for the native entry points.
 *
 * The TypeScript layer validates every argument before calling in, so these only make sure a wrong type can
 * never crash the process: each helper either stores the value and returns true, or throws a TypeError with
 * code ERR_INVALID_ARG_TYPE and returns false.
 */
#ifndef KBYPASS_ARGS_H
#define KBYPASS_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KB_MAX_ARGS 8

/* Fetch up to KB_MAX_ARGS arguments; missing ones are `undefined`. Returns false (exception pending) on failure. */
bool kb_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);

bool kb_arg_int32(napi_env env, napi_value v, const char *name, int32_t *out);
bool kb_arg_int64(napi_env env, napi_value v, const char *name, int64_t *out);
bool kb_arg_bool(napi_env env, napi_value v, const char *name, bool *out);
/* A string as a malloc'd UTF-8 buffer (NUL-terminated; *len excludes the NUL and may include embedded NULs).
 * The caller frees it. */
bool kb_arg_string(napi_env env, napi_value v, const char *name, char **out, size_t *len);
/* A typed array of exactly the given type; *data may be NULL when *length is 0 (e.g. detached). */
bool kb_arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type type, const char *expected,
                  void **data, size_t *length);
/* The common (fd, out: Float64Array of at least `min` numbers) pair of the statistics/offsets calls. */
bool kb_args_fd_f64(napi_env env, napi_callback_info info, size_t min, int32_t *fd, double **out);
bool kb_arg_function(napi_env env, napi_value v, const char *name);

/* Small result builders (NULL with an exception pending on failure). */
napi_value kb_int32(napi_env env, int32_t v);
napi_value kb_double(napi_env env, double v);
napi_value kb_bool(napi_env env, bool v);
napi_value kb_undefined(napi_env env);

#endif
