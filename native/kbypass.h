/*
 * kbypass.h — every native entry point, grouped by the file that implements it. addon.c registers them under
 * the names declared in src/native/binding.ts (the ABI contract).
 */
#ifndef KBYPASS_H
#define KBYPASS_H

#include <node_api.h>

/* region.c */
napi_value kb_memfd_create(napi_env env, napi_callback_info info);
napi_value kb_fd_size(napi_env env, napi_callback_info info);
napi_value kb_fd_seals(napi_env env, napi_callback_info info);
napi_value kb_mmap_shared(napi_env env, napi_callback_info info);
napi_value kb_close(napi_env env, napi_callback_info info);
napi_value kb_dup(napi_env env, napi_callback_info info);
napi_value kb_memlock_limit(napi_env env, napi_callback_info info);
napi_value kb_malloc_tune(napi_env env, napi_callback_info info);

/* doorbell.c */
napi_value kb_eventfd(napi_env env, napi_callback_info info);
napi_value kb_eventfd_signal(napi_env env, napi_callback_info info);
napi_value kb_eventfd_drain(napi_env env, napi_callback_info info);

/* unixsock.c */
napi_value kb_unix_listen(napi_env env, napi_callback_info info);
napi_value kb_unix_accept(napi_env env, napi_callback_info info);
napi_value kb_unix_connect(napi_env env, napi_callback_info info);
napi_value kb_peer_cred(napi_env env, napi_callback_info info);
napi_value kb_send_fds(napi_env env, napi_callback_info info);
napi_value kb_recv_fds(napi_env env, napi_callback_info info);
napi_value kb_peer_alive(napi_env env, napi_callback_info info);
napi_value kb_shutdown_write(napi_env env, napi_callback_info info);

/* watcher.c */
napi_value kb_watch(napi_env env, napi_callback_info info);
napi_value kb_watch_update(napi_env env, napi_callback_info info);
napi_value kb_watch_ref(napi_env env, napi_callback_info info);
napi_value kb_watch_stop(napi_env env, napi_callback_info info);

#endif
