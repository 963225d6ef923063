/*
 * xdp-floor.c — kbypass-xdp-floor: the C floor of `kbypass bench packet`, i.e. what a plain C AF_XDP receiver
 * and sender achieve, set up with exactly the calls the library uses (native/xsk.c is linked in).
 *
 *   kbypass-xdp-floor rx --if IFNAME [--queue 0] [--mode skb|native] [--copy] [--seconds 5] [--frames 4096]
 *                        [--frame-size 2048] [--batch 64] [--busy-poll] [--ring 4096]
 *       UMEM of --frames chunks, FILL (large enough for every frame) + COMPLETION + RX rings, bound XDP_COPY |
 *       XDP_USE_NEED_WAKEUP to --queue; an XSKMAP holding the socket at [queue] and the REDIRECT program attached
 *       with a BPF link. Without --mode: native, falling back to skb (with a note on stderr) when the driver
 *       refuses (EOPNOTSUPP/EINVAL); an explicit --mode is not changed. Busy-polls the RX ring, reads each
 *       packet's last byte (--copy: copies each whole packet out of the UMEM into a private buffer instead, as a
 *       receiver that hands out copies does) and gives the frames back to the fill ring a batch at a time.
 *       Measures --seconds from the first packet; waits at most 10 s for it (exit 1 if none comes).
 *       --busy-poll: SO_PREFER_BUSY_POLL + SO_BUSY_POLL 20 us + SO_BUSY_POLL_BUDGET --batch, and a
 *       recvfrom(MSG_DONTWAIT) on every empty poll (as xdpsock does).
 *
 *   kbypass-xdp-floor tx --if IFNAME [--queue 0] [--mode skb|native] [--seconds 5] [--count N] --src-mac M
 *                        --dst-mac M --src-ip A --dst-ip A [--src-port 9000] [--dst-port 9001] [--payload 64]
 *                        [--batch 64] [--frames 4096] [--frame-size 2048] [--ring 4096] [--tx-budget RING]
 *       One Ethernet/IPv4/UDP frame (IPv4 header checksum computed, UDP checksum 0) copied into every UMEM frame;
 *       the first 4 payload bytes carry a big-endian sequence number rewritten for each frame sent. TX + COMPLETION
 *       rings (and an empty FILL ring, which bind requires), bound XDP_COPY | XDP_USE_NEED_WAKEUP; no XDP program
 *       is needed to transmit, so none is attached unless --mode is given (then the PASS program, in that mode).
 *       Sends for --seconds (default 5; 60 when --count is given without --seconds) or until --count frames have
 *       completed, whichever comes first. Counts completed frames. As the library does, it sets
 *       XDP_MAX_TX_SKB_BUDGET (Linux >= 6.17) to the TX ring size so one kick may send a whole ring instead of 32
 *       frames (--tx-budget N to choose, 0 to leave the kernel's 32; ignored on kernels without the option).
 *
 *   kbypass-xdp-floor gen --if IFNAME [--seconds 5] --src-mac M --dst-mac M --src-ip A --dst-ip A
 *                         [--src-port 9000] [--dst-port 9001] [--payload 64]
 *       The flood source of the RX figures, xdp-trafficgen's method: the REDIRECT_IF program (bpf_redirect to
 *       IFNAME) run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the frame tx builds, 65536 runs per
 *       call. Each run really transmits the frame, as an xdp_frame: no skb, no socket. On a veth the peer must
 *       have XDP or GRO on to take xdp_frames. The frames are all the same (sequence number 0). Its JSON line has
 *       "mode":"gen", "xdpMode":"none" and no "stats".
 *
 * stdout, one line at the end (also after SIGINT/SIGTERM):
 *   {"mode":"rx"|"tx","xdpMode":"native"|"skb"|"none","packets":N,"bytes":N,"seconds":S,"pps":X,
 *    "stats":{"rx_dropped":N,"rx_invalid_descs":N,"tx_invalid_descs":N,"rx_ring_full":N,
 *             "rx_fill_ring_empty_descs":N,"tx_ring_empty_descs":N}}
 * stderr: progress once a second. Bad arguments: usage on stderr, exit 2. Failures: "<syscall>: ENAME (text)"
 * on stderr, exit 1.
 */
#include "../xsk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define PROG "kbypass-xdp-floor"
#define FIRST_PACKET_WAIT_NS 10000000000ULL
#define MAX_SECONDS 3600.0
#define COUNT_DEFAULT_SECONDS 60.0
#define ETH_HLEN_ 14
#define IP_HLEN 20
#define UDP_HLEN 8
#define HDRS (ETH_HLEN_ + IP_HLEN + UDP_HLEN)
#define MAX_PAYLOAD 1472 /* a 1500-byte MTU */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(void) {
  fputs("usage:\n"
        "  " PROG " rx --if IFNAME [--queue 0] [--mode skb|native] [--copy] [--seconds 5] [--frames 4096]\n"
        "      [--frame-size 2048] [--batch 64] [--busy-poll] [--ring 4096]\n"
        "  " PROG " tx --if IFNAME [--queue 0] [--mode skb|native] [--seconds 5] [--count N]\n"
        "      --src-mac M --dst-mac M --src-ip A --dst-ip A [--src-port 9000] [--dst-port 9001]\n"
        "      [--payload 64] [--batch 64] [--frames 4096] [--frame-size 2048] [--ring 4096] [--tx-budget RING]\n"
        "  " PROG " gen --if IFNAME [--seconds 5] --src-mac M --dst-mac M --src-ip A --dst-ip A\n"
        "      [--src-port 9000] [--dst-port 9001] [--payload 64]\n"
        "  --tx-budget: frames one sendto() may send, 32..ring (default: the ring size, as the library sets it;\n"
        "      0 = leave the kernel's 32)\n"
        "  --frame-size: power of two 2048..4096; --ring: power of two 64..65536; --batch 1..1024;\n"
        "  --payload 4..1472; 0 < --seconds <= 3600\n",
        stderr);
  exit(2);
}

/* "EBUSY (Device or resource busy)" */
static const char *errname(int err) {
  const char *n = strerrorname_np(err);
  return n != NULL ? n : "E?";
}

static void die_err(const char *call, int err) {
  fprintf(stderr, PROG ": %s: %s (%s)\n", call, errname(err), strerror(err));
  exit(1);
}

/* A kb_* result: negative errno → die naming the syscall kb_xsk_syscall() recorded. */
static int check(int rc, const char *what) {
  if (rc < 0) {
    if (what != NULL) fprintf(stderr, PROG ": %s failed\n", what);
    die_err(kb_xsk_syscall(), -rc);
  }
  return rc;
}

static uint64_t parse_u64(const char *s, uint64_t lo, uint64_t hi) {
  if (s == NULL || *s < '0' || *s > '9') usage();
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) usage();
  return (uint64_t)v;
}

static double parse_seconds(const char *s) {
  if (s == NULL || *s == '\0') usage();
  errno = 0;
  char *end = NULL;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v > 0.0) || v > MAX_SECONDS) usage();
  return v;
}

static void parse_mac(const char *s, uint8_t mac[6]) {
  unsigned v[6];
  char tail;
  if (s == NULL || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
    usage();
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)v[i];
}

static void parse_ip(const char *s, uint8_t ip[4]) {
  if (s == NULL || inet_pton(AF_INET, s, ip) != 1) usage();
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static uint32_t pow2_ceil(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

/* ---------------------------------------------------------------------------------------------------------- */

struct opts {
  const char *ifname;
  uint32_t ifindex, queue;
  int mode_given, mode_skb, copy, busy_poll;
  double seconds;
  int seconds_given;
  uint64_t count;
  uint32_t frames, frame_size, batch, ring, tx_budget;
  uint8_t src_mac[6], dst_mac[6], src_ip[4], dst_ip[4];
  int have_src_mac, have_dst_mac, have_src_ip, have_dst_ip;
  uint16_t src_port, dst_port;
  uint32_t payload;
};

static void parse_opts(int is_tx, int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->seconds = 5.0;
  o->frames = 4096;
  o->frame_size = 2048;
  o->batch = 64;
  o->ring = 4096;
  o->src_port = 9000;
  o->dst_port = 9001;
  o->payload = 64;
  int budget_given = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    /* flags without a value */
    if (!is_tx && strcmp(a, "--copy") == 0) {
      o->copy = 1;
      continue;
    }
    if (!is_tx && strcmp(a, "--busy-poll") == 0) {
      o->busy_poll = 1;
      continue;
    }
    if (strcmp(a, "--if") == 0) {
      if (v == NULL || *v == '\0' || strlen(v) >= IF_NAMESIZE) usage();
      o->ifname = v;
    } else if (strcmp(a, "--queue") == 0) o->queue = (uint32_t)parse_u64(v, 0, 1023);
    else if (strcmp(a, "--mode") == 0) {
      if (v == NULL) usage();
      if (strcmp(v, "skb") == 0) o->mode_skb = 1;
      else if (strcmp(v, "native") == 0) o->mode_skb = 0;
      else usage();
      o->mode_given = 1;
    } else if (strcmp(a, "--seconds") == 0) o->seconds = parse_seconds(v), o->seconds_given = 1;
    else if (strcmp(a, "--frames") == 0) o->frames = (uint32_t)parse_u64(v, 64, 1u << 20);
    else if (strcmp(a, "--frame-size") == 0) o->frame_size = (uint32_t)parse_u64(v, 2048, 4096);
    else if (strcmp(a, "--batch") == 0) o->batch = (uint32_t)parse_u64(v, 1, 1024);
    else if (strcmp(a, "--ring") == 0) o->ring = (uint32_t)parse_u64(v, 64, 65536);
    else if (is_tx && strcmp(a, "--tx-budget") == 0) o->tx_budget = (uint32_t)parse_u64(v, 0, 65536), budget_given = 1;
    else if (is_tx && strcmp(a, "--count") == 0) o->count = parse_u64(v, 1, UINT64_MAX / 2);
    else if (is_tx && strcmp(a, "--src-mac") == 0) parse_mac(v, o->src_mac), o->have_src_mac = 1;
    else if (is_tx && strcmp(a, "--dst-mac") == 0) parse_mac(v, o->dst_mac), o->have_dst_mac = 1;
    else if (is_tx && strcmp(a, "--src-ip") == 0) parse_ip(v, o->src_ip), o->have_src_ip = 1;
    else if (is_tx && strcmp(a, "--dst-ip") == 0) parse_ip(v, o->dst_ip), o->have_dst_ip = 1;
    else if (is_tx && strcmp(a, "--src-port") == 0) o->src_port = (uint16_t)parse_u64(v, 1, 65535);
    else if (is_tx && strcmp(a, "--dst-port") == 0) o->dst_port = (uint16_t)parse_u64(v, 1, 65535);
    else if (is_tx && strcmp(a, "--payload") == 0) o->payload = (uint32_t)parse_u64(v, 4, MAX_PAYLOAD);
    else usage();
    i++;
  }
  if (o->ifname == NULL) usage();
  if ((o->frame_size & (o->frame_size - 1)) != 0 || (o->ring & (o->ring - 1)) != 0) usage();
  if (o->batch > o->ring || o->batch > o->frames) usage();
  if (is_tx) {
    if (!o->have_src_mac || !o->have_dst_mac || !o->have_src_ip || !o->have_dst_ip) usage();
    if (HDRS + o->payload > o->frame_size) usage();
    if (o->count != 0 && !o->seconds_given) o->seconds = COUNT_DEFAULT_SECONDS;
    if (!budget_given) o->tx_budget = o->ring;
    if (o->tx_budget != 0 && (o->tx_budget < 32 || o->tx_budget > o->ring)) usage();
  }
  o->ifindex = if_nametoindex(o->ifname);
  if (o->ifindex == 0) {
    int err = errno;
    fprintf(stderr, PROG ": interface %s not found\n", o->ifname);
    die_err("if_nametoindex", err);
  }
}

/* ---------------------------------------------------------------------------------------------------------- */

/* One mapped ring. Indices are free-running u32; `prod`/`cons` are this side's own index (we are the only writer
 * of it), `other` the last value read of the kernel's. */
struct ring {
  uint32_t *producer, *consumer, *flags;
  void *desc;
  uint32_t size, mask;
  uint32_t prod, cons;
  void *map;
  size_t map_len;
};

static void ring_map(int fd, const struct xdp_mmap_offsets *off, int which, uint32_t entries, struct ring *r) {
  const struct xdp_ring_offset *ro = which == KB_XSK_RX ? &off->rx : which == KB_XSK_TX ? &off->tx
                                   : which == KB_XSK_FILL ? &off->fr : &off->cr;
  size_t len = kb_xsk_ring_bytes(off, which, entries);
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, (off_t)kb_xsk_ring_pgoff(which));
  if (m == MAP_FAILED) die_err("mmap", errno);
  memset(r, 0, sizeof *r);
  r->map = m;
  r->map_len = len;
  r->producer = (uint32_t *)((char *)m + ro->producer);
  r->consumer = (uint32_t *)((char *)m + ro->consumer);
  r->flags = (uint32_t *)((char *)m + ro->flags);
  r->desc = (char *)m + ro->desc;
  r->size = entries;
  r->mask = entries - 1;
  /* Nothing has moved yet: start from what the kernel shows. */
  r->prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
  r->cons = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
}

static void *umem_alloc(uint64_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) die_err("mmap", errno);
  return p;
}

/* bind XDP_COPY | XDP_USE_NEED_WAKEUP. A socket closed just before (a previous run) is torn down asynchronously
 * and keeps the queue busy for a moment: EBUSY is retried for up to 2 s. */
static void bind_socket(int fd, const struct opts *o) {
  int rc;
  for (int tries = 0;; tries++) {
    rc = kb_xsk_bind(fd, o->ifindex, o->queue, XDP_COPY | XDP_USE_NEED_WAKEUP, -1);
    if (rc != -EBUSY || tries == 40 || stop_requested) break;
    struct timespec ts = { 0, 50000000 };
    nanosleep(&ts, NULL);
  }
  if (rc < 0) {
    fprintf(stderr, PROG ": binding to %s queue %u failed\n", o->ifname, o->queue);
    die_err(kb_xsk_syscall(), -rc);
  }
}

/* Attach `prog_fd` in the requested mode. Returns the link fd; *skb says which mode is in effect. */
static int attach(const struct opts *o, int prog_fd, int *skb) {
  *skb = o->mode_skb;
  int link = kb_xdp_link_create(prog_fd, o->ifindex, o->mode_skb ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
  if (link < 0 && !o->mode_given && (link == -EOPNOTSUPP || link == -EINVAL)) {
    fprintf(stderr, PROG ": native XDP on %s refused (%s: %s): falling back to skb mode\n", o->ifname,
            kb_xsk_syscall(), errname(-link));
    *skb = 1;
    link = kb_xdp_link_create(prog_fd, o->ifindex, XDP_FLAGS_SKB_MODE);
  }
  if (link < 0) {
    fprintf(stderr, PROG ": attaching the XDP program to %s in %s mode failed\n", o->ifname, *skb ? "skb" : "native");
    die_err(kb_xsk_syscall(), -link);
  }
  return link;
}

static int load_prog(int kind, int map_fd) {
  static char log[16384];
  int fd = kb_xdp_prog_load(kind, map_fd, log, sizeof log);
  if (fd < 0) {
    if (log[0] != '\0') fprintf(stderr, PROG ": verifier log:\n%s\n", log);
    fprintf(stderr, PROG ": loading the XDP program failed\n");
    die_err(kb_xsk_syscall(), -fd);
  }
  return fd;
}

static void set_sockopt_int(int fd, int opt, int value) {
  if (setsockopt(fd, SOL_SOCKET, opt, &value, sizeof value) != 0) die_err("setsockopt", errno);
}

static void print_result(const char *mode, const char *xdp_mode, int fd, uint64_t packets, uint64_t bytes,
                         double seconds) {
  uint64_t st[6] = { 0 };
  int rc = kb_xsk_stats(fd, st);
  if (rc < 0) fprintf(stderr, PROG ": statistics unavailable: %s: %s\n", kb_xsk_syscall(), errname(-rc));
  double pps = seconds > 0 ? (double)packets / seconds : 0.0;
  printf("{\"mode\":\"%s\",\"xdpMode\":\"%s\",\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
         ",\"seconds\":%.6f,\"pps\":%.1f,\"stats\":{\"rx_dropped\":%" PRIu64 ",\"rx_invalid_descs\":%" PRIu64
         ",\"tx_invalid_descs\":%" PRIu64 ",\"rx_ring_full\":%" PRIu64 ",\"rx_fill_ring_empty_descs\":%" PRIu64
         ",\"tx_ring_empty_descs\":%" PRIu64 "}}\n",
         mode, xdp_mode, packets, bytes, seconds, pps, st[0], st[1], st[2], st[3], st[4], st[5]);
  fflush(stdout);
}

static void progress(const char *mode, int fd, uint64_t t0, uint64_t t, uint64_t packets, uint64_t *last_packets,
                     uint64_t *last_t) {
  double total_s = (double)(t - t0) / 1e9, dt = (double)(t - *last_t) / 1e9;
  uint64_t st[6] = { 0 };
  kb_xsk_stats(fd, st);
  fprintf(stderr, "%s: %.1f s: %" PRIu64 " packets, %.3f Mpps (last second %.3f Mpps)", mode, total_s, packets,
          total_s > 0 ? (double)packets / total_s / 1e6 : 0.0,
          dt > 0 ? (double)(packets - *last_packets) / dt / 1e6 : 0.0);
  if (mode[0] == 'r')
    fprintf(stderr, ", dropped %" PRIu64 " (fill ring empty %" PRIu64 ", rx ring full %" PRIu64 ")\n", st[0], st[4],
            st[3]);
  else
    fprintf(stderr, ", invalid descs %" PRIu64 "\n", st[2]);
  *last_packets = packets;
  *last_t = t;
}

/* ---------------------------------------------------------------------------------------------------------- */

static int cmd_rx(int argc, char **argv) {
  struct opts o;
  parse_opts(0, argc, argv, &o);
  const uint64_t umem_len = (uint64_t)o.frames * o.frame_size;
  uint8_t *umem = umem_alloc(umem_len);
  /* The fill ring holds every frame, so giving frames back never finds it full. */
  const uint32_t fill_entries = pow2_ceil(o.frames > o.ring ? o.frames : o.ring);

  int fd = check(kb_xsk_socket(), "creating the AF_XDP socket");
  check(kb_xsk_umem_reg(fd, umem, umem_len, o.frame_size, 0), "registering the UMEM");
  check(kb_xsk_ring_set(fd, KB_XSK_FILL, fill_entries), "sizing the fill ring");
  check(kb_xsk_ring_set(fd, KB_XSK_COMP, o.ring), "sizing the completion ring");
  check(kb_xsk_ring_set(fd, KB_XSK_RX, o.ring), "sizing the RX ring");
  struct xdp_mmap_offsets off;
  check(kb_xsk_offsets(fd, &off), "reading the ring offsets");
  struct ring fill, comp, rx;
  ring_map(fd, &off, KB_XSK_FILL, fill_entries, &fill);
  ring_map(fd, &off, KB_XSK_COMP, o.ring, &comp);
  ring_map(fd, &off, KB_XSK_RX, o.ring, &rx);

  /* Stock the fill ring with every frame. */
  uint64_t *fill_desc = fill.desc;
  for (uint32_t i = 0; i < o.frames; i++) fill_desc[(fill.prod + i) & fill.mask] = (uint64_t)i * o.frame_size;
  fill.prod += o.frames;
  __atomic_store_n(fill.producer, fill.prod, __ATOMIC_RELEASE);

  if (o.busy_poll) {
    set_sockopt_int(fd, SO_PREFER_BUSY_POLL, 1);
    set_sockopt_int(fd, SO_BUSY_POLL, 20);
    set_sockopt_int(fd, SO_BUSY_POLL_BUDGET, (int)o.batch);
  }
  bind_socket(fd, &o);
  int map_fd = check(kb_bpf_xskmap_create(o.queue + 1), "creating the XSKMAP");
  int prog_fd = load_prog(KB_XDP_PROG_REDIRECT, map_fd);
  check(kb_bpf_map_update_u32(map_fd, o.queue, (uint32_t)fd), "putting the socket in the XSKMAP");
  int skb = 0;
  int link_fd = attach(&o, prog_fd, &skb);
  const char *xdp_mode = skb ? "skb" : "native";
  fprintf(stderr, "rx: %s queue %u, %s mode, copy, %u frames x %u, rings fill %u / rx %u, batch %u%s%s\n", o.ifname,
          o.queue, xdp_mode, o.frames, o.frame_size, fill_entries, o.ring, o.batch, o.busy_poll ? ", busy poll" : "",
          o.copy ? ", copying packets out" : "");

  const struct xdp_desc *rx_desc = rx.desc;
  const uint64_t chunk_mask = ~(uint64_t)(o.frame_size - 1);
  uint8_t *copy_buf = o.copy ? malloc(o.frame_size) : NULL;
  if (o.copy && copy_buf == NULL) die_err("malloc", errno);
  uint64_t packets = 0, bytes = 0, sink = 0;
  uint64_t t0 = 0, t = now_ns(), deadline = t + FIRST_PACKET_WAIT_NS, last_t = 0, last_packets = 0, next_report = 0;
  const uint64_t budget = (uint64_t)(o.seconds * 1e9);
  int started = 0;

  while (!stop_requested) {
    uint32_t avail = __atomic_load_n(rx.producer, __ATOMIC_ACQUIRE) - rx.cons;
    if (avail == 0) {
      if (o.busy_poll || (__atomic_load_n(fill.flags, __ATOMIC_RELAXED) & XDP_RING_NEED_WAKEUP)) {
        if (recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) < 0 && errno != EAGAIN && errno != EBUSY &&
            errno != ENOBUFS && errno != EINTR)
          die_err("recvfrom", errno);
      }
      cpu_relax();
    } else {
      uint32_t n = avail < o.batch ? avail : o.batch;
      if (!started) {
        started = 1;
        t0 = now_ns();
        last_t = t0;
        next_report = t0 + 1000000000ULL;
        deadline = t0 + budget;
      }
      for (uint32_t i = 0; i < n; i++) {
        const struct xdp_desc *d = &rx_desc[(rx.cons + i) & rx.mask];
        const uint8_t *pkt = umem + d->addr;
        if (d->len != 0) {
          if (o.copy) {
            memcpy(copy_buf, pkt, d->len);
            __asm__ volatile("" : : "r"(copy_buf) : "memory");
            sink += copy_buf[d->len - 1];
          } else {
            sink += pkt[d->len - 1];
          }
        }
        bytes += d->len;
        /* The fill ring can hold every frame: no space check needed. */
        fill_desc[(fill.prod + i) & fill.mask] = d->addr & chunk_mask;
      }
      __atomic_store_n(rx.consumer, rx.cons + n, __ATOMIC_RELEASE);
      rx.cons += n;
      fill.prod += n;
      __atomic_store_n(fill.producer, fill.prod, __ATOMIC_RELEASE);
      packets += n;
    }
    t = now_ns();
    if (t >= deadline) break;
    if (started && t >= next_report) {
      progress("rx", fd, t0, t, packets, &last_packets, &last_t);
      next_report += 1000000000ULL;
    }
  }
  __asm__ volatile("" : : "r"(sink));
  if (!started && !stop_requested) {
    fprintf(stderr, PROG ": no packet arrived on %s queue %u within 10 s\n", o.ifname, o.queue);
    return 1;
  }
  double seconds = started ? (double)(t - t0) / 1e9 : 0.0;
  print_result("rx", xdp_mode, fd, packets, bytes, seconds);
  close(link_fd);
  close(prog_fd);
  close(map_fd);
  close(fd);
  free(copy_buf);
  return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */

static uint16_t ip_checksum(const uint8_t *h, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)h[i] << 8 | h[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint32_t build_frame(const struct opts *o, uint8_t *f) {
  memset(f, 0, HDRS + o->payload);
  memcpy(f, o->dst_mac, 6);
  memcpy(f + 6, o->src_mac, 6);
  f[12] = 0x08, f[13] = 0x00; /* IPv4 */
  uint8_t *ip = f + ETH_HLEN_;
  const uint16_t ip_len = (uint16_t)(IP_HLEN + UDP_HLEN + o->payload);
  ip[0] = 0x45;
  ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len;
  ip[6] = 0x40; /* DF */
  ip[8] = 64;   /* TTL */
  ip[9] = 17;   /* UDP */
  memcpy(ip + 12, o->src_ip, 4);
  memcpy(ip + 16, o->dst_ip, 4);
  uint16_t c = ip_checksum(ip, IP_HLEN);
  ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
  uint8_t *udp = ip + IP_HLEN;
  const uint16_t udp_len = (uint16_t)(UDP_HLEN + o->payload);
  udp[0] = (uint8_t)(o->src_port >> 8), udp[1] = (uint8_t)o->src_port;
  udp[2] = (uint8_t)(o->dst_port >> 8), udp[3] = (uint8_t)o->dst_port;
  udp[4] = (uint8_t)(udp_len >> 8), udp[5] = (uint8_t)udp_len;
  /* udp[6..7]: checksum 0 = none (allowed for IPv4) */
  uint8_t *payload = udp + UDP_HLEN;
  for (uint32_t i = 4; i < o->payload; i++) payload[i] = (uint8_t)('a' + i % 26);
  return HDRS + o->payload;
}

static int cmd_tx(int argc, char **argv) {
  struct opts o;
  parse_opts(1, argc, argv, &o);
  const uint64_t umem_len = (uint64_t)o.frames * o.frame_size;
  uint8_t *umem = umem_alloc(umem_len);
  const uint32_t frame_len = build_frame(&o, umem);
  for (uint32_t i = 1; i < o.frames; i++) memcpy(umem + (uint64_t)i * o.frame_size, umem, frame_len);
  const uint32_t seq_off = HDRS;

  int fd = check(kb_xsk_socket(), "creating the AF_XDP socket");
  check(kb_xsk_umem_reg(fd, umem, umem_len, o.frame_size, 0), "registering the UMEM");
  /* bind() wants both UMEM rings (EINVAL otherwise) even when only sending; the fill ring stays empty. */
  check(kb_xsk_ring_set(fd, KB_XSK_FILL, o.ring), "sizing the fill ring");
  const uint32_t comp_entries = pow2_ceil(o.frames > o.ring ? o.frames : o.ring); /* never overflows */
  check(kb_xsk_ring_set(fd, KB_XSK_COMP, comp_entries), "sizing the completion ring");
  check(kb_xsk_ring_set(fd, KB_XSK_TX, o.ring), "sizing the TX ring");
  /* As the library does: let one copy-mode sendto() send as many frames as the TX ring holds (Linux >= 6.17;
   * before, the option does not exist and the kernel sends 32 per call). */
  const char *budget_note = "32 (kernel default)";
  char budget_buf[32];
  if (o.tx_budget != 0) {
    int b = kb_xsk_tx_budget(fd, o.tx_budget);
    if (b == 0) {
      snprintf(budget_buf, sizeof budget_buf, "%u", o.tx_budget);
      budget_note = budget_buf;
    } else if (b != -ENOPROTOOPT) {
      fprintf(stderr, PROG ": setting the TX budget failed (%s: %s): keeping the kernel's\n", kb_xsk_syscall(),
              errname(-b));
    }
  }
  struct xdp_mmap_offsets off;
  check(kb_xsk_offsets(fd, &off), "reading the ring offsets");
  struct ring fill, comp, tx;
  ring_map(fd, &off, KB_XSK_FILL, o.ring, &fill);
  ring_map(fd, &off, KB_XSK_COMP, comp_entries, &comp);
  ring_map(fd, &off, KB_XSK_TX, o.ring, &tx);
  bind_socket(fd, &o);
  int prog_fd = -1, link_fd = -1, skb = o.mode_skb;
  if (o.mode_given) {
    prog_fd = load_prog(KB_XDP_PROG_PASS, -1);
    link_fd = attach(&o, prog_fd, &skb);
  }
  const char *xdp_mode = !o.mode_given ? "none" : skb ? "skb" : "native";
  fprintf(stderr,
          "tx: %s queue %u, copy, xdp program %s, %u-byte frames (payload %u), %u frames, ring %u, batch %u, "
          "budget per kick %s\n",
          o.ifname, o.queue, xdp_mode, frame_len, o.payload, o.frames, o.ring, o.batch, budget_note);

  /* Free frames: a stack (the most recently completed frame, still warm in cache, goes out first). */
  uint64_t *free_frames = malloc((size_t)o.frames * sizeof *free_frames);
  if (free_frames == NULL) die_err("malloc", errno);
  uint32_t nfree = 0;
  for (uint32_t i = o.frames; i-- > 0;) free_frames[nfree++] = (uint64_t)i * o.frame_size;

  struct xdp_desc *tx_desc = tx.desc;
  const uint64_t *comp_desc = comp.desc;
  uint64_t completed = 0, published = 0, kicks_failed = 0;
  uint32_t seq = 0;
  const uint64_t limit = o.count != 0 ? o.count : UINT64_MAX;
  const uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(o.seconds * 1e9);
  uint64_t t = t0, last_t = t0, last_packets = 0, next_report = t0 + 1000000000ULL;

  while (!stop_requested) {
    /* Reap the completion ring. */
    uint32_t done = __atomic_load_n(comp.producer, __ATOMIC_ACQUIRE) - comp.cons;
    if (done != 0) {
      for (uint32_t i = 0; i < done; i++) free_frames[nfree++] = comp_desc[(comp.cons + i) & comp.mask];
      comp.cons += done;
      __atomic_store_n(comp.consumer, comp.cons, __ATOMIC_RELEASE);
      completed += done;
      if (completed >= limit) break;
    }
    /* Fill TX descriptors. */
    uint32_t kernel_cons = __atomic_load_n(tx.consumer, __ATOMIC_ACQUIRE);
    uint32_t n = o.ring - (tx.prod - kernel_cons);
    if (n > o.batch) n = o.batch;
    if (n > nfree) n = nfree;
    if (n > limit - published) n = (uint32_t)(limit - published);
    for (uint32_t i = 0; i < n; i++) {
      uint64_t addr = free_frames[--nfree];
      uint8_t *p = umem + addr + seq_off;
      uint32_t s = seq++;
      p[0] = (uint8_t)(s >> 24), p[1] = (uint8_t)(s >> 16), p[2] = (uint8_t)(s >> 8), p[3] = (uint8_t)s;
      struct xdp_desc *d = &tx_desc[(tx.prod + i) & tx.mask];
      d->addr = addr;
      d->len = frame_len;
      d->options = 0;
    }
    if (n != 0) {
      tx.prod += n;
      __atomic_store_n(tx.producer, tx.prod, __ATOMIC_RELEASE);
      published += n;
    }
    /* Kick while the ring holds anything: copy mode sends only what a sendto() call drives (a few dozen per
     * call), so it needs a kick after every publish and whenever descriptors are still waiting. */
    if (tx.prod != kernel_cons || (__atomic_load_n(tx.flags, __ATOMIC_RELAXED) & XDP_RING_NEED_WAKEUP)) {
      if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
        int err = errno;
        if (err == EAGAIN || err == EBUSY || err == ENOBUFS || err == EINTR) kicks_failed++;
        else die_err("sendto", err);
      }
    }
    t = now_ns();
    if (t >= deadline) break;
    if (t >= next_report) {
      progress("tx", fd, t0, t, completed, &last_packets, &last_t);
      next_report += 1000000000ULL;
    }
  }
  t = now_ns();
  (void)kicks_failed;
  print_result("tx", xdp_mode, fd, completed, completed * frame_len, (double)(t - t0) / 1e9);
  if (link_fd >= 0) close(link_fd);
  if (prog_fd >= 0) close(prog_fd);
  close(fd);
  free(free_frames);
  return 0;
}

/* gen: see the file header. */
static int cmd_gen(int argc, char **argv) {
  struct opts o;
  parse_opts(1, argc, argv, &o);
  uint8_t frame[HDRS + MAX_PAYLOAD];
  const uint32_t len = build_frame(&o, frame);
  int prog = load_prog(KB_XDP_PROG_REDIRECT_IF, (int)o.ifindex);
  fprintf(stderr, PROG ": gen: redirecting to %s with BPF_PROG_TEST_RUN (live frames)\n", o.ifname);
  const uint32_t repeat = 65536;
  uint64_t packets = 0, last_packets = 0;
  const uint64_t t0 = now_ns(), end = t0 + (uint64_t)(o.seconds * 1e9);
  uint64_t t = t0, last_t = t0;
  while (!stop_requested && t < end) {
    check(kb_xdp_run_live(prog, frame, len, repeat, o.batch), "running the generator program");
    packets += repeat;
    t = now_ns();
    if (t - last_t >= 1000000000ull) {
      double dt = (double)(t - last_t) / 1e9;
      fprintf(stderr, PROG ": gen: %.3f Mpps\n", (double)(packets - last_packets) / dt / 1e6);
      last_t = t, last_packets = packets;
    }
  }
  const double seconds = (double)(t - t0) / 1e9;
  printf("{\"mode\":\"gen\",\"xdpMode\":\"none\",\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
         ",\"seconds\":%.6f,\"pps\":%.1f}\n",
         packets, packets * len, seconds, seconds > 0 ? (double)packets / seconds : 0.0);
  fflush(stdout);
  close(prog);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  setvbuf(stderr, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "rx") == 0) return cmd_rx(argc - 2, argv + 2);
  if (strcmp(argv[1], "tx") == 0) return cmd_tx(argc - 2, argv + 2);
  if (strcmp(argv[1], "gen") == 0) return cmd_gen(argc - 2, argv + 2);
  usage();
  return 2;
}
