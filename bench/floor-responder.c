// Bench only. The kernel's floor for the batched UDP design: a plain C
// program that answers UDP on 127.0.0.1 the way Knot's UDP handler and the
// engine's addon (native/udp_batch.c) do — wait on epoll, read up to 64
// datagrams with one recvmmsg, send the replies with one sendmmsg — and does
// no DNS work at all: every query with one well-formed question gets the same
// A record (127.0.0.1), anything else is dropped. What it spends per query is
// what the kernel's UDP path costs on this machine; no server on this design
// can spend less. bench/e2e.ts builds it with the system's C compiler (the
// `floor` scenario) and skips it when there is none.
//
// Usage: floor-responder PORT      (runs until killed)
//
//   epoll_wait ─► recvmmsg(≤ 64) ─► per datagram: copy header + question, append the A record ─► sendmmsg
//        ▲                                                                                        │
//        └──────────────── fewer than 64 came (drained) ◄─────────────────────────────────────────┘

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH 64
// Full batches read before waiting on epoll again, as the addon does.
#define MAX_ROUNDS 4
#define RX_BYTES 4096
#define HEADER_LEN 12
// RFC 1035 §2.3.4: a name is at most 255 octets.
#define MAX_NAME_LEN 255

// Owner = pointer to the question name at offset 12 (RFC 1035 §4.1.4), type A,
// class IN, TTL 60, rdlength 4, 127.0.0.1.
static const uint8_t ANSWER[16] = {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 127, 0, 0, 1};

static uint8_t rx[BATCH][RX_BYTES];
static uint8_t tx[BATCH][HEADER_LEN + MAX_NAME_LEN + 4 + sizeof ANSWER];
static struct mmsghdr rx_hdr[BATCH];
static struct iovec rx_iov[BATCH];
static struct mmsghdr tx_hdr[BATCH];
static struct iovec tx_iov[BATCH];
static struct sockaddr_in peers[BATCH];

// Returns the offset just past QCLASS of the one question at offset 12, or 0
// when the message is not a QUERY (QR clear, opcode 0) with exactly one
// well-formed question.
static size_t question_end(const uint8_t *msg, size_t len) {
  if (len < HEADER_LEN + 5 || (msg[2] & 0xf8) != 0) return 0;
  if (msg[4] != 0 || msg[5] != 1) return 0;
  size_t off = HEADER_LEN;
  for (;;) {
    if (off >= len || off - HEADER_LEN >= MAX_NAME_LEN) return 0;
    uint8_t label = msg[off];
    if (label == 0) break;
    // A compression pointer (or the reserved 0x40/0x80 forms) has nothing to point to in a question.
    if (label > 63) return 0;
    off += 1 + (size_t)label;
  }
  off += 1 + 4;
  return off <= len && off - HEADER_LEN <= MAX_NAME_LEN + 4 ? off : 0;
}

// Writes the reply to rx[i] into tx[i]; returns its length, or 0 for no reply.
static size_t answer(int i, size_t len) {
  size_t q = question_end(rx[i], len);
  if (q == 0) return 0;
  uint8_t *out = tx[i];
  memcpy(out, rx[i], q);
  out[2] = (uint8_t)(0x84 | (rx[i][2] & 0x01)); // QR, AA; RD copied; opcode QUERY
  out[3] = 0;                                    // RA off, rcode NOERROR
  out[6] = 0;
  out[7] = 1; // ANCOUNT 1
  memset(out + 8, 0, 4); // NSCOUNT, ARCOUNT (an OPT record in the query is not echoed)
  memcpy(out + q, ANSWER, sizeof ANSWER);
  return q + sizeof ANSWER;
}

static void serve(int fd) {
  for (int round = 0; round < MAX_ROUNDS; round++) {
    for (int i = 0; i < BATCH; i++) {
      rx_hdr[i].msg_hdr.msg_namelen = sizeof peers[i];
      rx_hdr[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(fd, rx_hdr, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    int k = 0;
    for (int i = 0; i < n; i++) {
      // A datagram larger than the slot is not a query this program answers.
      if ((rx_hdr[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || rx_hdr[i].msg_hdr.msg_namelen != sizeof peers[i]) continue;
      size_t len = answer(i, rx_hdr[i].msg_len);
      if (len == 0) continue;
      tx_iov[k].iov_base = tx[i];
      tx_iov[k].iov_len = len;
      tx_hdr[k].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof peers[i], .msg_iov = &tx_iov[k], .msg_iovlen = 1};
      k++;
    }
    for (int sent = 0; sent < k;) {
      int r = sendmmsg(fd, &tx_hdr[sent], (unsigned int)(k - sent), 0);
      if (r < 0 && errno == EINTR) continue;
      // A reply the kernel refuses is skipped, as the addon counts and skips it.
      sent += r > 0 ? r : 1;
    }
    if (n < BATCH) return;
  }
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
  if (argc != 2 || end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "usage: floor-responder PORT (1-65535); answers UDP on 127.0.0.1:PORT until killed\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("floor-responder: socket");
    return 1;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {.s_addr = htonl(INADDR_LOOPBACK)}};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fprintf(stderr, "floor-responder: bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  for (int i = 0; i < BATCH; i++) {
    rx_iov[i].iov_base = rx[i];
    rx_iov[i].iov_len = sizeof rx[i];
    rx_hdr[i].msg_hdr.msg_iov = &rx_iov[i];
    rx_hdr[i].msg_hdr.msg_iovlen = 1;
    rx_hdr[i].msg_hdr.msg_name = &peers[i];
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event want = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &want) != 0) {
    perror("floor-responder: epoll");
    return 1;
  }
  for (;;) {
    struct epoll_event ready;
    int r = epoll_wait(ep, &ready, 1, -1);
    if (r < 0 && errno != EINTR) {
      perror("floor-responder: epoll_wait");
      return 1;
    }
    if (r == 1) serve(fd);
  }
}
