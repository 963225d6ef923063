/*
 * xsk.h — AF_XDP and BPF set-up in plain C (no Node-API), shared by the addon (xdp.c) and the C floor
 * (floor/xdp-floor.c), so both measure exactly the same socket, rings and program.
 *
 * Every function returns a non-negative result (an fd, or 0) or a negative errno; kb_xsk_syscall() names the
 * system call that failed last on this thread.
 */
#ifndef KBYPASS_XSK_H
#define KBYPASS_XSK_H

#include <linux/if_xdp.h>
#include <stddef.h>
#include <stdint.h>

/* The XDP programs kb_xdp_prog_load builds (hand-assembled instructions; no compiler at run time). */
enum kb_xdp_prog {
  KB_XDP_PROG_REDIRECT = 0, /* bpf_redirect_map(xskmap, rx_queue_index, XDP_PASS): a queue with no socket passes */
  KB_XDP_PROG_DROP = 1,     /* XDP_DROP everything (a sink for benchmarks; gives veth its NAPI) */
  KB_XDP_PROG_PASS = 2,     /* XDP_PASS everything (gives veth its NAPI, changes nothing else) */
  KB_XDP_PROG_REDIRECT_IF = 3, /* bpf_redirect(arg = ifindex, 0): the traffic generator's program (xdp-floor.c gen) */
};

/* The ring ids used by kb_xsk_ring_* and the ABI (binding.ts XSK_RING_*). */
enum kb_xsk_ring { KB_XSK_RX = 0, KB_XSK_TX = 1, KB_XSK_FILL = 2, KB_XSK_COMP = 3 };

const char *kb_xsk_syscall(void);

/* socket(AF_XDP, SOCK_RAW|SOCK_CLOEXEC, 0) */
int kb_xsk_socket(void);
/* setsockopt XDP_UMEM_REG */
int kb_xsk_umem_reg(int fd, void *addr, uint64_t len, uint32_t chunk_size, uint32_t headroom);
/* setsockopt XDP_{RX,TX}_RING / XDP_UMEM_{FILL,COMPLETION}_RING with `entries` (a power of two) */
int kb_xsk_ring_set(int fd, int ring, uint32_t entries);
/* setsockopt XDP_MAX_TX_SKB_BUDGET (Linux ≥ 6.17): frames one copy-mode sendto() may send, 32 to the TX ring's
 * size (32 before). Returns 0, or -ENOPROTOOPT on an older kernel (nothing to do), or another negative errno. */
int kb_xsk_tx_budget(int fd, uint32_t budget);
/* getsockopt XDP_MMAP_OFFSETS */
int kb_xsk_offsets(int fd, struct xdp_mmap_offsets *off);
/* The mmap length and page offset of one ring with `entries` entries. */
size_t kb_xsk_ring_bytes(const struct xdp_mmap_offsets *off, int ring, uint32_t entries);
uint64_t kb_xsk_ring_pgoff(int ring);
/* bind(sockaddr_xdp{ifindex, queue, flags, shared_fd}) */
int kb_xsk_bind(int fd, uint32_t ifindex, uint32_t queue, uint16_t flags, int shared_fd);
/* getsockopt XDP_STATISTICS into six u64 (zero-filled when the kernel reports fewer); returns how many it gave */
int kb_xsk_stats(int fd, uint64_t out[6]);
/* getsockopt XDP_OPTIONS: XDP_OPTIONS_ZEROCOPY when zero-copy is in effect */
int kb_xsk_options(int fd);

/* bpf(BPF_MAP_CREATE, XSKMAP, key u32, value u32, max_entries) */
int kb_bpf_xskmap_create(uint32_t max_entries);
/* bpf(BPF_PROG_LOAD, XDP, one of enum kb_xdp_prog; `arg` is the XSKMAP fd for REDIRECT, the ifindex for
 * REDIRECT_IF). On failure the verifier's log (if any) is left in `log` (NUL-terminated). */
int kb_xdp_prog_load(int kind, int arg, char *log, size_t log_size);
/* bpf(BPF_PROG_TEST_RUN) with BPF_F_TEST_XDP_LIVE_FRAMES: runs the program `repeat` times on copies of `frame`,
 * and what it redirects is really transmitted (xdp-trafficgen's method: no skb, no socket). */
int kb_xdp_run_live(int prog_fd, const void *frame, uint32_t len, uint32_t repeat, uint32_t batch);
/* bpf(BPF_MAP_UPDATE_ELEM, map[key] = value) and bpf(BPF_MAP_DELETE_ELEM) for u32 keys and values */
int kb_bpf_map_update_u32(int map_fd, uint32_t key, uint32_t value);
int kb_bpf_map_delete_u32(int map_fd, uint32_t key);
/* bpf(BPF_LINK_CREATE, prog on ifindex, attach BPF_XDP, flags XDP_FLAGS_SKB_MODE / XDP_FLAGS_DRV_MODE):
 * the program stays attached while the returned link fd is open (and is detached when the process dies). */
int kb_xdp_link_create(int prog_fd, uint32_t ifindex, uint32_t flags);

#endif
