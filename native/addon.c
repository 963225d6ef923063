/*
 * addon.c — module initialisation: registers every native entry point under the names of the ABI declared in
 * src/native/binding.ts. Context-aware (NAPI_MODULE_INIT), so it loads in worker threads too.
 */
#include <node_api.h>

#include "kbypass.h"

#define FN(name, impl) { name, NULL, impl, NULL, NULL, NULL, napi_enumerable, NULL }

NAPI_MODULE_INIT() {
  static const napi_property_descriptor props[] = {
    FN("memfdCreate", kb_memfd_create),
    FN("fdSize", kb_fd_size),
    FN("fdSeals", kb_fd_seals),
    FN("mmapShared", kb_mmap_shared),
    FN("close", kb_close),
    FN("dup", kb_dup),
    FN("memlockLimit", kb_memlock_limit),
    FN("mallocTune", kb_malloc_tune),
    FN("mmapSocket", kb_mmap_socket),
    FN("mmapAnon", kb_mmap_anon),
    FN("unmapNow", kb_unmap_now),
    FN("xskSocket", kb_xsk_socket_napi),
    FN("xskUmemReg", kb_xsk_umem_reg_napi),
    FN("xskRingSet", kb_xsk_ring_set_napi),
    FN("xskOffsets", kb_xsk_offsets_napi),
    FN("xskTxBudget", kb_xsk_tx_budget_napi),
    FN("xskBind", kb_xsk_bind_napi),
    FN("xskStats", kb_xsk_stats_napi),
    FN("xskOptions", kb_xsk_options_napi),
    FN("bpfXskmapCreate", kb_bpf_xskmap_create_napi),
    FN("xdpProgLoad", kb_xdp_prog_load_napi),
    FN("bpfMapUpdate", kb_bpf_map_update_napi),
    FN("bpfMapDelete", kb_bpf_map_delete_napi),
    FN("xdpLinkCreate", kb_xdp_link_create_napi),
    FN("sendKick", kb_send_kick),
    FN("recvKick", kb_recv_kick),
    FN("ifIndex", kb_if_index),
    FN("packetSocket", kb_packet_socket),
    FN("packetSetInt", kb_packet_set_int),
    FN("packetRing", kb_packet_ring),
    FN("packetBind", kb_packet_bind),
    FN("packetStats", kb_packet_stats),
    FN("packetDropAll", kb_packet_drop_all),
    FN("eventfd", kb_eventfd),
    FN("eventfdSignal", kb_eventfd_signal),
    FN("eventfdDrain", kb_eventfd_drain),
    FN("unixListen", kb_unix_listen),
    FN("unixAccept", kb_unix_accept),
    FN("unixConnect", kb_unix_connect),
    FN("peerCred", kb_peer_cred),
    FN("sendFds", kb_send_fds),
    FN("recvFds", kb_recv_fds),
    FN("peerAlive", kb_peer_alive),
    FN("shutdownWrite", kb_shutdown_write),
    FN("watch", kb_watch),
    FN("watchUpdate", kb_watch_update),
    FN("watchRef", kb_watch_ref),
    FN("watchStop", kb_watch_stop),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
