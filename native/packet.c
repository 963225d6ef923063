/*
 * packet.c — AF_PACKET sockets with TPACKET_V3 rings (Documentation/networking/packet_mmap.rst): the socket,
 * SOL_PACKET integer options (version, qdisc bypass, fanout, …), the RX/TX ring requests, bind, and the
 * statistics. The rings are mapped with mmapSocket (region.c) and walked in TypeScript.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

/* packetSocket(protocol): socket(AF_PACKET, SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC, htons(protocol)). Protocol 0
 * receives nothing until bind() names one, so a ring can be set up before any frame arrives. */
napi_value kb_packet_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t proto;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "protocol", &proto)) return NULL;
  if (proto < 0 || proto > 0xffff) return kb_throw_errno(env, EINVAL, "socket");
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons((uint16_t)proto));
  if (fd < 0) return kb_throw_errno(env, errno, "socket");
  return kb_int32(env, fd);
}

/* packetSetInt(fd, option, value): setsockopt(SOL_PACKET, option, int) */
napi_value kb_packet_set_int(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, opt, value;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "option", &opt) || !kb_arg_int32(env, argv[2], "value", &value)) {
    return NULL;
  }
  int v = value;
  if (setsockopt(fd, SOL_PACKET, opt, &v, sizeof v) != 0) return kb_throw_errno(env, errno, "setsockopt");
  return kb_undefined(env);
}

/* packetRing(fd, option, req: Int32Array(7)): setsockopt(SOL_PACKET, PACKET_RX_RING|PACKET_TX_RING, tpacket_req3
 * {block_size, block_nr, frame_size, frame_nr, retire_blk_tov, sizeof_priv, feature_req_word}) */
napi_value kb_packet_ring(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, opt;
  void *data;
  size_t n;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "option", &opt) ||
      !kb_arg_typed(env, argv[2], "req", napi_int32_array, "an Int32Array", &data, &n)) {
    return NULL;
  }
  if (n < 7) return kb_throw_range(env, "req must hold 7 numbers");
  if (opt != PACKET_RX_RING && opt != PACKET_TX_RING) return kb_throw_errno(env, EINVAL, "setsockopt");
  const int32_t *r = data;
  struct tpacket_req3 req;
  memset(&req, 0, sizeof req);
  req.tp_block_size = (unsigned)r[0];
  req.tp_block_nr = (unsigned)r[1];
  req.tp_frame_size = (unsigned)r[2];
  req.tp_frame_nr = (unsigned)r[3];
  req.tp_retire_blk_tov = (unsigned)r[4];
  req.tp_sizeof_priv = (unsigned)r[5];
  req.tp_feature_req_word = (unsigned)r[6];
  if (setsockopt(fd, SOL_PACKET, opt, &req, sizeof req) != 0) return kb_throw_errno(env, errno, "setsockopt");
  return kb_undefined(env);
}

/* packetBind(fd, ifindex, protocol): bind(sockaddr_ll{ifindex, htons(protocol)}) */
napi_value kb_packet_bind(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, ifindex, proto;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int32(env, argv[1], "ifindex", &ifindex) || !kb_arg_int32(env, argv[2], "protocol", &proto)) {
    return NULL;
  }
  if (ifindex <= 0 || proto < 0 || proto > 0xffff) return kb_throw_errno(env, EINVAL, "bind");
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = ifindex;
  sll.sll_protocol = htons((uint16_t)proto);
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) return kb_throw_errno(env, errno, "bind");
  return kb_undefined(env);
}

/* packetStats(fd, out: Float64Array(3)): tp_packets, tp_drops, tp_freeze_q_cnt since the last call (the kernel
 * resets them on every read; tp_packets counts the drops too). */
napi_value kb_packet_stats(napi_env env, napi_callback_info info) {
  int32_t fd;
  double *o;
  if (!kb_args_fd_f64(env, info, 3, &fd, &o)) return NULL;
  struct tpacket_stats_v3 st;
  memset(&st, 0, sizeof st);
  socklen_t len = sizeof st;
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return kb_throw_errno(env, errno, "getsockopt");
  o[0] = st.tp_packets;
  o[1] = st.tp_drops;
  o[2] = st.tp_freeze_q_cnt;
  return kb_undefined(env);
}

/* packetDropAll(fd): attach a classic BPF filter that accepts nothing (SO_ATTACH_FILTER, `ret #0`): the socket
 * stops copying frames into its ring at once, though it lives on while its mapping does. */
napi_value kb_packet_drop_all(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  struct sock_filter insn = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog prog = { .len = 1, .filter = &insn };
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) return kb_throw_errno(env, errno, "setsockopt");
  return kb_undefined(env);
}
