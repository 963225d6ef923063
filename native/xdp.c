/*
 * xdp.c — the Node-API face of xsk.c: AF_XDP sockets, the UMEM registration, the XSKMAP, the XDP program and
 * its link, statistics, and the two wake-up calls of the data path (sendKick, recvKick), which run once per
 * batch, never per frame. Also the interface name/index look-ups every packet port needs.
 */
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"
#include "xsk.h"

/* Throw the errno of a failed xsk.c call (rc < 0) under the system call it names. */
static napi_value throw_xsk(napi_env env, int rc) { return kb_throw_errno(env, -rc, kb_xsk_syscall()); }

napi_value kb_xsk_socket_napi(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = kb_xsk_socket();
  return fd < 0 ? throw_xsk(env, fd) : kb_int32(env, fd);
}

/* xskUmemReg(fd, umem: ArrayBuffer, chunkSize, headroom) */
napi_value kb_xsk_umem_reg_napi(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, chunk, headroom;
  if (!kb_args(env, info, 4, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[2], "chunkSize", &chunk) || !kb_arg_int32(env, argv[3], "headroom", &headroom)) {
    return NULL;
  }
  bool is_ab = false;
  void *data = NULL;
  size_t len = 0;
  if (napi_is_arraybuffer(env, argv[1], &is_ab) != napi_ok || !is_ab ||
      napi_get_arraybuffer_info(env, argv[1], &data, &len) != napi_ok || data == NULL || len == 0) {
    return kb_throw_type(env, "umem", "an ArrayBuffer");
  }
  if (chunk <= 0 || headroom < 0) return kb_throw_errno(env, EINVAL, "setsockopt");
  int rc = kb_xsk_umem_reg(fd, data, (uint64_t)len, (uint32_t)chunk, (uint32_t)headroom);
  return rc < 0 ? throw_xsk(env, rc) : kb_undefined(env);
}

/* xskRingSet(fd, ring, entries) */
napi_value kb_xsk_ring_set_napi(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, ring, entries;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "ring", &ring) || !kb_arg_int32(env, argv[2], "entries", &entries)) {
    return NULL;
  }
  if (entries <= 0) return kb_throw_errno(env, EINVAL, "setsockopt");
  int rc = kb_xsk_ring_set(fd, ring, (uint32_t)entries);
  return rc < 0 ? throw_xsk(env, rc) : kb_undefined(env);
}

/* xskTxBudget(fd, budget) → true when set, false when the kernel has no such option (before 6.17) */
napi_value kb_xsk_tx_budget_napi(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, budget;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "budget", &budget)) {
    return NULL;
  }
  if (budget <= 0) return kb_throw_errno(env, EINVAL, "setsockopt");
  int rc = kb_xsk_tx_budget(fd, (uint32_t)budget);
  if (rc == -ENOPROTOOPT) return kb_bool(env, false);
  return rc < 0 ? throw_xsk(env, rc) : kb_bool(env, true);
}

/* xskOffsets(fd, out: Float64Array(16)): producer, consumer, desc, flags of RX, TX, FILL, COMPLETION. */
napi_value kb_xsk_offsets_napi(napi_env env, napi_callback_info info) {
  int32_t fd;
  double *o;
  if (!kb_args_fd_f64(env, info, 16, &fd, &o)) return NULL;
  struct xdp_mmap_offsets off;
  int rc = kb_xsk_offsets(fd, &off);
  if (rc < 0) return throw_xsk(env, rc);
  const struct xdp_ring_offset *r[4] = { &off.rx, &off.tx, &off.fr, &off.cr };
  for (int i = 0; i < 4; i++) {
    o[i * 4 + 0] = (double)r[i]->producer;
    o[i * 4 + 1] = (double)r[i]->consumer;
    o[i * 4 + 2] = (double)r[i]->desc;
    o[i * 4 + 3] = (double)r[i]->flags;
  }
  return kb_undefined(env);
}

/* xskBind(fd, ifindex, queue, flags, sharedFd) */
napi_value kb_xsk_bind_napi(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t fd, ifindex, queue, flags, shared;
  if (!kb_args(env, info, 5, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "ifindex", &ifindex) || !kb_arg_int32(env, argv[2], "queue", &queue) ||
      !kb_arg_int32(env, argv[3], "flags", &flags) || !kb_arg_int32(env, argv[4], "sharedFd", &shared)) {
    return NULL;
  }
  if (ifindex <= 0 || queue < 0 || flags < 0 || flags > 0xffff) return kb_throw_errno(env, EINVAL, "bind");
  int rc = kb_xsk_bind(fd, (uint32_t)ifindex, (uint32_t)queue, (uint16_t)flags, shared);
  return rc < 0 ? throw_xsk(env, rc) : kb_undefined(env);
}

/* xskStats(fd, out: Float64Array(6)) → how many counters the kernel gave */
napi_value kb_xsk_stats_napi(napi_env env, napi_callback_info info) {
  int32_t fd;
  double *o;
  if (!kb_args_fd_f64(env, info, 6, &fd, &o)) return NULL;
  uint64_t st[6];
  int rc = kb_xsk_stats(fd, st);
  if (rc < 0) return throw_xsk(env, rc);
  for (int i = 0; i < 6; i++) o[i] = (double)st[i];
  return kb_int32(env, rc);
}

napi_value kb_xsk_options_napi(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  int rc = kb_xsk_options(fd);
  return rc < 0 ? throw_xsk(env, rc) : kb_int32(env, rc);
}

napi_value kb_bpf_xskmap_create_napi(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t max;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "maxEntries", &max)) return NULL;
  if (max <= 0) return kb_throw_errno(env, EINVAL, "bpf");
  int fd = kb_bpf_xskmap_create((uint32_t)max);
  return fd < 0 ? throw_xsk(env, fd) : kb_int32(env, fd);
}

/* xdpProgLoad(kind, mapFd) → prog fd. A verifier rejection carries the verifier's log in the message. */
napi_value kb_xdp_prog_load_napi(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t kind, map_fd;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int32(env, argv[0], "kind", &kind) ||
      !kb_arg_int32(env, argv[1], "mapFd", &map_fd)) {
    return NULL;
  }
  char log[4096];
  int fd = kb_xdp_prog_load(kind, map_fd, log, sizeof log);
  if (fd >= 0) return kb_int32(env, fd);
  if (log[0] == '\0') return throw_xsk(env, fd);
  /* Rare (the program is fixed): report the log as the message, keeping the errno code. */
  const char *name = kb_errno_name(-fd);
  napi_value code, msg, err, sys, errnum;
  char text[4200];
  snprintf(text, sizeof text, "bpf(BPF_PROG_LOAD) failed: %s; verifier log:\n%s", name ? name : "EINVAL", log);
  KB_NAPI(env, napi_create_string_utf8(env, name ? name : "EINVAL", NAPI_AUTO_LENGTH, &code));
  KB_NAPI(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg));
  KB_NAPI(env, napi_create_error(env, code, msg, &err));
  KB_NAPI(env, napi_create_string_utf8(env, "bpf", NAPI_AUTO_LENGTH, &sys));
  KB_NAPI(env, napi_create_int32(env, fd, &errnum));
  KB_NAPI(env, napi_set_named_property(env, err, "syscall", sys));
  KB_NAPI(env, napi_set_named_property(env, err, "errno", errnum));
  napi_throw(env, err);
  return NULL;
}

/* bpfMapUpdate(mapFd, key, value) / bpfMapDelete(mapFd, key) for u32 keys and values */
napi_value kb_bpf_map_update_napi(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t map_fd, key, value;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "mapFd", &map_fd) ||
      !kb_arg_int32(env, argv[1], "key", &key) || !kb_arg_int32(env, argv[2], "value", &value)) {
    return NULL;
  }
  int rc = kb_bpf_map_update_u32(map_fd, (uint32_t)key, (uint32_t)value);
  return rc < 0 ? throw_xsk(env, rc) : kb_undefined(env);
}

napi_value kb_bpf_map_delete_napi(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t map_fd, key;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int32(env, argv[0], "mapFd", &map_fd) ||
      !kb_arg_int32(env, argv[1], "key", &key)) {
    return NULL;
  }
  int rc = kb_bpf_map_delete_u32(map_fd, (uint32_t)key);
  return rc < 0 ? throw_xsk(env, rc) : kb_undefined(env);
}

/* xdpLinkCreate(progFd, ifindex, flags) → link fd */
napi_value kb_xdp_link_create_napi(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t prog_fd, ifindex, flags;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "progFd", &prog_fd) ||
      !kb_arg_int32(env, argv[1], "ifindex", &ifindex) || !kb_arg_int32(env, argv[2], "flags", &flags)) {
    return NULL;
  }
  if (ifindex <= 0 || flags < 0) return kb_throw_errno(env, EINVAL, "bpf");
  int fd = kb_xdp_link_create(prog_fd, (uint32_t)ifindex, (uint32_t)flags);
  return fd < 0 ? throw_xsk(env, fd) : kb_int32(env, fd);
}

/* sendKick(fd): sendto(fd, NULL, 0, MSG_DONTWAIT) — starts transmission of what a TX ring holds (AF_XDP copy
 * mode, AF_PACKET TX ring). Returns the result or a negative errno; never throws for a bad fd either, since this
 * is the data path: the caller maps the errno (EAGAIN/EBUSY/ENOBUFS: try again; ENETDOWN, ENXIO: link gone). */
napi_value kb_send_kick(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  ssize_t rc;
  do rc = sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return kb_int32(env, -errno);
  return kb_int32(env, rc > INT32_MAX ? INT32_MAX : (int32_t)rc); /* a byte count: only its sign matters */
}

/* recvKick(fd): recvfrom(fd, NULL, 0, MSG_DONTWAIT) — wakes an AF_XDP socket's receive side (need_wakeup on
 * the fill ring, busy polling). Returns 0 or a negative errno. */
napi_value kb_recv_kick(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  ssize_t rc;
  do rc = recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
  while (rc < 0 && errno == EINTR);
  return kb_int32(env, rc < 0 ? -errno : (int32_t)rc);
}

/* ifIndex(name) → if_nametoindex; ENODEV when there is no such interface (in this network namespace). */
napi_value kb_if_index(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char *name = NULL;
  size_t len = 0;
  if (!kb_args(env, info, 1, argv) || !kb_arg_string(env, argv[0], "name", &name, &len)) return NULL;
  if (len == 0 || len >= IF_NAMESIZE || strlen(name) != len) {
    free(name);
    return kb_throw_errno(env, ENODEV, "if_nametoindex");
  }
  unsigned idx = if_nametoindex(name);
  int err = errno;
  free(name);
  if (idx == 0) return kb_throw_errno(env, err == 0 ? ENODEV : err, "if_nametoindex");
  return kb_int32(env, (int32_t)idx);
}
