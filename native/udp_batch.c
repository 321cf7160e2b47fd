// DNS worker thread, hot path. Batched UDP for one worker: its own
// SO_REUSEPORT socket, libuv's poll on the descriptor, recvmmsg into memory
// allocated once that the worker's JavaScript reads directly, one JavaScript
// call per batch, one sendmmsg for the replies. Linux only; loaded through
// native/udp-batch.ts, which falls back to node:dgram when this cannot load.
//
//   kernel ──recvmmsg(≤ batch)──► rx slots + meta ──onBatch(n)──► JS: handleQuery per slot → tx slots, txLen
//   kernel ◄──sendmmsg(replies)── tx slots + the sources' addresses ◄───────────────┘
//
// Memory: one ArrayBuffer per socket, created here, shared with JS:
//
//   [ meta: batch × META_BYTES ][ rx: batch × stride ][ tx: batch × stride ]
//
// meta per slot (little-endian int32 words, read/written by JS through views):
//   +0  rxLen   bytes received into the slot's rx area (set here)
//   +4  txLen   bytes of reply JS wrote to the slot's tx area; 0 = no reply (set by JS)
//   +8  addrLen 4 (IPv4, IPv4-mapped IPv6 included) or 16 (IPv6); 0 = unknown family
//   +12 port    source port, host order
//   +16 addr    the source address, network byte order (16 bytes)
//
// Every slot holds a whole datagram (SLOT_BYTES ≥ the largest UDP payload),
// so nothing is ever truncated, and a reply may be built at full DNS size
// before it is cut to the client's UDP size. The stride adds a few cache
// lines so slot headers do not all fall into the same cache set.

// recvmmsg and sendmmsg are GNU extensions of <sys/socket.h>.
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 256
#define SLOT_BYTES 65536
#define SLOT_STRIDE (SLOT_BYTES + 192)
#define META_BYTES 32
#define META_RX_LEN 0
#define META_TX_LEN 4
#define META_ADDR_LEN 8
#define META_PORT 12
#define META_ADDR 16
// Batches handled per wake-up before libuv gets the thread back: timers and
// messages from the main thread wait at most this many batches.
#define MAX_ROUNDS 4

typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} peer_addr;

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int batch;
  // State: open; in the JS callback; close() asked for while in it; closed.
  int in_callback;
  int close_requested;
  int closed;
  // Replies waiting for the socket to become writable (sendmmsg said EAGAIN).
  int tx_next;
  int tx_count;
  int polling_events;
  // Holders of this state: the libuv handle (until on_closed) and the handle
  // object open() returned (until the garbage collector finalizes it). Freed
  // when both have let go, so a close() or stats() on a handle whose socket
  // closed long ago reads this state, never freed memory.
  int owners;
  uint8_t *mem;
  uint8_t *meta;
  uint8_t *rx;
  uint8_t *tx;
  napi_ref buffer_ref;
  napi_ref callback_ref;
  napi_ref counters_ref;
  napi_async_context async_ctx;
  napi_async_cleanup_hook_handle cleanup;
  // Where send errors are counted (a word of the worker's shared counters), or NULL.
  int32_t *send_errors;
  // Totals for stats(): batches, packets, replies the kernel took, send errors, EAGAIN waits, largest batch.
  double batches;
  double packets;
  double replies;
  double errors;
  double waits;
  int largest;
  struct mmsghdr rx_hdr[MAX_BATCH];
  struct iovec rx_iov[MAX_BATCH];
  struct mmsghdr tx_hdr[MAX_BATCH];
  struct iovec tx_iov[MAX_BATCH];
  peer_addr peers[MAX_BATCH];
} batch_socket;

static void count_send_error(batch_socket *s) {
  s->errors += 1;
  if (s->send_errors != NULL) __atomic_fetch_add(s->send_errors, 1, __ATOMIC_SEQ_CST);
}

static void put_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }
static int32_t get_i32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static void on_poll(uv_poll_t *handle, int status, int events);

// Polls for `events` (UV_READABLE, or UV_WRITABLE while replies wait).
static void set_events(batch_socket *s, int events) {
  if (s->polling_events == events) return;
  s->polling_events = events;
  uv_poll_start(&s->poll, events, on_poll);
}

static void release(batch_socket *s) {
  if (--s->owners == 0) free(s);
}

static void on_closed(uv_handle_t *handle) {
  batch_socket *s = (batch_socket *)handle->data;
  if (s->cleanup != NULL) napi_remove_async_cleanup_hook(s->cleanup);
  s->cleanup = NULL;
  release(s);
}

// The handle object open() returned was garbage collected (or its environment is going away).
static void on_handle_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release((batch_socket *)data);
}

// Stops polling, closes the descriptor at once (the port is free when close()
// returns) and frees the state once libuv has let go of the handle. from_js:
// JS references may be released (not during environment teardown).
static void do_close(batch_socket *s, int from_js) {
  if (s->closed) return;
  s->closed = 1;
  uv_poll_stop(&s->poll);
  close(s->fd);
  s->fd = -1;
  if (from_js) {
    napi_delete_reference(s->env, s->callback_ref);
    napi_delete_reference(s->env, s->buffer_ref);
    if (s->counters_ref != NULL) napi_delete_reference(s->env, s->counters_ref);
    napi_async_destroy(s->env, s->async_ctx);
  }
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

// The environment (the worker thread) is going away: a terminated worker
// lands here, possibly with a batch half done. Nothing calls into JS again.
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  batch_socket *s = (batch_socket *)arg;
  s->cleanup = handle;
  do_close(s, 0);
}

// Sends tx_hdr[tx_next, tx_count). Returns 1 when all went (or failed for
// good and were counted), 0 when the socket is full and the rest waits for
// POLLOUT. A message the kernel refuses (bad address, EMSGSIZE…) is counted
// and skipped: sendmmsg reports the error of the first message it could not
// send, so the next call starts just past it.
static int flush_replies(batch_socket *s) {
  while (s->tx_next < s->tx_count) {
    int r = sendmmsg(s->fd, &s->tx_hdr[s->tx_next], (unsigned int)(s->tx_count - s->tx_next), MSG_DONTWAIT);
    if (r > 0) {
      s->tx_next += r;
      s->replies += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    count_send_error(s);
    s->tx_next++;
  }
  s->tx_next = 0;
  s->tx_count = 0;
  return 1;
}

// Fills meta for the n datagrams just received.
static void describe_batch(batch_socket *s, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t *m = s->meta + (size_t)i * META_BYTES;
    put_i32(m + META_RX_LEN, (int32_t)s->rx_hdr[i].msg_len);
    put_i32(m + META_TX_LEN, 0);
    const peer_addr *p = &s->peers[i];
    if (p->sa.sa_family == AF_INET) {
      put_i32(m + META_ADDR_LEN, 4);
      put_i32(m + META_PORT, ntohs(p->v4.sin_port));
      memcpy(m + META_ADDR, &p->v4.sin_addr, 4);
    } else if (p->sa.sa_family == AF_INET6) {
      put_i32(m + META_PORT, ntohs(p->v6.sin6_port));
      // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; they are IPv4 clients.
      if (IN6_IS_ADDR_V4MAPPED(&p->v6.sin6_addr)) {
        put_i32(m + META_ADDR_LEN, 4);
        memcpy(m + META_ADDR, &p->v6.sin6_addr.s6_addr[12], 4);
      } else {
        put_i32(m + META_ADDR_LEN, 16);
        memcpy(m + META_ADDR, &p->v6.sin6_addr, 16);
      }
    } else {
      put_i32(m + META_ADDR_LEN, 0);
      put_i32(m + META_PORT, 0);
    }
  }
}

// Queues the replies JS wrote for the batch of n and sends them. Returns 0
// when some wait for POLLOUT.
static int send_batch(batch_socket *s, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    int32_t len = get_i32(s->meta + (size_t)i * META_BYTES + META_TX_LEN);
    if (len <= 0) continue;
    // JS owns the length word: never trust it past the slot.
    if (len > SLOT_BYTES) {
      count_send_error(s);
      continue;
    }
    s->tx_iov[k].iov_base = s->tx + (size_t)i * SLOT_STRIDE;
    s->tx_iov[k].iov_len = (size_t)len;
    struct msghdr *h = &s->tx_hdr[k].msg_hdr;
    h->msg_name = &s->peers[i];
    h->msg_namelen = s->rx_hdr[i].msg_hdr.msg_namelen;
    h->msg_iov = &s->tx_iov[k];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
    k++;
  }
  s->tx_next = 0;
  s->tx_count = k;
  return flush_replies(s);
}

// Calls onBatch(n) in JS. Returns 0 when JS threw (the exception goes to the
// worker's uncaughtException, as any bug outside the per-packet boundary
// does) or cannot run (the worker is being terminated).
static int call_js(batch_socket *s, int n) {
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  int ok = 0;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, s->callback_ref, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, n, &arg) == napi_ok) {
    s->in_callback = 1;
    napi_status st = napi_make_callback(env, s->async_ctx, recv, cb, 1, &arg, &result);
    s->in_callback = 0;
    ok = st == napi_ok;
    if (!ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
  return ok;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  batch_socket *s = (batch_socket *)handle->data;
  if (s->closed) return;
  // An error on the descriptor itself (not on a datagram): nothing to read now.
  if (status < 0) return;
  if (s->tx_count > 0) {
    if ((events & UV_WRITABLE) == 0 || !flush_replies(s)) return;
    s->waits += 1;
    set_events(s, UV_READABLE);
    // Read again on the next wake-up: the socket may be readable already.
    return;
  }
  if ((events & UV_READABLE) == 0) return;
  for (int round = 0; round < MAX_ROUNDS; round++) {
    for (int i = 0; i < s->batch; i++) {
      s->rx_hdr[i].msg_hdr.msg_namelen = sizeof(peer_addr);
      s->rx_hdr[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(s->fd, s->rx_hdr, (unsigned int)s->batch, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN: drained. Another error (none is expected on an unconnected UDP
    // socket) also ends this wake-up; level-triggered polling calls again.
    if (n <= 0) return;
    s->batches += 1;
    s->packets += n;
    if (n > s->largest) s->largest = n;
    describe_batch(s, n);
    int ok = call_js(s, n);
    // A close() inside onBatch takes effect now, also when onBatch then threw:
    // the caller was told the socket is closed.
    if (s->close_requested) {
      do_close(s, 1);
      return;
    }
    if (!ok) return;
    if (!send_batch(s, n)) {
      // The rx slots' addresses are still in use: read nothing until they are sent.
      set_events(s, UV_WRITABLE);
      return;
    }
    if (n < s->batch) return;
  }
}

/* ───────────────────────────── JS surface ───────────────────────────── */

#define CHECK(call)                                          \
  do {                                                       \
    if ((call) != napi_ok) return throw_last(env, #call);    \
  } while (0)

static napi_value throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof msg, "udp_batch: %s failed: %s", what, info != NULL && info->error_message != NULL ? info->error_message : "unknown N-API error");
    napi_throw_error(env, "ERR_UDP_BATCH_NAPI", msg);
  }
  return NULL;
}

// Throws an Error whose code is the errno's name (EADDRINUSE…), as node:dgram's errors carry.
static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char msg[160];
  const char *name = uv_err_name(uv_translate_sys_error(err));
  snprintf(msg, sizeof msg, "%s %s: %s", syscall, name, strerror(err));
  napi_throw_error(env, name, msg);
  return NULL;
}

// An integral number within int32 range. napi_get_value_int32 alone would
// take NaN as 0, cut 53.5 to 53 and wrap 2^32 + 53 to 53.
static int get_int_prop(napi_env env, napi_value obj, const char *key, int32_t *out) {
  napi_value v;
  napi_valuetype t;
  double d;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d) return 0;
  *out = (int32_t)d;
  return 1;
}

static void set_int_prop(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) == napi_ok) napi_set_named_property(env, obj, key, n);
}

// open({ host, port, receiveBuffer, batch, counters?, sendErrorIndex? }, onBatch)
//   → { handle, buffer, port, receiveBuffer, batch, slotBytes, stride, metaBytes, rxOffset, txOffset }
// host is an IPv4 or IPv6 literal. Throws TypeError/RangeError for bad
// arguments, and an Error coded with the errno name when the socket cannot
// be made or bound.
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok || t0 != napi_object || napi_typeof(env, argv[1], &t1) != napi_ok || t1 != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp_batch.open(options, onBatch): expected an options object and a function");
    return NULL;
  }
  napi_value opts = argv[0];
  char host[64];
  size_t host_len = 0;
  napi_value hv;
  CHECK(napi_get_named_property(env, opts, "host", &hv));
  if (napi_get_value_string_utf8(env, hv, host, sizeof host, &host_len) != napi_ok || host_len == 0 || host_len >= sizeof host - 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp_batch.open: options.host must be an IP address literal");
    return NULL;
  }
  int32_t port = -1, rcvbuf = 0, batch = 0;
  if (!get_int_prop(env, opts, "port", &port) || port < 0 || port > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp_batch.open: options.port must be an integer from 0 to 65535");
    return NULL;
  }
  if (!get_int_prop(env, opts, "receiveBuffer", &rcvbuf) || rcvbuf < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp_batch.open: options.receiveBuffer must be an integer ≥ 0");
    return NULL;
  }
  if (!get_int_prop(env, opts, "batch", &batch) || batch < 1 || batch > MAX_BATCH) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp_batch.open: options.batch must be an integer from 1 to 256");
    return NULL;
  }

  // Optional: an Int32Array (the worker's shared counters) and the word that counts send errors.
  int32_t *send_errors = NULL;
  napi_value counters;
  napi_valuetype ct;
  CHECK(napi_get_named_property(env, opts, "counters", &counters));
  CHECK(napi_typeof(env, counters, &ct));
  bool has_counters = false;
  if (ct != napi_undefined && ct != napi_null) {
    bool is_ta = false;
    napi_typedarray_type tt;
    size_t len = 0;
    void *data = NULL;
    int32_t index = -1;
    if (napi_is_typedarray(env, counters, &is_ta) != napi_ok || !is_ta || napi_get_typedarray_info(env, counters, &tt, &len, &data, NULL, NULL) != napi_ok ||
        tt != napi_int32_array || !get_int_prop(env, opts, "sendErrorIndex", &index) || index < 0 || (size_t)index >= len) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp_batch.open: options.counters must be an Int32Array and options.sendErrorIndex a word inside it");
      return NULL;
    }
    send_errors = (int32_t *)data + index;
    has_counters = true;
  }

  peer_addr bind_addr;
  memset(&bind_addr, 0, sizeof bind_addr);
  socklen_t bind_len;
  int family;
  if (inet_pton(AF_INET, host, &bind_addr.v4.sin_addr) == 1) {
    family = AF_INET;
    bind_addr.v4.sin_family = AF_INET;
    bind_addr.v4.sin_port = htons((uint16_t)port);
    bind_len = sizeof bind_addr.v4;
  } else if (inet_pton(AF_INET6, host, &bind_addr.v6.sin6_addr) == 1) {
    family = AF_INET6;
    bind_addr.v6.sin6_family = AF_INET6;
    bind_addr.v6.sin6_port = htons((uint16_t)port);
    bind_len = sizeof bind_addr.v6;
  } else {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "udp_batch.open: options.host is not an IPv4 or IPv6 address literal");
    return NULL;
  }

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt SO_REUSEPORT", e);
  }
  // As node:dgram's udp6 sockets: "::" takes IPv4 clients too.
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, &bind_addr.sa, bind_len) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  // Linux caps SO_RCVBUF at net.core.rmem_max without an error; the caller
  // compares what it asked for with what getsockopt reports below.
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int granted = 0;
  socklen_t glen = sizeof granted;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &glen);
  peer_addr bound;
  socklen_t blen = sizeof bound;
  int bound_port = port;
  if (getsockname(fd, &bound.sa, &blen) == 0) bound_port = ntohs(family == AF_INET ? bound.v4.sin_port : bound.v6.sin6_port);

  batch_socket *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  s->owners = 1;
  s->batch = batch;
  s->send_errors = send_errors;

  size_t meta_bytes = (size_t)batch * META_BYTES;
  size_t area = (size_t)batch * SLOT_STRIDE;
  size_t total = meta_bytes + 2 * area;
  napi_value buffer;
  void *mem = NULL;
  if (napi_create_arraybuffer(env, total, &mem, &buffer) != napi_ok || mem == NULL) {
    close(fd);
    free(s);
    return throw_last(env, "napi_create_arraybuffer");
  }
  s->mem = mem;
  s->meta = s->mem;
  s->rx = s->mem + meta_bytes;
  s->tx = s->rx + area;
  for (int i = 0; i < batch; i++) {
    s->rx_iov[i].iov_base = s->rx + (size_t)i * SLOT_STRIDE;
    s->rx_iov[i].iov_len = SLOT_BYTES;
    struct msghdr *h = &s->rx_hdr[i].msg_hdr;
    h->msg_name = &s->peers[i];
    h->msg_namelen = sizeof(peer_addr);
    h->msg_iov = &s->rx_iov[i];
    h->msg_iovlen = 1;
  }

  napi_value resource_name;
  int ok = napi_create_reference(env, buffer, 1, &s->buffer_ref) == napi_ok && napi_create_reference(env, argv[1], 1, &s->callback_ref) == napi_ok &&
           (!has_counters || napi_create_reference(env, counters, 1, &s->counters_ref) == napi_ok) &&
           napi_create_string_utf8(env, "opengslb.udpBatch", NAPI_AUTO_LENGTH, &resource_name) == napi_ok &&
           napi_async_init(env, NULL, resource_name, &s->async_ctx) == napi_ok;
  uv_loop_t *loop = NULL;
  ok = ok && napi_get_uv_event_loop(env, &loop) == napi_ok && uv_poll_init(loop, &s->poll, fd) == 0;
  if (!ok) {
    // Nothing polls yet: release what was made and report.
    close(fd);
    if (s->callback_ref != NULL) napi_delete_reference(env, s->callback_ref);
    if (s->buffer_ref != NULL) napi_delete_reference(env, s->buffer_ref);
    if (s->counters_ref != NULL) napi_delete_reference(env, s->counters_ref);
    if (s->async_ctx != NULL) napi_async_destroy(env, s->async_ctx);
    free(s);
    return throw_last(env, "setting up the poll handle");
  }
  s->poll.data = s;
  if (napi_add_async_cleanup_hook(env, on_env_cleanup, s, &s->cleanup) != napi_ok) {
    do_close(s, 1);
    return throw_last(env, "napi_add_async_cleanup_hook");
  }
  set_events(s, UV_READABLE);

  napi_value result, handle;
  int made = napi_create_external(env, s, on_handle_finalized, NULL, &handle) == napi_ok;
  if (made) s->owners++;
  made = made && napi_create_object(env, &result) == napi_ok && napi_set_named_property(env, result, "handle", handle) == napi_ok &&
         napi_set_named_property(env, result, "buffer", buffer) == napi_ok;
  if (!made) {
    // No caller will ever hold a handle to close it: close it here.
    do_close(s, 1);
    return throw_last(env, "returning the handle");
  }
  set_int_prop(env, result, "port", bound_port);
  set_int_prop(env, result, "family", family == AF_INET ? 4 : 6);
  // getsockopt reports SO_RCVBUF doubled on Linux: the kernel adds as much again for its bookkeeping (socket(7)).
  set_int_prop(env, result, "receiveBuffer", granted / 2);
  set_int_prop(env, result, "batch", batch);
  set_int_prop(env, result, "slotBytes", SLOT_BYTES);
  set_int_prop(env, result, "stride", SLOT_STRIDE);
  set_int_prop(env, result, "metaBytes", META_BYTES);
  set_int_prop(env, result, "rxOffset", (double)meta_bytes);
  set_int_prop(env, result, "txOffset", (double)(meta_bytes + area));
  return result;
}

static batch_socket *handle_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp_batch: expected the handle open() returned");
    return NULL;
  }
  return (batch_socket *)p;
}

// close(handle): stops polling and closes the socket; the port is free on
// return. Inside onBatch it takes effect once the callback returns or throws
// (the batch's replies are not sent). A second close, at any time later, is a
// no-op: the state lives as long as the handle (owners).
static napi_value js_close(napi_env env, napi_callback_info info) {
  batch_socket *s = handle_arg(env, info);
  if (s == NULL) return NULL;
  if (s->in_callback) s->close_requested = 1;
  else do_close(s, 1);
  return NULL;
}

// stats(handle) → { batches, packets, replies, sendErrors, writableWaits, largestBatch }
static napi_value js_stats(napi_env env, napi_callback_info info) {
  batch_socket *s = handle_arg(env, info);
  if (s == NULL) return NULL;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  set_int_prop(env, o, "batches", s->batches);
  set_int_prop(env, o, "packets", s->packets);
  set_int_prop(env, o, "replies", s->replies);
  set_int_prop(env, o, "sendErrors", s->errors);
  set_int_prop(env, o, "writableWaits", s->waits);
  set_int_prop(env, o, "largestBatch", s->largest);
  return o;
}

// trimMemory() → true when glibc was asked to give freed heap memory back.
// glibc keeps memory freed in the middle of its heaps (between chunks still in
// use) resident until malloc_trim(), which madvise()s every free page away;
// it only trims a heap's top on its own. An overwatch that took thousands of
// registrations (certificates parsed, messages read in 64 KiB chunks) held
// about 20 MB of such pages (bench/agents-scale.ts, 5 000 agents). Other C
// libraries: false, nothing done.
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  bool trimmed = false;
#ifdef __GLIBC__
  malloc_trim(0);
  trimmed = true;
#endif
  napi_value v;
  CHECK(napi_get_boolean(env, trimmed, &v));
  return v;
}

// reserveFile(path, length): gives the file's first `length` bytes disk
// blocks (fallocate mode 0: a shorter file grows to `length`; bytes already
// written are never touched, so a writer using the file meanwhile loses
// nothing). The state store keeps room ahead of lmdb's page writes this way:
// a full disk fails this call, answered in JavaScript, instead of lmdb's own
// write, whose error path in lmdb-js 3.5.6 overruns a heap buffer
// (src/state/store.ts). Throws an Error coded with the errno name
// (ENOSPC, EFBIG, EOPNOTSUPP where the file system cannot preallocate…).
static napi_value js_reserve_file(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  size_t path_len = 0;
  double length = -1;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok || path_len == 0 || path_len >= sizeof path - 1 ||
      napi_get_value_double(env, argv[1], &length) != napi_ok || !(length >= 1 && length <= 9007199254740991.0) || length != (double)(int64_t)length) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp_batch.reserveFile(path, length): expected a file path and a whole number of bytes ≥ 1");
    return NULL;
  }
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return throw_errno(env, "open", errno);
  int r;
  do {
    r = fallocate(fd, 0, 0, (off_t)length);
  } while (r != 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (r != 0) return throw_errno(env, "fallocate", err);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"trimMemory", NULL, js_trim_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reserveFile", NULL, js_reserve_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value v;
  if (napi_create_int32(env, 1, &v) == napi_ok) napi_set_named_property(env, exports, "abiVersion", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
