// A thread-per-connection echo server and its clients in one program:
// accept, connect, read/write, recv/send, readv/writev, shutdown, close,
// every byte checked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kClients = 200, kMessages = 50, kSize = 100 };
static int listener;
static struct sockaddr_in addr;

static void* serve(void* arg) {
  int fd = (int)(long)arg;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w <= 0) goto out;
      off += w;
    }
  }
out:
  close(fd);
  return NULL;
}

static void* acceptor(void* arg) {
  (void)arg;
  for (int i = 0; i < kClients; i++) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      perror("accept");
      exit(1);
    }
    pthread_t t;
    pthread_create(&t, NULL, serve, (void*)(long)fd);
    pthread_detach(t);
  }
  return NULL;
}

static void* client(void* arg) {
  long id = (long)arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) return (void*)0;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  long good = 0;
  for (int m = 0; m < kMessages; m++) {
    char out[kSize], in[kSize];
    for (int i = 0; i < kSize; i++) out[i] = (char)(id * 31 + m * 7 + i);
    if (m % 2) {
      struct iovec v[2] = {{out, kSize / 2}, {out + kSize / 2, kSize - kSize / 2}};
      if (writev(fd, v, 2) != kSize) break;
    } else if (send(fd, out, kSize, 0) != kSize) {
      break;
    }
    size_t got = 0;
    while (got < kSize) {
      ssize_t n = m % 3 ? recv(fd, in + got, kSize - got, 0) : read(fd, in + got, kSize - got);
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got == kSize && memcmp(in, out, kSize) == 0) good++;
  }
  shutdown(fd, SHUT_WR);
  char c;
  ssize_t eof = recv(fd, &c, 1, 0);  // the server closes after our shutdown
  close(fd);
  return (void*)(good * 10 + (eof == 0));
}

int main(void) {
  listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listener, (struct sockaddr*)&addr, sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(listener, (struct sockaddr*)&addr, &len);
  listen(listener, 1024);
  pthread_t acc, c[kClients];
  pthread_create(&acc, NULL, acceptor, NULL);
  for (long i = 0; i < kClients; i++) pthread_create(&c[i], NULL, client, (void*)i);
  long total = 0, eofs = 0;
  for (int i = 0; i < kClients; i++) {
    void* r;
    pthread_join(c[i], &r);
    total += (long)r / 10;
    eofs += (long)r % 10;
  }
  pthread_join(acc, NULL);
  printf("echoed messages verified: %ld of %d, clean EOFs: %ld\n", total, kClients * kMessages, eofs);
  return 0;
}
