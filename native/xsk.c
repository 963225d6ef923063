/*
 * xsk.c — AF_XDP sockets and the BPF calls they need, in plain C (see xsk.h). The XDP programs are a few
 * hand-assembled instructions (the redirect program is the one libbpf built in before it moved to libxdp).
 */
#include "xsk.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

static __thread const char *last_call = "";

const char *kb_xsk_syscall(void) { return last_call; }

static int fail(const char *call) {
  last_call = call;
  return -errno;
}

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

int kb_xsk_socket(void) {
  int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  return fd < 0 ? fail("socket") : fd;
}

int kb_xsk_umem_reg(int fd, void *addr, uint64_t len, uint32_t chunk_size, uint32_t headroom) {
  struct xdp_umem_reg reg;
  memset(&reg, 0, sizeof reg); /* padding and tx_metadata_len must be zero */
  reg.addr = (uint64_t)(uintptr_t)addr;
  reg.len = len;
  reg.chunk_size = chunk_size;
  reg.headroom = headroom;
  return setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) != 0 ? fail("setsockopt") : 0;
}

static const int ring_opt[4] = { XDP_RX_RING, XDP_TX_RING, XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING };

int kb_xsk_ring_set(int fd, int ring, uint32_t entries) {
  if (ring < 0 || ring > 3) {
    errno = EINVAL;
    return fail("setsockopt");
  }
  int n = (int)entries;
  return setsockopt(fd, SOL_XDP, ring_opt[ring], &n, sizeof n) != 0 ? fail("setsockopt") : 0;
}

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

int kb_xsk_tx_budget(int fd, uint32_t budget) {
  unsigned int b = budget;
  return setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &b, sizeof b) != 0 ? fail("setsockopt") : 0;
}

int kb_xsk_offsets(int fd, struct xdp_mmap_offsets *off) {
  socklen_t len = sizeof *off;
  memset(off, 0, sizeof *off);
  if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, off, &len) != 0) return fail("getsockopt");
  if (len != sizeof *off) { /* kernels before 5.4 had no flags field: we need it (need_wakeup) */
    errno = EOPNOTSUPP;
    return fail("getsockopt");
  }
  return 0;
}

static const struct xdp_ring_offset *ring_off(const struct xdp_mmap_offsets *off, int ring) {
  switch (ring) {
    case KB_XSK_RX: return &off->rx;
    case KB_XSK_TX: return &off->tx;
    case KB_XSK_FILL: return &off->fr;
    default: return &off->cr;
  }
}

size_t kb_xsk_ring_bytes(const struct xdp_mmap_offsets *off, int ring, uint32_t entries) {
  size_t entry = (ring == KB_XSK_RX || ring == KB_XSK_TX) ? sizeof(struct xdp_desc) : sizeof(uint64_t);
  return (size_t)ring_off(off, ring)->desc + (size_t)entries * entry;
}

uint64_t kb_xsk_ring_pgoff(int ring) {
  switch (ring) {
    case KB_XSK_RX: return XDP_PGOFF_RX_RING;
    case KB_XSK_TX: return XDP_PGOFF_TX_RING;
    case KB_XSK_FILL: return XDP_UMEM_PGOFF_FILL_RING;
    default: return XDP_UMEM_PGOFF_COMPLETION_RING;
  }
}

int kb_xsk_bind(int fd, uint32_t ifindex, uint32_t queue, uint16_t flags, int shared_fd) {
  struct sockaddr_xdp sxdp;
  memset(&sxdp, 0, sizeof sxdp);
  sxdp.sxdp_family = AF_XDP;
  sxdp.sxdp_flags = flags;
  sxdp.sxdp_ifindex = ifindex;
  sxdp.sxdp_queue_id = queue;
  sxdp.sxdp_shared_umem_fd = shared_fd < 0 ? 0 : (uint32_t)shared_fd;
  return bind(fd, (struct sockaddr *)&sxdp, sizeof sxdp) != 0 ? fail("bind") : 0;
}

int kb_xsk_stats(int fd, uint64_t out[6]) {
  struct xdp_statistics st;
  memset(&st, 0, sizeof st);
  socklen_t len = sizeof st;
  if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &len) != 0) return fail("getsockopt");
  out[0] = st.rx_dropped;
  out[1] = st.rx_invalid_descs;
  out[2] = st.tx_invalid_descs;
  out[3] = st.rx_ring_full;
  out[4] = st.rx_fill_ring_empty_descs;
  out[5] = st.tx_ring_empty_descs;
  return (int)(len / sizeof(uint64_t));
}

int kb_xsk_options(int fd) {
  struct xdp_options opts;
  memset(&opts, 0, sizeof opts);
  socklen_t len = sizeof opts;
  if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len) != 0) return fail("getsockopt");
  return (int)opts.flags;
}

int kb_bpf_xskmap_create(uint32_t max_entries) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_XSKMAP;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = max_entries;
  strncpy(attr.map_name, "kbypass_xsks", sizeof attr.map_name - 1);
  int fd = (int)sys_bpf(BPF_MAP_CREATE, &attr);
  return fd < 0 ? fail("bpf") : fd;
}

/* One instruction, as struct bpf_insn lays it out. */
static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  struct bpf_insn i;
  memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

int kb_xdp_prog_load(int kind, int arg, char *log, size_t log_size) {
  struct bpf_insn prog[8];
  unsigned n = 0;
  if (log != NULL && log_size > 0) log[0] = '\0';
  if (kind == KB_XDP_PROG_REDIRECT) {
    /* r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index)) */
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 16, 0);
    /* r1 = map (ld_imm64 with BPF_PSEUDO_MAP_FD: two instructions) */
    prog[n++] = insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, arg);
    prog[n++] = insn(0, 0, 0, 0, 0);
    /* r3 = XDP_PASS: the action when the queue has no socket in the map */
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS);
    prog[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  } else if (kind == KB_XDP_PROG_DROP || kind == KB_XDP_PROG_PASS) {
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, kind == KB_XDP_PROG_DROP ? XDP_DROP : XDP_PASS);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  } else if (kind == KB_XDP_PROG_REDIRECT_IF) {
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, arg); /* ifindex */
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 0);   /* flags */
    prog[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  } else {
    errno = EINVAL;
    return fail("bpf");
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_XDP;
  attr.insns = (uint64_t)(uintptr_t)prog;
  attr.insn_cnt = n;
  attr.license = (uint64_t)(uintptr_t)"GPL";
  attr.expected_attach_type = BPF_XDP;
  strncpy(attr.prog_name, kind == KB_XDP_PROG_REDIRECT ? "kbypass_xsk" : kind == KB_XDP_PROG_DROP ? "kbypass_drop"
          : kind == KB_XDP_PROG_PASS ? "kbypass_pass" : "kbypass_gen",
          sizeof attr.prog_name - 1);
  if (log != NULL && log_size > 0) log[0] = '\0';
  int fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd >= 0) return fd;
  int err = errno;
  if (log != NULL && log_size > 1 && err != EPERM) { /* load again to get the verifier's reason */
    attr.log_level = 1;
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = (uint32_t)log_size;
    int again = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    if (again >= 0) return again;
    log[log_size - 1] = '\0';
  }
  errno = err;
  return fail("bpf");
}

int kb_bpf_map_update_u32(int map_fd, uint32_t key, uint32_t value) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_fd = (uint32_t)map_fd;
  attr.key = (uint64_t)(uintptr_t)&key;
  attr.value = (uint64_t)(uintptr_t)&value;
  attr.flags = BPF_ANY;
  return sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) != 0 ? fail("bpf") : 0;
}

int kb_bpf_map_delete_u32(int map_fd, uint32_t key) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_fd = (uint32_t)map_fd;
  attr.key = (uint64_t)(uintptr_t)&key;
  return sys_bpf(BPF_MAP_DELETE_ELEM, &attr) != 0 ? fail("bpf") : 0;
}

int kb_xdp_link_create(int prog_fd, uint32_t ifindex, uint32_t flags) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.link_create.prog_fd = (uint32_t)prog_fd;
  attr.link_create.target_ifindex = ifindex;
  attr.link_create.attach_type = BPF_XDP;
  attr.link_create.flags = flags;
  int fd = (int)sys_bpf(BPF_LINK_CREATE, &attr);
  return fd < 0 ? fail("bpf") : fd;
}

int kb_xdp_run_live(int prog_fd, const void *frame, uint32_t len, uint32_t repeat, uint32_t batch) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.test.prog_fd = (uint32_t)prog_fd;
  attr.test.data_in = (uint64_t)(uintptr_t)frame;
  attr.test.data_size_in = len;
  attr.test.repeat = repeat;
  attr.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
  attr.test.batch_size = batch;
  return sys_bpf(BPF_PROG_TEST_RUN, &attr) != 0 ? fail("bpf") : 0;
}
