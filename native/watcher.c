/*
 * watcher.c — fd readiness on the Node event loop: a libuv uv_poll_t per watch() whose callback runs the JS
 * callback(status, events) through napi_make_callback (async context "kbypass:watch"), so async hooks see it and
 * a throw becomes an ordinary uncaught exception.
 *
 * Lifetime. The JS handle is a napi_external over a heap `struct watch`. While the poll is active the watcher
 * holds strong references to its callback and to its own handle, so it behaves like any libuv handle: it keeps
 * running (and keeps the loop alive unless unref'd) even if the caller drops the handle, until watchStop().
 * watchStop() (idempotent) stops the poll, releases the JS references and the async context, and uv_close()s the
 * handle. The struct is freed only when BOTH the uv close callback has run AND the external has been finalized,
 * whichever comes last, so neither can see freed memory. An environment cleanup hook stops watchers still active
 * when the environment is torn down (worker exit); their close callback may then run after the environment is
 * gone, so it touches no Node-API state, only memory.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

#define KB_WATCH_EVENTS (UV_READABLE | UV_WRITABLE | UV_DISCONNECT)

struct watch {
  uv_poll_t poll;             /* first, so the handle pointer is the struct pointer */
  napi_env env;
  napi_ref callback;          /* strong while active; NULL once released */
  napi_ref self;              /* strong reference to our own external while active */
  napi_async_context context; /* NULL once destroyed */
  bool stopped;               /* watchStop (or teardown) happened: the poll is closing or closed */
  bool closed;                /* uv close callback ran */
  bool finalized;             /* the external was collected */
  bool hook;                  /* env cleanup hook registered */
  int dispatching;            /* nesting depth of JS callbacks running now */
  bool release_pending;       /* stopped during a callback: release JS state once it returns */
};

/* Tags our externals so a foreign value can never be mistaken for a struct watch. */
static const napi_type_tag watch_tag = { 0x6b62797061737321ULL, 0x7761746368686e64ULL };

static void cleanup_hook(void *arg);

static void maybe_free(struct watch *w) {
  if (w->closed && w->finalized) free(w);
}

static void on_close(uv_handle_t *handle) {
  struct watch *w = (struct watch *)handle;
  w->closed = true;
  maybe_free(w);
}

/* Drop every JS-side resource. Must run on the JS thread with the environment alive. */
static void release_js(struct watch *w) {
  napi_env env = w->env;
  if (w->hook) {
    w->hook = false;
    napi_remove_env_cleanup_hook(env, cleanup_hook, w);
  }
  if (w->context != NULL) {
    napi_async_destroy(env, w->context);
    w->context = NULL;
  }
  if (w->callback != NULL) {
    napi_delete_reference(env, w->callback);
    w->callback = NULL;
  }
  if (w->self != NULL) {
    napi_delete_reference(env, w->self);
    w->self = NULL;
  }
}

/* Stop polling and close the handle; JS state is released now, or right after a running callback returns. */
static void stop(struct watch *w) {
  if (w->stopped) return;
  w->stopped = true;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_close);
  if (w->dispatching > 0) w->release_pending = true;
  else release_js(w);
}

static void cleanup_hook(void *arg) {
  struct watch *w = arg;
  w->hook = false; /* being run: already unregistered */
  stop(w);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  struct watch *w = (struct watch *)handle;
  if (w->stopped || w->callback == NULL) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  napi_value fn, recv, argv[2];
  w->dispatching++;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL &&
      napi_get_global(env, &recv) == napi_ok /* make_callback needs an object receiver */ &&
      napi_create_int32(env, status, &argv[0]) == napi_ok &&
      napi_create_int32(env, events, &argv[1]) == napi_ok) {
    napi_value result;
    napi_status s = napi_make_callback(env, w->context, recv, fn, 2, argv, &result);
    if (s == napi_pending_exception) {
      /* No JS frame to return the exception to: report it like Node does for its own callbacks. */
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  w->dispatching--;
  if (w->dispatching == 0 && w->release_pending) {
    w->release_pending = false;
    release_js(w);
  }
  napi_close_handle_scope(env, scope);
}

static void finalize_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct watch *w = data;
  /* Normally reachable only once `self` was released, i.e. after stop(). At environment teardown Node may
   * finalize everything first; the cleanup hook then still stops the handle, and on_close frees. */
  w->finalized = true;
  maybe_free(w);
}

/* The struct behind a handle argument, or NULL with a TypeError pending. */
static struct watch *get_watch(napi_env env, napi_value v) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok ||
      data == NULL) {
    kb_throw_type(env, "handle", "a watch handle");
    return NULL;
  }
  /* Externals from other addons would pass the checks above; the tag makes sure it is one of ours. */
  bool ours = false;
  if (napi_check_object_type_tag(env, v, &watch_tag, &ours) != napi_ok || !ours) {
    kb_throw_type(env, "handle", "a watch handle");
    return NULL;
  }
  return data;
}

napi_value kb_watch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, events;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "events", &events) || !kb_arg_function(env, argv[2], "callback")) {
    return NULL;
  }
  if ((events & ~KB_WATCH_EVENTS) != 0) return kb_throw_errno(env, EINVAL, "uv_poll_start"); /* libuv asserts */

  uv_loop_t *loop = NULL;
  KB_NAPI(env, napi_get_uv_event_loop(env, &loop));
  struct watch *w = calloc(1, sizeof *w);
  if (w == NULL) return kb_throw_errno(env, ENOMEM, "malloc");
  w->env = env;

  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    free(w); /* uv_poll_init registers nothing on failure */
    return kb_throw_errno(env, -rc, "uv_poll_init");
  }
  /* From here the uv handle exists: every failure path goes through stop(), which closes it. */
  w->closed = false;
  w->finalized = true; /* until the external exists, the close callback alone owns the struct */

  napi_value name, external;
  if (napi_create_string_utf8(env, "kbypass:watch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->context) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok) {
    kb_throw_napi(env, "watch setup");
    stop(w);
    return NULL;
  }
  if (napi_create_external(env, w, finalize_external, NULL, &external) != napi_ok) {
    kb_throw_napi(env, "napi_create_external");
    stop(w);
    return NULL;
  }
  w->finalized = false; /* the external's finalizer now co-owns the struct */
  if (napi_type_tag_object(env, external, &watch_tag) != napi_ok ||
      napi_create_reference(env, external, 1, &w->self) != napi_ok ||
      napi_add_env_cleanup_hook(env, cleanup_hook, w) != napi_ok) {
    kb_throw_napi(env, "watch setup");
    stop(w);
    return NULL;
  }
  w->hook = true;

  rc = uv_poll_start(&w->poll, events, on_poll);
  if (rc != 0) {
    stop(w);
    return kb_throw_errno(env, -rc, "uv_poll_start");
  }
  return external;
}

napi_value kb_watch_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t events;
  if (!kb_args(env, info, 2, argv)) return NULL;
  struct watch *w = get_watch(env, argv[0]);
  if (w == NULL || !kb_arg_int32(env, argv[1], "events", &events)) return NULL;
  if ((events & ~KB_WATCH_EVENTS) != 0) return kb_throw_errno(env, EINVAL, "uv_poll_start");
  if (w->stopped) return kb_throw_errno(env, EBADF, "uv_poll_start"); /* the handle is closed */
  int rc = uv_poll_start(&w->poll, events, on_poll);
  if (rc != 0) return kb_throw_errno(env, -rc, "uv_poll_start");
  return kb_undefined(env);
}

napi_value kb_watch_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool ref;
  if (!kb_args(env, info, 2, argv)) return NULL;
  struct watch *w = get_watch(env, argv[0]);
  if (w == NULL || !kb_arg_bool(env, argv[1], "ref", &ref)) return NULL;
  if (!w->stopped) {
    if (ref) uv_ref((uv_handle_t *)&w->poll);
    else uv_unref((uv_handle_t *)&w->poll);
  }
  return kb_undefined(env);
}

napi_value kb_watch_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!kb_args(env, info, 1, argv)) return NULL;
  struct watch *w = get_watch(env, argv[0]);
  if (w == NULL) return NULL;
  stop(w);
  return kb_undefined(env);
}
