/*
 * xdp-gen.c — kbypass-xdp-gen, the flood source of `kbypass bench packet` (RX figures): xdp-trafficgen's method.
 * An XDP program that redirects every frame to one interface is run by the kernel with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES on one Ethernet/IPv4/UDP frame, `repeat` times per call: each run really transmits
 * the frame (as an xdp_frame, no skb, no socket), so the generator outruns every receiver under test. On a veth,
 * the peer must have XDP or GRO on to take xdp_frames.
 *
 *   kbypass-xdp-gen --if IF --seconds S --src-mac M --dst-mac M --src-ip A --dst-ip A
 *                   [--src-port 9000] [--dst-port 9001] [--payload 64]
 *
 * Prints progress on stderr and one JSON line at the end: {"mode":"gen","packets":N,"seconds":S,"pps":X}.
 * Exit codes: 0 done, 1 a system call failed (named on stderr), 2 bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../xsk.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr, "usage: kbypass-xdp-gen --if IF --seconds S --src-mac M --dst-mac M --src-ip A --dst-ip A\n"
                  "                       [--src-port 9000] [--dst-port 9001] [--payload 64]\n");
  exit(2);
}

static int mac(const char *s, uint8_t out[6]) {
  unsigned v[6];
  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) out[i] = (uint8_t)v[i];
  return 0;
}

static uint16_t csum(const uint8_t *p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

int main(int argc, char **argv) {
  const char *ifname = NULL;
  double seconds = 5;
  uint8_t smac[6], dmac[6];
  struct in_addr sip, dip;
  int have = 0;
  unsigned sport = 9000, dport = 9001, payload = 64;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL) usage();
    i++;
    if (!strcmp(a, "--if")) ifname = v;
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--src-mac")) { if (mac(v, smac)) usage(); have |= 1; }
    else if (!strcmp(a, "--dst-mac")) { if (mac(v, dmac)) usage(); have |= 2; }
    else if (!strcmp(a, "--src-ip")) { if (inet_pton(AF_INET, v, &sip) != 1) usage(); have |= 4; }
    else if (!strcmp(a, "--dst-ip")) { if (inet_pton(AF_INET, v, &dip) != 1) usage(); have |= 8; }
    else if (!strcmp(a, "--src-port")) sport = (unsigned)atoi(v);
    else if (!strcmp(a, "--dst-port")) dport = (unsigned)atoi(v);
    else if (!strcmp(a, "--payload")) payload = (unsigned)atoi(v);
    else usage();
  }
  if (ifname == NULL || have != 15 || !(seconds > 0 && seconds <= 3600) || payload < 4 || payload > 1472 ||
      sport > 65535 || dport > 65535) {
    usage();
  }
  unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) {
    fprintf(stderr, "if_nametoindex(%s): %s\n", ifname, strerror(errno));
    return 1;
  }

  uint8_t f[1514];
  memset(f, 0, sizeof f);
  memcpy(f, dmac, 6);
  memcpy(f + 6, smac, 6);
  f[12] = 0x08; /* IPv4 */
  uint8_t *ip = f + 14;
  unsigned ip_len = 20 + 8 + payload;
  ip[0] = 0x45;
  ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len;
  ip[6] = 0x40; /* DF */
  ip[8] = 64, ip[9] = 17;
  memcpy(ip + 12, &sip, 4);
  memcpy(ip + 16, &dip, 4);
  uint16_t c = csum(ip, 20);
  ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
  uint8_t *udp = ip + 20;
  udp[0] = (uint8_t)(sport >> 8), udp[1] = (uint8_t)sport, udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
  udp[4] = (uint8_t)((8 + payload) >> 8), udp[5] = (uint8_t)(8 + payload); /* checksum 0: none (IPv4) */
  uint32_t len = 14 + ip_len;

  char log[4096];
  int prog = kb_xdp_prog_load(KB_XDP_PROG_REDIRECT_IF, (int)ifindex, log, sizeof log);
  if (prog < 0) {
    fprintf(stderr, "%s: %s\n%s", kb_xsk_syscall(), strerror(-prog), log);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const uint32_t repeat = 65536;
  double t0 = now(), last = t0, t = t0;
  uint64_t packets = 0, at_last = 0;
  while (!stop && t - t0 < seconds) {
    int rc = kb_xdp_run_live(prog, f, len, repeat, 64);
    if (rc < 0) {
      fprintf(stderr, "%s(BPF_PROG_TEST_RUN): %s\n", kb_xsk_syscall(), strerror(-rc));
      return 1;
    }
    packets += repeat;
    t = now();
    if (t - last >= 1) {
      fprintf(stderr, "gen: %.3f Mpps\n", (double)(packets - at_last) / (t - last) / 1e6);
      last = t;
      at_last = packets;
    }
  }
  printf("{\"mode\":\"gen\",\"packets\":%llu,\"seconds\":%.6f,\"pps\":%.1f}\n", (unsigned long long)packets, t - t0,
         (double)packets / (t - t0));
  close(prog);
  return 0;
}
