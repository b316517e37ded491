// Reads of zero bytes return 0 at once, pending data or not, and consume
// nothing: read(2) of a socket is not recv(2) here (recv of zero bytes waits
// for a datagram and consumes it). Once made a fiber hang for ever.
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void* run(void* arg) {
  (void)arg;
  int sv[2], p[2];
  char buf[16];
  struct iovec empty = {buf, 0};
  socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
  send(sv[1], "", 0, 0);
  send(sv[1], "x", 1, 0);
  printf("datagram, read 0 with two pending: %zd\n", read(sv[0], buf, 0));
  printf("then read 16 (the empty datagram): %zd\n", read(sv[0], buf, 16));
  printf("then read 16: %zd\n", read(sv[0], buf, 16));
  printf("datagram, read 0 with none pending: %zd\n", read(sv[0], buf, 0));
  printf("datagram, readv of empty iovecs: %zd\n", readv(sv[0], &empty, 1));
  close(sv[0]);
  close(sv[1]);
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  printf("stream, read 0 with none pending: %zd\n", read(sv[0], buf, 0));
  close(sv[0]);
  close(sv[1]);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(u, (struct sockaddr*)&a, sizeof a);
  printf("udp, read 0 with none pending: %zd\n", read(u, buf, 0));
  close(u);
  if (pipe(p) != 0) return NULL;
  printf("pipe, read 0 with none pending: %zd\n", read(p[0], buf, 0));
  printf("pipe, readv of empty iovecs: %zd\n", readv(p[0], &empty, 1));
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  return 0;
}
