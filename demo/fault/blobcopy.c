/*
 * blobcopy - ships a stream of records from a sender thread to a receiver
 * thread over a loopback TCP connection and checks every record on arrival.
 *
 * Written the way a lot of old network code is, including its bug: the
 * sender assumes that write() on a blocking socket always writes the whole
 * buffer (see send_record). On Linux it nearly always does, so the program
 * passes its own check run after run. POSIX allows a short write (a signal,
 * SO_SNDTIMEO, a full buffer on some systems), and when one happens the tail
 * of a record is never sent: the receiver then reads the next record's
 * header from the middle of a payload.
 *
 * usage: blobcopy [RECORDS]     (default 2000)
 * Prints "OK: ..." and exits 0, or "FAILED: ..." and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC 0xB10Bu
#define MAX_PAYLOAD 4096

struct header {
  uint32_t magic;
  uint32_t seq;
  uint32_t len;
  uint32_t sum;
};

static int records = 2000;
static int sock_send, sock_recv;

static uint32_t next_rand(uint32_t* s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

/* Record seq's payload: its length and bytes depend only on seq. */
static uint32_t make_payload(uint32_t seq, unsigned char* out) {
  uint32_t s = seq * 2654435761u + 1;
  uint32_t len = 64 + next_rand(&s) % (MAX_PAYLOAD - 64);
  for (uint32_t i = 0; i < len; i++) out[i] = (unsigned char)next_rand(&s);
  return len;
}

static uint32_t checksum(const unsigned char* p, uint32_t len) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < len; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/* THE BUG: a short write is taken for a complete one. */
static void send_record(uint32_t seq) {
  unsigned char buf[sizeof(struct header) + MAX_PAYLOAD];
  struct header* h = (struct header*)buf;
  h->magic = MAGIC;
  h->seq = seq;
  h->len = make_payload(seq, buf + sizeof *h);
  h->sum = checksum(buf + sizeof *h, h->len);
  if (write(sock_send, buf, sizeof *h + h->len) < 0) {
    perror("blobcopy: write");
    exit(1);
  }
}

static void* sender(void* arg) {
  for (int i = 0; i < records; i++) send_record((uint32_t)i);
  shutdown(sock_send, SHUT_WR);
  return arg;
}

/* The receiver does it right: it loops until it has what it asked for. */
static int read_full(int fd, void* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char*)p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static char verdict[256];

static void* receiver(void* arg) {
  unsigned char payload[MAX_PAYLOAD];
  unsigned long bytes = 0;
  uint32_t all = 0;
  for (int i = 0; i < records; i++) {
    struct header h;
    if (read_full(sock_recv, &h, sizeof h) != 0) {
      snprintf(verdict, sizeof verdict, "FAILED: the stream ended before record %d of %d", i, records);
      return arg;
    }
    if (h.magic != MAGIC || h.seq != (uint32_t)i || h.len > MAX_PAYLOAD) {
      snprintf(verdict, sizeof verdict,
               "FAILED: record %d: header says magic %#x seq %u len %u at stream byte %lu - bytes were lost", i,
               h.magic, h.seq, h.len, bytes);
      return arg;
    }
    if (read_full(sock_recv, payload, h.len) != 0 || checksum(payload, h.len) != h.sum) {
      snprintf(verdict, sizeof verdict, "FAILED: record %d: payload does not match its checksum - bytes were lost",
               i);
      return arg;
    }
    bytes += sizeof h + h.len;
    all = all * 31 + h.sum;
  }
  snprintf(verdict, sizeof verdict, "OK: %d records, %lu bytes, checksum %08x", records, bytes, all);
  return arg;
}

int main(int argc, char** argv) {
  if (argc > 1) records = atoi(argv[1]);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
      getsockname(l, (struct sockaddr*)&a, &alen) < 0) {
    perror("blobcopy: listen");
    return 2;
  }
  sock_send = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(sock_send, (struct sockaddr*)&a, sizeof a) < 0) {
    perror("blobcopy: connect");
    return 2;
  }
  sock_recv = accept(l, NULL, NULL);
  close(l);
  pthread_t ts, tr;
  pthread_create(&tr, NULL, receiver, NULL);
  pthread_create(&ts, NULL, sender, NULL);
  pthread_join(tr, NULL);
  puts(verdict);
  if (strncmp(verdict, "OK", 2) != 0) return 1; /* the sender may be stuck writing to nobody */
  pthread_join(ts, NULL);
  return 0;
}
