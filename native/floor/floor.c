/*
 * floor.c — kbypass-floor: the benchmark's floor, i.e. what two plain C processes achieve over shared memory,
 * measured the same way the JS bench measures itself.
 *
 *   kbypass-floor pingpong --bytes N --iterations I [--warmup W] --out FILE
 *       Parent ("ping") and forked child ("pong") bounce an N-byte payload (1 ≤ N ≤ 1 MiB) through two slots of
 *       a MAP_SHARED|MAP_ANONYMOUS region. One CLOCK_MONOTONIC read per round trip; sample i = t_i - t_{i-1}
 *       for the I round trips after W warm-up ones, written to FILE as uint32 little-endian nanoseconds.
 *       stdout: {"clock_ns": <mean cost of one clock_gettime>, "iterations": I}
 *
 *   kbypass-floor memcpy --bytes N --span S --seconds T
 *       Single thread: copy one N-byte source block (hot in cache, as a sender's buffer is) to consecutive
 *       offsets of an S-byte destination (wrapping at S, as a ring does) for about T seconds.
 *       stdout: {"bytes": N, "span": S, "bytes_per_sec": X}
 *
 * Bad arguments: usage on stderr, exit 2. Runtime failures: message on stderr, exit 1.
 *
 * Spinning: load-acquire loops with __builtin_ia32_pause() on x86 (nothing elsewhere). Measured on the 2-vCPU
 * x86-64 dev VM, 64-byte pingpong, 200k iterations, 8 alternating runs of each build: PAUSE gave the lower p50
 * in every pair (e.g. 121-140 ns vs 170 ns when the two processes land on separate cores, ~550 vs ~590 ns
 * otherwise), so it stays on; build with -DKB_FLOOR_PAUSE=0 for plain spinning. On a single online CPU the
 * spinners sched_yield() instead, or the two processes would burn whole time slices waiting for each other.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#ifndef KB_FLOOR_PAUSE
#define KB_FLOOR_PAUSE 1
#endif

#define LINE 64
/* Sequence words sit 128 bytes apart: adjacent-line prefetchers pull 64-byte lines in pairs. */
#define SEQ_STRIDE 128
#define MAX_BYTES (1u << 20)
#define MAX_ITERATIONS 100000000ULL /* 400 MB of samples */

static int single_cpu;

static inline void spin_pause(void) {
  if (single_cpu) {
    sched_yield();
    return;
  }
#if KB_FLOOR_PAUSE && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#endif
}

static void usage(void) {
  fputs("usage:\n"
        "  kbypass-floor pingpong --bytes N --iterations I [--warmup W] --out FILE\n"
        "      1 <= N <= 1048576, 1 <= I <= 100000000, 0 <= W <= 100000000\n"
        "  kbypass-floor memcpy --bytes N --span S --seconds T\n"
        "      N >= 1, S >= N (S <= 4 GiB), 0 < T <= 3600\n",
        stderr);
  exit(2);
}

/* Strict unsigned parse: all digits, no sign, no overflow, within [lo, hi]. */
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
  if (errno != 0 || end == s || *end != '\0' || !(v > 0.0) || v > 3600.0) usage();
  return v;
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "kbypass-floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Mean cost of one clock_gettime(CLOCK_MONOTONIC) over 1e6 calls. */
static double clock_cost_ns(void) {
  const int n = 1000000;
  struct timespec ts;
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t t1 = now_ns();
  __asm__ volatile("" : : "r"(&ts) : "memory");
  return (double)(t1 - t0) / n;
}

/* ---------------------------------------------------------------------------------------------------------- */

struct seq {
  alignas(LINE) _Atomic uint64_t value;
};

static int cmd_pingpong(int argc, char **argv) {
  uint64_t bytes = 0, iterations = 0, warmup = 0;
  const char *out = NULL;
  int have_bytes = 0, have_iterations = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--bytes") == 0) bytes = parse_u64(v, 1, MAX_BYTES), have_bytes = 1;
    else if (strcmp(a, "--iterations") == 0) iterations = parse_u64(v, 1, MAX_ITERATIONS), have_iterations = 1;
    else if (strcmp(a, "--warmup") == 0) warmup = parse_u64(v, 0, MAX_ITERATIONS);
    else if (strcmp(a, "--out") == 0) {
      if (v == NULL || *v == '\0') usage();
      out = v;
    } else usage();
    i++;
  }
  if (!have_bytes || !have_iterations || out == NULL) usage();

  /* Layout: [seq A][seq B][payload A][payload B], each on its own cache lines. */
  const size_t payload = (bytes + LINE - 1) / LINE * LINE;
  const size_t off_seq_a = 0, off_seq_b = SEQ_STRIDE, off_pay_a = 2 * SEQ_STRIDE;
  const size_t off_pay_b = off_pay_a + payload + SEQ_STRIDE - LINE; /* gap keeps the slots' lines apart */
  const size_t region_size = off_pay_b + payload;
  unsigned char *region = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) die("mmap");
  memset(region, 0, region_size);
  _Atomic uint64_t *seq_a = &((struct seq *)(region + off_seq_a))->value;
  _Atomic uint64_t *seq_b = &((struct seq *)(region + off_seq_b))->value;
  unsigned char *pay_a = region + off_pay_a, *pay_b = region + off_pay_b;

  uint32_t *samples = malloc(iterations * sizeof *samples);
  unsigned char *src = malloc(bytes);
  if (samples == NULL || src == NULL) die("malloc");
  for (uint64_t i = 0; i < bytes; i++) src[i] = (unsigned char)(i * 131 + 7);
  memset(samples, 0, iterations * sizeof *samples); /* fault the pages in before timing */

  FILE *f = fopen(out, "wbe"); /* 'e': O_CLOEXEC; opened before timing so a bad path fails fast */
  if (f == NULL) die(out);

  const double clock_ns = clock_cost_ns();
  const uint64_t total = warmup + iterations;
  const pid_t parent = getpid();
  fflush(NULL);
  pid_t child = fork();
  if (child < 0) die("fork");

  if (child == 0) { /* pong */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1); /* parent already gone */
    for (uint64_t i = 1; i <= total; i++) {
      while (atomic_load_explicit(seq_a, memory_order_acquire) != i) spin_pause();
      memcpy(pay_b, pay_a, bytes);
      atomic_store_explicit(seq_b, i, memory_order_release);
    }
    _exit(0);
  }

  /* ping */
  uint64_t prev = now_ns();
  uint64_t spins = 0;
  for (uint64_t i = 1; i <= total; i++) {
    memcpy(pay_a, src, bytes);
    atomic_store_explicit(seq_a, i, memory_order_release);
    while (atomic_load_explicit(seq_b, memory_order_acquire) != i) {
      spin_pause();
      /* Every ~16M spins make sure pong is still there rather than spinning forever. */
      if ((++spins & 0xFFFFFF) == 0 && waitpid(child, NULL, WNOHANG) == child) {
        fprintf(stderr, "kbypass-floor: pong process died\n");
        exit(1);
      }
    }
    uint64_t t = now_ns();
    if (i > warmup) {
      uint64_t d = t - prev;
      samples[i - warmup - 1] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    prev = t;
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "kbypass-floor: pong process failed (status %d)\n", status);
    return 1;
  }

  /* uint32 little-endian, whatever the host order. */
  for (uint64_t i = 0; i < iterations; i++) {
    uint32_t v = samples[i];
    unsigned char le[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                            (unsigned char)(v >> 24) };
    if (fwrite(le, 1, 4, f) != 4) die(out);
  }
  if (fclose(f) != 0) die(out);
  printf("{\"clock_ns\": %.2f, \"iterations\": %" PRIu64 "}\n", clock_ns, iterations);
  free(samples);
  free(src);
  munmap(region, region_size);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------------------------- */

static int cmd_memcpy(int argc, char **argv) {
  uint64_t bytes = 0, span = 0;
  double seconds = 0;
  int have_bytes = 0, have_span = 0, have_seconds = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--bytes") == 0) bytes = parse_u64(v, 1, 1ULL << 32), have_bytes = 1;
    else if (strcmp(a, "--span") == 0) span = parse_u64(v, 1, 1ULL << 32), have_span = 1;
    else if (strcmp(a, "--seconds") == 0) seconds = parse_seconds(v), have_seconds = 1;
    else usage();
    i++;
  }
  if (!have_bytes || !have_span || !have_seconds || span < bytes) usage();

  /* As a sender does: one message-sized source block (the application's buffer, hot in cache) copied into
   * consecutive places of a destination as large as the ring, wrapping at its end. */
  unsigned char *src = malloc(bytes), *dst = malloc(span);
  if (src == NULL || dst == NULL) die("malloc");
  memset(src, 0x5a, bytes); /* touch both so page faults are not timed */
  memset(dst, 0xa5, span);

  /* Read the clock about every MiB copied, so its cost stays negligible for small blocks. */
  const uint64_t per_check = bytes >= (1u << 20) ? 1 : (1u << 20) / bytes;
  const uint64_t budget = (uint64_t)(seconds * 1e9);
  uint64_t copied = 0, off = 0;
  const uint64_t t0 = now_ns();
  uint64_t t = t0;
  for (;;) {
    for (uint64_t k = 0; k < per_check; k++) {
      memcpy(dst + off, src, bytes);
      __asm__ volatile("" : : "r"(dst) : "memory"); /* the stores must happen */
      off += bytes;
      if (off + bytes > span) off = 0;
    }
    copied += per_check * bytes;
    t = now_ns();
    if (t - t0 >= budget) break;
  }
  const double elapsed = (double)(t - t0) / 1e9;
  printf("{\"bytes\": %" PRIu64 ", \"span\": %" PRIu64 ", \"bytes_per_sec\": %.0f}\n", bytes, span,
         (double)copied / elapsed);
  free(src);
  free(dst);
  return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  single_cpu = sysconf(_SC_NPROCESSORS_ONLN) < 2;
  if (strcmp(argv[1], "pingpong") == 0) return cmd_pingpong(argc - 2, argv + 2);
  if (strcmp(argv[1], "memcpy") == 0) return cmd_memcpy(argc - 2, argv + 2);
  usage();
  return 2;
}
