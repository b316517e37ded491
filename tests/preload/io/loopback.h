/* Loopback sockets for the I/O test programs. */
#ifndef IO_TEST_LOOPBACK_H
#define IO_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* A UDP socket with IP_RECVERR connected to a loopback port nobody listens
 * on, one datagram sent there and 20 ms given to the ICMP port unreachable:
 * the error is pending (the next receive fails with ECONNREFUSED) and stays
 * in the error queue, so the socket polls ready after that. -1 on failure. */
__attribute__((unused)) static int udp_refused(void) {
  struct sockaddr_in a;
  int gone = bound_loopback(SOCK_DGRAM, &a);
  close(gone);
  int s = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
  if (setsockopt(s, IPPROTO_IP, IP_RECVERR, &one, sizeof one) || connect(s, (struct sockaddr*)&a, sizeof a) ||
      send(s, "x", 1, 0) != 1) {
    close(s);
    return -1;
  }
  usleep(20000);
  return s;
}

#endif
