// getnameinfo(NI_NUMERICHOST) and getaddrinfo(AI_NUMERICHOST|AI_NUMERICSERV)
// only format and parse addresses. Under the preload they must not hand the
// worker to another OS thread as a real lookup does (hooks/resolve.cpp):
// 4 threads call them 200 times each, yielding in between so that others are
// always waiting; the test checks the hand-off counter. Prints the results.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum { kThreads = 4, kCalls = 200 };

static void* run(void* arg) {
  long id = (long)arg;
  long good = 0;
  for (int i = 0; i < kCalls; i++) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(1000 + i))};
    a.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)id);
    char host[NI_MAXHOST], serv[NI_MAXSERV], want[32];
    int rc = getnameinfo((struct sockaddr*)&a, sizeof a, host, sizeof host, serv, sizeof serv,
                         NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(want, sizeof want, "127.0.0.%ld", 1 + id);
    if (rc == 0 && strcmp(host, want) == 0 && atoi(serv) == 1000 + i) good++;
    rc = getnameinfo((struct sockaddr*)&a, sizeof a, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    if (rc == 0 && strcmp(host, want) == 0) good++;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *res = NULL;
    if (getaddrinfo(want, "8080", &hints, &res) == 0) {
      struct sockaddr_in* s = (struct sockaddr_in*)res->ai_addr;
      if (ntohs(s->sin_port) == 8080 && s->sin_addr.s_addr == a.sin_addr.s_addr) good++;
      freeaddrinfo(res);
    }
    sched_yield();
  }
  return (void*)good;
}

int main(void) {
  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; i++) pthread_create(&t[i], NULL, run, (void*)i);
  for (int i = 0; i < kThreads; i++) {
    void* good;
    pthread_join(t[i], &good);
    printf("thread %d: %ld of %d numeric conversions right\n", i, (long)good, 3 * kCalls);
  }
  return 0;
}
