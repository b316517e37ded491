// Threads that all wait: in sleep, in a condition wait, in a blocking read.
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int p[2];

static void* sleeper(void* a) { sleep(30); return a; }
static void* waiter(void* a) {
  pthread_mutex_lock(&m);
  pthread_cond_wait(&c, &m);
  pthread_mutex_unlock(&m);
  return a;
}
static void* reader(void* a) {
  char b;
  read(p[0], &b, 1);
  return a;
}

int main(void) {
  pipe(p);
  pthread_t t;
  for (int i = 0; i < 10; i++) {
    pthread_create(&t, NULL, sleeper, NULL);
    pthread_create(&t, NULL, waiter, NULL);
    pthread_create(&t, NULL, reader, NULL);
  }
  sleep(30);
  return 0;
}
