/*
 * args.c — type-checked argument extraction and small result builders (see args.h).
 */
#include "args.h"

#include <errno.h>
#include <stdlib.h>

#include "errors.h"

bool kb_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (want > KB_MAX_ARGS || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    kb_throw_napi(env, "napi_get_cb_info");
    return false;
  }
  return true; /* Node-API fills missing arguments with undefined */
}

bool kb_arg_int32(napi_env env, napi_value v, const char *name, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    kb_throw_type(env, name, "of type number");
    return false;
  }
  return true;
}

bool kb_arg_int64(napi_env env, napi_value v, const char *name, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    kb_throw_type(env, name, "of type number");
    return false;
  }
  return true;
}

bool kb_arg_bool(napi_env env, napi_value v, const char *name, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    kb_throw_type(env, name, "of type boolean");
    return false;
  }
  return true;
}

bool kb_arg_string(napi_env env, napi_value v, const char *name, char **out, size_t *len) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    kb_throw_type(env, name, "of type string");
    return false;
  }
  char *buf = malloc(n + 1);
  if (buf == NULL) {
    kb_throw_errno(env, ENOMEM, "malloc");
    return false;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, buf, n + 1, &copied) != napi_ok) {
    free(buf);
    kb_throw_type(env, name, "of type string");
    return false;
  }
  *out = buf;
  *len = copied;
  return true;
}

bool kb_arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type type, const char *expected,
                  void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type actual;
  size_t n = 0;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &actual, &n, &p, NULL, NULL) != napi_ok || actual != type) {
    kb_throw_type(env, name, expected);
    return false;
  }
  *data = p;
  *length = p == NULL ? 0 : n;
  return true;
}

bool kb_arg_function(napi_env env, napi_value v, const char *name) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) {
    kb_throw_type(env, name, "of type function");
    return false;
  }
  return true;
}

napi_value kb_int32(napi_env env, int32_t v) {
  napi_value r = NULL;
  if (napi_create_int32(env, v, &r) != napi_ok) return kb_throw_napi(env, "napi_create_int32");
  return r;
}

napi_value kb_double(napi_env env, double v) {
  napi_value r = NULL;
  if (napi_create_double(env, v, &r) != napi_ok) return kb_throw_napi(env, "napi_create_double");
  return r;
}

napi_value kb_bool(napi_env env, bool v) {
  napi_value r = NULL;
  if (napi_get_boolean(env, v, &r) != napi_ok) return kb_throw_napi(env, "napi_get_boolean");
  return r;
}

napi_value kb_undefined(napi_env env) {
  napi_value r = NULL;
  if (napi_get_undefined(env, &r) != napi_ok) return kb_throw_napi(env, "napi_get_undefined");
  return r;
}

bool kb_args_fd_f64(napi_env env, napi_callback_info info, size_t min, int32_t *fd, double **out) {
  napi_value argv[2];
  void *data = NULL;
  size_t n = 0;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int32(env, argv[0], "fd", fd) ||
      !kb_arg_typed(env, argv[1], "out", napi_float64_array, "a Float64Array", &data, &n)) {
    return false;
  }
  if (n < min || data == NULL) {
    kb_throw_range(env, "out is too short");
    return false;
  }
  *out = data;
  return true;
}
