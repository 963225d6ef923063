/*
 * region.c — shared memory regions: memfd_create + ftruncate + seals, fstat size / seals, mmap(MAP_SHARED) exposed
 * to JavaScript as an external ArrayBuffer (munmapped only by its GC finalizer), optional mlock, close(), and the
 * RLIMIT_MEMLOCK query.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

#define KB_MEMFD_HUGETLB 1 /* binding.ts MEMFD_HUGETLB */
#define KB_MAP_LOCK 1      /* binding.ts MAP_LOCK */
#define KB_MAP_POPULATE 2  /* binding.ts MAP_POPULATE */
#define KB_ANON_HUGETLB 4  /* binding.ts ANON_HUGETLB */

napi_value kb_memfd_create(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char *name = NULL;
  size_t name_len = 0;
  int64_t size = 0;
  int32_t flags = 0;
  if (!kb_args(env, info, 3, argv)) return NULL;
  if (!kb_arg_int64(env, argv[1], "size", &size) || !kb_arg_int32(env, argv[2], "flags", &flags)) return NULL;
  if (!kb_arg_string(env, argv[0], "name", &name, &name_len)) return NULL;
  if (size < 0) {
    free(name);
    return kb_throw_errno(env, EINVAL, "ftruncate");
  }

  const int hugetlb = (flags & KB_MEMFD_HUGETLB) != 0;
  unsigned int mflags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugetlb ? MFD_HUGETLB : 0);
  int fd = memfd_create(name, mflags); /* the kernel rejects names over 249 bytes with EINVAL */
  int err = errno;
  free(name);
  if (fd < 0) return kb_throw_errno(env, err, "memfd_create");

  if (ftruncate(fd, (off_t)size) != 0) {
    err = errno;
    close(fd);
    return kb_throw_errno(env, err, "ftruncate");
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    err = errno;
    /* Older hugetlbfs does not support sealing: keep such a region unsealed rather than fail. */
    if (!(hugetlb && err == EINVAL)) {
      close(fd);
      return kb_throw_errno(env, err, "fcntl");
    }
  }
  return kb_int32(env, fd);
}

napi_value kb_fd_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) return kb_throw_errno(env, errno, "fstat");
  return kb_double(env, (double)st.st_size);
}

napi_value kb_fd_seals(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return kb_throw_errno(env, errno, "fcntl");
  return kb_int32(env, seals);
}

/* Finalizer hint of a mapping: what munmap needs. */
struct mapping {
  void *addr;
  size_t size;
  int unmapped;  /* unmapNow() already unmapped it (and detached its ArrayBuffer) */
  struct mapping *prev, *next;
};

/* Every live mapping, so unmapNow() can find the one behind an ArrayBuffer. Worker threads share it. */
static struct mapping *mappings = NULL;
static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;

static void mapping_link(struct mapping *m) {
  pthread_mutex_lock(&mappings_lock);
  m->prev = NULL;
  m->next = mappings;
  if (mappings != NULL) mappings->prev = m;
  mappings = m;
  pthread_mutex_unlock(&mappings_lock);
}

/* Runs on the JS thread when the ArrayBuffer is collected (or at environment teardown). */
static void mapping_finalize(napi_env env, void *data, void *hint) {
  struct mapping *m = hint;
  (void)data;
  if (m == NULL) return;
  pthread_mutex_lock(&mappings_lock);
  if (m->prev != NULL) m->prev->next = m->next;
  else if (mappings == m) mappings = m->next;
  if (m->next != NULL) m->next->prev = m->prev;
  pthread_mutex_unlock(&mappings_lock);
  if (!m->unmapped) munmap(m->addr, m->size);
  free(m);
}

static napi_value wrap_mapping(napi_env env, struct mapping *m);
static napi_value map_and_wrap(napi_env env, size_t size, int mflags, int fd, off_t offset, bool lock);

napi_value kb_mmap_shared(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, flags;
  int64_t size;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int64(env, argv[1], "size", &size) || !kb_arg_int32(env, argv[2], "flags", &flags)) {
    return NULL;
  }
  if (size <= 0 || (uint64_t)size > SIZE_MAX) return kb_throw_errno(env, EINVAL, "mmap");

  /* Touching a MAP_SHARED page past the end of a file raises SIGBUS and kills the process. Refuse to map more
   * than a regular file (memfds included) holds; sealed regions cannot shrink later. */
  struct stat st;
  if (fstat(fd, &st) != 0) return kb_throw_errno(env, errno, "fstat");
  if (S_ISREG(st.st_mode) && size > (int64_t)st.st_size) return kb_throw_errno(env, EINVAL, "mmap");

  int mflags = MAP_SHARED | ((flags & KB_MAP_POPULATE) ? MAP_POPULATE : 0);
  /* mlock: ENOMEM over RLIMIT_MEMLOCK; EPERM when the limit is 0 and there is no CAP_IPC_LOCK; EAGAIN */
  return map_and_wrap(env, (size_t)size, mflags, fd, 0, (flags & KB_MAP_LOCK) != 0);
}

/* Hand a mapping to JS as an external ArrayBuffer whose finalizer owns `m` (and munmaps it). */
static napi_value wrap_mapping(napi_env env, struct mapping *m) {
  void *addr = m->addr;
  m->unmapped = 0;
  mapping_link(m);
  int64_t size = (int64_t)m->size;
  /* Node 20 builds external ArrayBuffers as external Buffers, which are capped at buffer.constants.MAX_LENGTH
   * (4 GiB); over the cap Node throws ERR_BUFFER_TOO_LARGE *and* runs the finalizer itself (verified on 20.20).
   * So from here on the finalizer owns the mapping whatever the outcome: on failure we only report. */
  napi_value ab = NULL;
  napi_status st_ab = napi_create_external_arraybuffer(env, addr, (size_t)size, mapping_finalize, m, &ab);
  if (st_ab != napi_ok) return kb_throw_napi(env, "napi_create_external_arraybuffer");
  /* No napi_adjust_external_memory: V8 counts an external ArrayBuffer's length toward its external memory by
   * itself. Reporting it again doubled the pressure: creating and attaching 300 regions of 4 MiB ran 46
   * mark-compacts with the report and 26 without, 540 against 248 µs each (docs/BENCHMARKS.md). */
  return ab;
}

/* mmap (+ mlock) and hand the mapping to JS. */
static napi_value map_and_wrap(napi_env env, size_t size, int mflags, int fd, off_t offset, bool lock) {
  struct mapping *m = malloc(sizeof *m);
  if (m == NULL) return kb_throw_errno(env, ENOMEM, "malloc");
  void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, mflags, fd, offset);
  if (addr == MAP_FAILED) {
    int err = errno;
    free(m);
    return kb_throw_errno(env, err, "mmap");
  }
  if (lock && mlock(addr, size) != 0) {
    int err = errno;
    munmap(addr, size);
    free(m);
    return kb_throw_errno(env, err, "mlock");
  }
  m->addr = addr;
  m->size = size;
  return wrap_mapping(env, m);
}

/* mmapSocket(fd, size, offset): a ring a socket exports (AF_XDP rings, AF_PACKET rings), MAP_SHARED|MAP_POPULATE
 * at the given page offset. The mapping keeps the kernel's ring pages alive after the socket is closed. */
napi_value kb_mmap_socket(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  int64_t size, offset;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_int64(env, argv[1], "size", &size) || !kb_arg_int64(env, argv[2], "offset", &offset)) {
    return NULL;
  }
  if (size <= 0 || (uint64_t)size > SIZE_MAX || offset < 0) return kb_throw_errno(env, EINVAL, "mmap");
  return map_and_wrap(env, (size_t)size, MAP_SHARED | MAP_POPULATE, fd, (off_t)offset, false);
}

/* mmapAnon(size, flags): private anonymous memory (an AF_XDP UMEM), page-aligned, pre-faulted; MAP_LOCK pins it,
 * MEMFD_HUGETLB (reused as a flag here) asks for 2 MiB pages. Unmapped only by the ArrayBuffer's finalizer. */
napi_value kb_mmap_anon(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t size;
  int32_t flags;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int64(env, argv[0], "size", &size) ||
      !kb_arg_int32(env, argv[1], "flags", &flags)) {
    return NULL;
  }
  if (size <= 0 || (uint64_t)size > SIZE_MAX) return kb_throw_errno(env, EINVAL, "mmap");
  int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | ((flags & KB_ANON_HUGETLB) ? MAP_HUGETLB : 0);
  napi_value ab = map_and_wrap(env, (size_t)size, mflags, -1, 0, (flags & KB_MAP_LOCK) != 0);
  if (ab == NULL) return NULL;
  /* Not inherited by fork(): a child's copy-on-write would otherwise move this process's pages away from the
   * ones the kernel pinned for an AF_XDP UMEM (on kernels without early COW of pinned pages). */
  void *data = NULL;
  size_t len = 0;
  if (napi_get_arraybuffer_info(env, ab, &data, &len) == napi_ok && data != NULL) madvise(data, len, MADV_DONTFORK);
  return ab;
}

/* unmapNow(ab): detach an ArrayBuffer made here (every view of it reads as empty from now on: no access can
 * reach the memory) and munmap its memory at once; its finalizer then only frees the bookkeeping. For mappings
 * that only kbypass's own code holds, whose munmap must not wait for garbage collection (an AF_XDP ring keeps
 * its socket, and so its queue, bound while mapped). Returns false for an ArrayBuffer that is not one of ours
 * or was unmapped already. */
napi_value kb_unmap_now(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!kb_args(env, info, 1, argv)) return NULL;
  bool is_ab = false;
  void *data = NULL;
  size_t len = 0;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) return kb_throw_type(env, "buffer", "an ArrayBuffer");
  KB_NAPI(env, napi_get_arraybuffer_info(env, argv[0], &data, &len));
  struct mapping *found = NULL;
  pthread_mutex_lock(&mappings_lock);
  for (struct mapping *m = mappings; m != NULL; m = m->next) {
    if (m->addr == data && m->size == len && !m->unmapped) { found = m; break; }
  }
  pthread_mutex_unlock(&mappings_lock);
  if (found == NULL) return kb_bool(env, false);
  KB_NAPI(env, napi_detach_arraybuffer(env, argv[0]));
  found->unmapped = 1;
  munmap(found->addr, found->size);
  return kb_bool(env, true);
}

napi_value kb_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  /* On Linux the descriptor is released even when close() reports EINTR: never retry. */
  if (close(fd) != 0 && errno != EINTR) return kb_throw_errno(env, errno, "close");
  return kb_undefined(env);
}

napi_value kb_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return kb_throw_errno(env, errno, "fcntl");
  return kb_int32(env, copy);
}

napi_value kb_memlock_limit(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return kb_throw_errno(env, errno, "getrlimit");
  napi_value arr, soft, hard;
  KB_NAPI(env, napi_create_array_with_length(env, 2, &arr));
  soft = kb_double(env, rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
  if (soft == NULL) return NULL;
  hard = kb_double(env, rl.rlim_max == RLIM_INFINITY ? -1.0 : (double)rl.rlim_max);
  if (hard == NULL) return NULL;
  KB_NAPI(env, napi_set_element(env, arr, 0, soft));
  KB_NAPI(env, napi_set_element(env, arr, 1, hard));
  return arr;
}

/* mallocTune(trimBytes, mmapBytes) → true when applied. glibc's malloc gives freed heap memory back to the
 * kernel once more than M_TRIM_THRESHOLD (128 KiB by default) is free at the top, and the next allocation
 * page-faults it in again. A process that copies a stream out of rings into fresh Buffers frees and allocates
 * megabytes per GC cycle; each fault costs more than copying the page. kbypass/net raises both thresholds once
 * per process (see src/net/malloc-tuning.ts). Elsewhere than glibc: nothing to do (false). */
napi_value kb_malloc_tune(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t trim, mmap_threshold;
  if (!kb_args(env, info, 2, argv) || !kb_arg_int32(env, argv[0], "trimBytes", &trim) ||
      !kb_arg_int32(env, argv[1], "mmapBytes", &mmap_threshold)) {
    return NULL;
  }
  if (trim < 0 || mmap_threshold < 0) return kb_throw_errno(env, EINVAL, "mallopt");
  bool ok = false;
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1;
#endif
  napi_value r;
  KB_NAPI(env, napi_get_boolean(env, ok, &r));
  return r;
}
