/* Loopback sockets for the I/O test programs. */
#ifndef IO_TEST_LOOPBACK_H
#define IO_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* A socket of the given type bound to 127.0.0.1 on a free port; *a gets
 * its address. */
__attribute__((unused)) static int bound_loopback(int type, struct sockaddr_in* a) {
  int s = socket(AF_INET, type, 0);
  struct sockaddr_in any = {.sin_family = AF_INET};
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, (struct sockaddr*)&any, sizeof any);
  socklen_t len = sizeof *a;
  getsockname(s, (struct sockaddr*)a, &len);
  return s;
}

#endif
