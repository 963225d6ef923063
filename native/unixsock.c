/*
 * unixsock.c — the Unix domain socket rendezvous: listen (filesystem path or Linux abstract name), accept,
 * connect, SO_PEERCRED, sendmsg/recvmsg with SCM_RIGHTS fd passing, a liveness peek and half-close.
 * Every socket is non-blocking and close-on-exec; no call here ever blocks.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "kbypass.h"

#define KB_MAX_SEND_FDS 8
/* Room for the kernel's per-message maximum (SCM_MAX_FD) so a message is never truncated by our buffer. */
#define KB_RECV_FDS_ROOM 253

/* Fill a sockaddr_un from a name. Returns 0 and the address length, or a positive errno. */
static int make_addr(const char *name, size_t len, int abstract, struct sockaddr_un *addr, socklen_t *addrlen) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (len == 0) return EINVAL;
  if (abstract) {
    /* Abstract names are raw bytes after a leading NUL; the length is part of the name. */
    if (len + 1 > sizeof addr->sun_path) return ENAMETOOLONG;
    memcpy(addr->sun_path + 1, name, len);
    *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
  } else {
    if (memchr(name, '\0', len) != NULL) return EINVAL; /* would silently name a different path */
    if (len + 1 > sizeof addr->sun_path) return ENAMETOOLONG; /* keep room for the terminating NUL */
    memcpy(addr->sun_path, name, len);
    *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  }
  return 0;
}

/* Read the (name, abstract) arguments, build the address and open a non-blocking stream socket. Returns the
 * fd, or -1 with a JS exception pending (`syscall` names the call an address error is reported against). */
static int open_socket(napi_env env, napi_value name_arg, napi_value abstract_arg, const char *syscall,
                       struct sockaddr_un *addr, socklen_t *addrlen, bool *abstract) {
  char *name = NULL;
  size_t len = 0;
  if (!kb_arg_bool(env, abstract_arg, "abstract", abstract) || !kb_arg_string(env, name_arg, "name", &name, &len)) {
    return -1;
  }
  int err = make_addr(name, len, *abstract, addr, addrlen);
  free(name);
  if (err != 0) {
    kb_throw_errno(env, err, syscall);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) kb_throw_errno(env, errno, "socket");
  return fd;
}

napi_value kb_unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  bool abstract;
  int32_t mode, backlog;
  if (!kb_args(env, info, 4, argv) || !kb_arg_int32(env, argv[2], "mode", &mode) ||
      !kb_arg_int32(env, argv[3], "backlog", &backlog)) {
    return NULL;
  }
  struct sockaddr_un addr;
  socklen_t addrlen = 0;
  int err;
  int fd = open_socket(env, argv[0], argv[1], "bind", &addr, &addrlen, &abstract);
  if (fd < 0) return NULL;
  if (bind(fd, (struct sockaddr *)&addr, addrlen) != 0) {
    err = errno;
    close(fd);
    return kb_throw_errno(env, err, "bind");
  }
  /* bind() created the socket file with umask-dependent permissions, but nobody can connect before listen():
   * set the requested mode first so there is no window where it is more widely connectable. */
  const char *failed = NULL;
  if (!abstract && chmod(addr.sun_path, (mode_t)mode & 07777) != 0) failed = "chmod";
  else if (listen(fd, backlog) != 0) failed = "listen";
  if (failed != NULL) {
    err = errno;
    if (!abstract) unlink(addr.sun_path); /* ours: bind just created it */
    close(fd);
    return kb_throw_errno(env, err, failed);
  }
  return kb_int32(env, fd);
}

napi_value kb_unix_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn < 0) {
    int err = errno;
    /* Nothing pending, or a transient failure: the caller tries again on the next readiness. */
    if (err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED || err == EINTR) return kb_int32(env, -1);
    return kb_throw_errno(env, err, "accept4");
  }
  return kb_int32(env, conn);
}

napi_value kb_unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool abstract;
  if (!kb_args(env, info, 2, argv)) return NULL;
  struct sockaddr_un addr;
  socklen_t addrlen = 0;
  int err;
  int fd = open_socket(env, argv[0], argv[1], "connect", &addr, &addrlen, &abstract);
  if (fd < 0) return NULL;
  int rc;
  do {
    rc = connect(fd, (struct sockaddr *)&addr, addrlen);
  } while (rc != 0 && errno == EINTR);
  /* AF_UNIX connects complete at once; EINPROGRESS is not expected, but if it happens the fd becomes writable
   * when done, like any non-blocking connect. EAGAIN (backlog full) is reported, not retried. */
  if (rc != 0 && errno != EINPROGRESS) {
    err = errno;
    close(fd);
    return kb_throw_errno(env, err, "connect");
  }
  return kb_int32(env, fd);
}

napi_value kb_peer_cred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return kb_throw_errno(env, errno, "getsockopt");
  if (len != sizeof cred) return kb_throw_errno(env, EPROTO, "getsockopt");
  napi_value arr, v;
  KB_NAPI(env, napi_create_array_with_length(env, 3, &arr));
  if ((v = kb_double(env, (double)cred.pid)) == NULL) return NULL;
  KB_NAPI(env, napi_set_element(env, arr, 0, v));
  if ((v = kb_double(env, (double)cred.uid)) == NULL) return NULL;
  KB_NAPI(env, napi_set_element(env, arr, 1, v));
  if ((v = kb_double(env, (double)cred.gid)) == NULL) return NULL;
  KB_NAPI(env, napi_set_element(env, arr, 2, v));
  return arr;
}

napi_value kb_send_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void *data = NULL;
  size_t len = 0;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_typed(env, argv[1], "data", napi_uint8_array, "an instance of Uint8Array", &data, &len)) {
    return NULL;
  }
  bool is_array = false;
  uint32_t nfds = 0;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) {
    return kb_throw_type(env, "fds", "an instance of Array");
  }
  KB_NAPI(env, napi_get_array_length(env, argv[2], &nfds));
  if (nfds > KB_MAX_SEND_FDS) return kb_throw_errno(env, EINVAL, "sendmsg");
  /* On a stream socket the fds travel with the first byte: with no data they would be silently dropped. */
  if (len == 0) return kb_throw_errno(env, EINVAL, "sendmsg");

  int fds[KB_MAX_SEND_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    KB_NAPI(env, napi_get_element(env, argv[2], i, &el));
    if (!kb_arg_int32(env, el, "fds", &fds[i])) return NULL;
  }

  struct iovec iov = { .iov_base = data, .iov_len = len };
  union {
    char buf[CMSG_SPACE(sizeof(int) * KB_MAX_SEND_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (nfds > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kb_int32(env, -1);
    return kb_throw_errno(env, errno, "sendmsg");
  }
  return kb_double(env, (double)n);
}

napi_value kb_recv_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void *data = NULL, *out_raw = NULL;
  size_t len = 0, out_len = 0;
  if (!kb_args(env, info, 3, argv) || !kb_arg_int32(env, argv[0], "fd", &fd) ||
      !kb_arg_typed(env, argv[1], "data", napi_uint8_array, "an instance of Uint8Array", &data, &len) ||
      !kb_arg_typed(env, argv[2], "fdsOut", napi_int32_array, "an instance of Int32Array", &out_raw, &out_len)) {
    return NULL;
  }
  int32_t *fds_out = out_raw;
  for (size_t i = 0; i < out_len; i++) fds_out[i] = -1;
  /* A zero-length read would return 0, indistinguishable from EOF. */
  if (len == 0) return kb_throw_errno(env, EINVAL, "recvmsg");

  struct iovec iov = { .iov_base = data, .iov_len = len };
  union {
    char buf[CMSG_SPACE(sizeof(int) * KB_RECV_FDS_ROOM)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf };
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kb_int32(env, -1);
    return kb_throw_errno(env, errno, "recvmsg");
  }

  /* Hand out what fits; close everything else at once so no descriptor leaks. With MSG_CTRUNC the set is
   * incomplete (the kernel already closed what did not fit), so close all of it. */
  const int truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  size_t used = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *p = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, p + i * sizeof(int), sizeof got);
      if (!truncated && used < out_len) fds_out[used++] = got;
      else close(got);
    }
  }
  if (truncated) {
    for (size_t i = 0; i < out_len; i++) fds_out[i] = -1;
  }
  return kb_double(env, (double)n);
}

napi_value kb_peer_alive(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  char b;
  ssize_t n;
  do {
    n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return kb_bool(env, true);
  if (n == 0) return kb_bool(env, false); /* orderly EOF */
  switch (errno) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return kb_bool(env, true);
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
      return kb_bool(env, false);
    default:
      return kb_throw_errno(env, errno, "recv");
  }
}

napi_value kb_shutdown_write(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!kb_args(env, info, 1, argv) || !kb_arg_int32(env, argv[0], "fd", &fd)) return NULL;
  if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) return kb_throw_errno(env, errno, "shutdown");
  return kb_undefined(env);
}
