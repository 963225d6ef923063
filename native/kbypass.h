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

napi_value kb_mmap_socket(napi_env env, napi_callback_info info);
napi_value kb_mmap_anon(napi_env env, napi_callback_info info);
napi_value kb_unmap_now(napi_env env, napi_callback_info info);

/* xdp.c */
napi_value kb_xsk_socket_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_umem_reg_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_ring_set_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_offsets_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_tx_budget_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_bind_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_stats_napi(napi_env env, napi_callback_info info);
napi_value kb_xsk_options_napi(napi_env env, napi_callback_info info);
napi_value kb_bpf_xskmap_create_napi(napi_env env, napi_callback_info info);
napi_value kb_xdp_prog_load_napi(napi_env env, napi_callback_info info);
napi_value kb_bpf_map_update_napi(napi_env env, napi_callback_info info);
napi_value kb_bpf_map_delete_napi(napi_env env, napi_callback_info info);
napi_value kb_xdp_link_create_napi(napi_env env, napi_callback_info info);
napi_value kb_send_kick(napi_env env, napi_callback_info info);
napi_value kb_recv_kick(napi_env env, napi_callback_info info);
napi_value kb_if_index(napi_env env, napi_callback_info info);

/* packet.c */
napi_value kb_packet_socket(napi_env env, napi_callback_info info);
napi_value kb_packet_set_int(napi_env env, napi_callback_info info);
napi_value kb_packet_ring(napi_env env, napi_callback_info info);
napi_value kb_packet_bind(napi_env env, napi_callback_info info);
napi_value kb_packet_stats(napi_env env, napi_callback_info info);
napi_value kb_packet_drop_all(napi_env env, napi_callback_info info);

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
