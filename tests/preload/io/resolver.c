// A name lookup that waits on a slow DNS server must not stall the other
// threads. The test runs in its own mount namespace with /etc/resolv.conf
// pointing at 127.0.0.1, where a thread of this program answers after 300 ms
// (or once the other threads are done, at most 4 s).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int dns;
static atomic_int finished;
static atomic_int finished_before_answer = -1;

static void* responder(void* arg) {
  (void)arg;
  unsigned char q[512];
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(dns, q, sizeof q, 0, (struct sockaddr*)&from, &fl);
  if (n < 12) return NULL;
  // A slow server: 300 ms at least, then until the other threads are done
  // (bounded below the resolver's 5 s timeout), so that a loaded machine
  // does not change the count, while a lookup that held the worker still
  // shows (nothing else runs until the answer).
  for (int waited = 0; waited < 300 || (atomic_load(&finished) < 100 && waited < 4000); ++waited) usleep(1000);
  atomic_store(&finished_before_answer, atomic_load(&finished));
  unsigned char r[600];
  memcpy(r, q, (size_t)n);
  r[2] = 0x81;
  r[3] = 0x80;  // response, recursion available, no error
  r[6] = 0;
  r[7] = 1;  // one answer
  r[8] = r[9] = r[10] = r[11] = 0;
  size_t len = (size_t)n;
  const unsigned char answer[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3};
  memcpy(r + len, answer, sizeof answer);
  len += sizeof answer;
  sendto(dns, r, len, 0, (struct sockaddr*)&from, fl);
  return NULL;
}

static void* worker(void* arg) {
  for (int i = 0; i < 20; i++) usleep(1000);
  atomic_fetch_add(&finished, 1);
  return arg;
}

int main(void) {
  if (geteuid() != 0) {
    printf("skipped: needs root for port 53\n");
    return 0;
  }
  dns = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(dns, (struct sockaddr*)&a, sizeof a) != 0) {
    printf("skipped: port 53 busy\n");
    return 0;
  }
  pthread_t resp, w[100];
  pthread_create(&resp, NULL, responder, NULL);
  for (long i = 0; i < 100; i++) pthread_create(&w[i], NULL, worker, (void*)i);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo("slow.unblock.test", "80", &hints, &res);
  char ip[32] = "none";
  if (rc == 0) inet_ntop(AF_INET, &((struct sockaddr_in*)res->ai_addr)->sin_addr, ip, sizeof ip);
  for (int i = 0; i < 100; i++) pthread_join(w[i], NULL);
  pthread_join(resp, NULL);
  printf("lookup: %s, threads finished while the server was slow: %d of 100\n", ip, atomic_load(&finished_before_answer));
  if (res) freeaddrinfo(res);
  return 0;
}
