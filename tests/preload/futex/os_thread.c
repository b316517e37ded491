/* Raw futexes between fibers and a plain OS thread (a thread with a
 * program-supplied stack runs as an ordinary OS thread under the preload,
 * and its waits stay the kernel's): wakes reach across in both directions,
 * for WAKE, WAKE_BITSET, REQUEUE (a plain waiter moved to another word and
 * woken there by a fiber) and WAKE_OP, and a 2,000-round ping-pong loses no
 * wake-up. */
#include "common.h"

static uint32_t word, other, ping, pong;

static pthread_t plain_thread(void* (*fn)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  size_t size = 256 * 1024;
  void* stack = aligned_alloc(4096, size);
  pthread_attr_setstack(&attr, stack, size);
  pthread_t t;
  if (pthread_create(&t, &attr, fn, arg) != 0) {
    printf("pthread_create with a stack failed\n");
    exit(2);
  }
  pthread_attr_destroy(&attr);
  return t;
}

/* Waits until *w != old. */
static long wait_change(uint32_t* w, uint32_t old, int op, uint32_t bitset) {
  long r = 0;
  while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == old) {
    r = fx(w, op, old, NULL, NULL, bitset);
    if (r < 0 && errno != EAGAIN && errno != EINTR) return r;
  }
  return 0;
}

static long wait_once(uint32_t* w, uint32_t val) { return fx(w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0); }

static void* plain_waits(void* arg) {
  long* out = arg;
  *out = wait_once(&word, 0);
  return NULL;
}

static void* plain_waits_other(void* arg) {
  long* out = arg;
  *out = wait_once(&other, 0);
  return NULL;
}

static int rounds = 2000;
static void* plain_pong(void* arg) {
  for (int i = 0; i < rounds; ++i) {
    wait_change(&ping, (uint32_t)i, FUTEX_WAIT_PRIVATE, 0);
    __atomic_store_n(&pong, (uint32_t)(i + 1), __ATOMIC_RELEASE);
    fx(&pong, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
  return NULL;
}

static void* fiber_waits(void* arg) {
  long* out = arg;
  *out = wait_once(&word, 0);
  return NULL;
}

static void* fiber_waits_bitset(void* arg) {
  long* out = arg;
  *out = fx(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 4);
  return NULL;
}

struct wake_req {
  int op;
  uint32_t* uaddr;
  long val;
  long val2;
  uint32_t* uaddr2;
  long val3;
  long result;
};

static void* plain_wakes(void* arg) {
  struct wake_req* q = arg;
  wait_for_waiters(&word, 1);
  q->result = fx(q->uaddr, q->op, q->val, (void*)q->val2, q->uaddr2, q->val3);
  return NULL;
}

static void wake_from_plain(const char* what, void* (*waiter)(void*), struct wake_req q) {
  long got = -2;
  pthread_t f;
  pthread_create(&f, NULL, waiter, &got); /* a fiber under the preload */
  pthread_t p = plain_thread(plain_wakes, &q);
  pthread_join(p, NULL);
  pthread_join(f, NULL);
  printf("plain thread %s wakes a fiber: %ld, the fiber's wait returned %ld\n", what, q.result, got);
}

static void* nothing(void* a) { return a; }

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);

  /* Fiber (main) wakes a plain thread. */
  long got = -2;
  pthread_t p = plain_thread(plain_waits, &got);
  wait_for_waiters(&word, 1);
  printf("fiber WAKE of a plain waiter: %s\n", res(fx(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  pthread_join(p, NULL);
  printf("  its wait returned %ld\n", got);

  /* A plain waiter requeued by a fiber to another word, woken there by a fiber. */
  got = -2;
  p = plain_thread(plain_waits, &got);
  wait_for_waiters(&word, 1);
  printf("fiber CMP_REQUEUE of a plain waiter: %s\n",
         res(fx(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void*)1L, &other, 0)));
  printf("fiber WAKE on the old word: %s\n", res(fx(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  printf("fiber WAKE on the new word: %s\n", res(fx(&other, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  pthread_join(p, NULL);
  printf("  its wait returned %ld\n", got);

  /* WAKE_OP from a fiber reaching a plain waiter on the second word. */
  got = -2;
  other = 0;
  p = plain_thread(plain_waits_other, &got);
  wait_for_waiters(&other, 1);
  printf("fiber WAKE_OP reaching a plain waiter: %s\n",
         res(fx(&word, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &other, FUTEX_OP(FUTEX_OP_ADD, 0, FUTEX_OP_CMP_EQ, 0))));
  pthread_join(p, NULL);
  printf("  its wait returned %ld\n", got);

  /* Plain threads wake fibers. */
  wake_from_plain("WAKE", fiber_waits, (struct wake_req){FUTEX_WAKE_PRIVATE, &word, 1, 0, NULL, 0, 0});
  wake_from_plain("WAKE_BITSET 4", fiber_waits_bitset,
                  (struct wake_req){FUTEX_WAKE_BITSET_PRIVATE, &word, 1, 0, NULL, 4, 0});
  wake_from_plain("WAKE_OP", fiber_waits,
                  (struct wake_req){FUTEX_WAKE_OP_PRIVATE, &other, 1, 1, &word,
                                    FUTEX_OP(FUTEX_OP_ADD, 0, FUTEX_OP_CMP_EQ, 0), 0});
  word = 0;
  wake_from_plain("REQUEUE (wake 1)", fiber_waits, (struct wake_req){FUTEX_REQUEUE_PRIVATE, &word, 1, 0, &other, 0, 0});

  /* Ping-pong: main (a fiber) and a plain thread, each waiting for the other. */
  p = plain_thread(plain_pong, NULL);
  for (int i = 0; i < rounds; ++i) {
    __atomic_store_n(&ping, (uint32_t)(i + 1), __ATOMIC_RELEASE);
    fx(&ping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    wait_change(&pong, (uint32_t)i, FUTEX_WAIT_PRIVATE, 0);
  }
  pthread_join(p, NULL);
  printf("ping-pong with a plain thread: %u rounds\n", pong);
  return 0;
}
