// A listener accepting while many other threads are busy: 64 threads that
// never block (they send datagrams nobody reads, which always find room)
// and a client thread connecting 200 times, one echo each. Under the
// preload (two workers: the listener and the client are created one after
// the other, so they land on different workers and a connection arrives in
// the middle of the listener's worker's round) the accept completion is
// looked for after every fiber run, not once per round of runs
// (runtime/engine.h); the counters check that path was taken
// (urgent_reaps). Prints results, not timings.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

enum { kBusy = 64, kClients = 200 };

static atomic_int stop, sending;
static int listener;
static struct sockaddr_in sink;

static void* busy(void* arg) {
  (void)arg;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  connect(s, (struct sockaddr*)&sink, sizeof sink);
  long sent = 0;
  while (!atomic_load(&stop)) {
    if (send(s, "x", 1, 0) == 1 && sent++ == 0) atomic_fetch_add(&sending, 1);
  }
  close(s);
  return (void*)(intptr_t)(sent > 0);
}

static void* acceptor(void* arg) {
  (void)arg;
  long echoed = 0;
  for (int i = 0; i < kClients; i++) {
    int c = accept(listener, NULL, NULL);
    if (c < 0) break;
    char b;
    if (read(c, &b, 1) == 1 && write(c, &b, 1) == 1) echoed++;
    close(c);
  }
  return (void*)echoed;
}

static void* client(void* arg) {
  const struct sockaddr_in* a = arg;
  long ok = 0;
  for (int i = 0; i < kClients; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char c = (char)i, back = 0;
    if (connect(s, (const struct sockaddr*)a, sizeof *a) == 0 && write(s, &c, 1) == 1 && read(s, &back, 1) == 1 &&
        back == c)
      ok++;
    close(s);
  }
  return (void*)(intptr_t)ok;
}

int main(void) {
  struct sockaddr_in a;
  listener = bound_loopback(SOCK_STREAM, &a);
  listen(listener, 16);
  int r = bound_loopback(SOCK_DGRAM, &sink);
  pthread_t b[kBusy], acc, cli;
  for (int i = 0; i < kBusy; i++) pthread_create(&b[i], NULL, busy, NULL);
  while (atomic_load(&sending) < kBusy) usleep(1000);
  pthread_create(&acc, NULL, acceptor, NULL);
  pthread_create(&cli, NULL, client, &a);
  void* ok;
  pthread_join(cli, &ok);
  void* echoed;
  pthread_join(acc, &echoed);
  atomic_store(&stop, 1);
  int ran = 0;
  for (int i = 0; i < kBusy; i++) {
    void* r;
    pthread_join(b[i], &r);
    ran += r != NULL;
  }
  close(r);
  printf("clients answered: %ld of %d; acceptor echoed %ld; busy threads that ran: %d of %d\n", (long)(intptr_t)ok, kClients,
         (long)echoed, ran, kBusy);
  return 0;
}
