/* Every futex(2) request GLib, Rust's std, libstdc++ and absl make, called
 * directly with syscall(SYS_futex, ...) between threads of one process (all
 * fibers under the preload): results, errno and timing rules as the kernel
 * gives them. The plain run is the reference. */
#include <signal.h>

#include "common.h"

static void* nothing(void* a) { return a; }

struct waiter {
  uint32_t* word;
  int op;
  uint32_t val;
  uint32_t bitset;
  const struct timespec* ts;
  long result;
  int err;
  pthread_t thread;
};

static void* wait_main(void* p) {
  struct waiter* w = p;
  errno = 0;
  w->result = fx(w->word, w->op, w->val, w->ts, NULL, w->bitset);
  w->err = errno;
  return NULL;
}

static void start(struct waiter* w, uint32_t* word, int op, uint32_t val, uint32_t bitset) {
  memset(w, 0, sizeof *w);
  w->word = word;
  w->op = op;
  w->val = val;
  w->bitset = bitset;
  pthread_create(&w->thread, NULL, wait_main, w);
}

static const char* joined(struct waiter* w) {
  pthread_join(w->thread, NULL);
  errno = w->err;
  return res(w->result);
}

/* syscall() is no cancellation point: a deferred request waits for the
 * next one, and the wait neither ends nor spins meanwhile. */
static uint32_t cancel_word;
static void* cancel_target(void* arg) {
  long r = fx(&cancel_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  *(long*)arg = r;
  pthread_testcancel();
  return NULL;
}

static volatile int handled;
static void on_usr1(int sig) { handled++; }
static uint32_t* handler_sets;
static void on_usr2(int sig) {
  handled++;
  __atomic_store_n(handler_sets, 1, __ATOMIC_SEQ_CST);
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, nothing, NULL); /* under the preload: the runtime starts, main is a fiber */
  pthread_join(t, NULL);

  static uint32_t w, a, b;
  struct timespec ts = {0, 30 * 1000000L};
  long r;

  /* Value checks and errors. */
  printf("WAIT value differs: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0)));
  printf("WAIT_BITSET value differs: %s\n", res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 1, NULL, NULL, -1)));
  printf("WAIT bitset 0: %s\n", res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 0)));
  printf("WAKE_BITSET bitset 0: %s\n", res(fx(&w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0)));
  printf("WAIT misaligned: %s\n", res(fx((char*)&w + 1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0)));
  printf("WAKE misaligned: %s\n", res(fx((char*)&w + 2, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  printf("WAIT NULL: %s\n", res(fx(NULL, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0)));
  printf("WAKE NULL: %s\n", res(fx(NULL, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  struct timespec bad_ns = {0, 1000000000L}, neg = {-1, 0};
  printf("WAIT tv_nsec 1e9: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 0, &bad_ns, NULL, 0)));
  printf("WAIT tv_nsec 1e9, value differs: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 1, &bad_ns, NULL, 0)));
  printf("WAIT_BITSET tv_sec -1: %s\n", res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 0, &neg, NULL, -1)));
  printf("WAIT|CLOCK_REALTIME: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE | FUTEX_CLOCK_REALTIME, 0, &ts, NULL, 0)));
  printf("WAKE|CLOCK_REALTIME: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0)));
  printf("op 99: %s\n", res(fx(&w, 99 | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0)));
  printf("CMP_REQUEUE nr_requeue -1: %s\n", res(fx(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void*)-1L, &a, 0)));
  printf("REQUEUE nr_wake -1: %s\n", res(fx(&w, FUTEX_REQUEUE_PRIVATE, -1, (void*)1L, &a, 0)));
  printf("CMP_REQUEUE value differs: %s\n", res(fx(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void*)1L, &a, 5)));
  printf("CMP_REQUEUE misaligned target: %s\n", res(fx(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void*)1L, (char*)&a + 1, 0)));
  printf("WAKE nobody: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));

  /* Timeouts: FUTEX_WAIT relative (monotonic), WAIT_BITSET absolute on either clock. */
  double t0 = now_s(CLOCK_MONOTONIC);
  r = fx(&w, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
  printf("WAIT 30 ms relative: %s, late enough %d\n", res(r), now_s(CLOCK_MONOTONIC) - t0 >= 0.029);
  struct timespec mono = abs_in_ms(CLOCK_MONOTONIC, 30);
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 0, &mono, NULL, FUTEX_BITSET_MATCH_ANY);
  struct timespec after;
  clock_gettime(CLOCK_MONOTONIC, &after);
  printf("WAIT_BITSET monotonic absolute: %s, late enough %d\n", res(r),
         after.tv_sec > mono.tv_sec || (after.tv_sec == mono.tv_sec && after.tv_nsec >= mono.tv_nsec));
  struct timespec real = abs_in_ms(CLOCK_REALTIME, 30);
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 0, &real, NULL, FUTEX_BITSET_MATCH_ANY);
  clock_gettime(CLOCK_REALTIME, &after);
  printf("WAIT_BITSET realtime absolute: %s, late enough %d\n", res(r),
         after.tv_sec > real.tv_sec || (after.tv_sec == real.tv_sec && after.tv_nsec >= real.tv_nsec));
  struct timespec past = {1, 0};
  printf("WAIT_BITSET absolute in the past: %s\n", res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 0, &past, NULL, -1)));
  printf("WAIT_BITSET absolute in the past, value differs: %s\n",
         res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 1, &past, NULL, -1)));
  struct timespec zero = {0, 0};
  printf("WAIT relative 0: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 0, &zero, NULL, 0)));

  /* Wake counts: n = 0 and n < 0 still wake one, the kernel counts after waking. */
  struct waiter ws[6];
  for (int i = 0; i < 3; ++i) start(&ws[i], &w, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_waiters(&w, 3);
  printf("WAKE 0 with 3 waiting: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0)));
  printf("WAKE -1 with 2 waiting: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, -1, NULL, NULL, 0)));
  printf("WAKE 10 with 1 waiting: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  for (int i = 0; i < 3; ++i) printf("  waiter %d: %s\n", i, joined(&ws[i]));

  /* Bitsets: a wake reaches the waiters whose bitset shares a bit with its own. */
  start(&ws[0], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 1);
  start(&ws[1], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 2);
  start(&ws[2], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 6);
  start(&ws[3], &w, FUTEX_WAIT_PRIVATE, 0, 0); /* FUTEX_WAIT: every bit */
  wait_for_waiters(&w, 4);
  printf("WAKE_BITSET 8: %s\n", res(fx(&w, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 8)));
  printf("WAKE_BITSET 4: %s\n", res(fx(&w, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 4)));
  printf("WAKE_BITSET 1: %s\n", res(fx(&w, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 1)));
  printf("WAKE (all bits): %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  for (int i = 0; i < 4; ++i) printf("  waiter %d: %s\n", i, joined(&ws[i]));

  /* REQUEUE: wake some, move some, leave the rest. */
  for (int i = 0; i < 5; ++i) start(&ws[i], &a, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_waiters(&a, 5);
  printf("REQUEUE a->b wake 1 move 2: %s\n", res(fx(&a, FUTEX_REQUEUE_PRIVATE, 1, (void*)2L, &b, 0)));
  printf("WAKE b 10: %s\n", res(fx(&b, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  printf("CMP_REQUEUE a->b wrong value: %s\n", res(fx(&a, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void*)1L, &b, 7)));
  printf("CMP_REQUEUE a->b wake 0 move 1: %s\n", res(fx(&a, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void*)1L, &b, 0)));
  printf("WAKE a 10: %s\n", res(fx(&a, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  printf("WAKE b 10: %s\n", res(fx(&b, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  for (int i = 0; i < 5; ++i) printf("  waiter %d: %s\n", i, joined(&ws[i]));

  /* WAKE_OP: *b = op(*b); wake on a; wake on b if cmp(old b). */
  a = b = 0;
  for (int i = 0; i < 2; ++i) start(&ws[i], &a, FUTEX_WAIT_PRIVATE, 0, 0);
  for (int i = 2; i < 4; ++i) start(&ws[i], &b, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_waiters(&a, 2);
  wait_for_waiters(&b, 2);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_NE, 0));
  printf("WAKE_OP add 5, old b != 0: %s, b = %u\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, FUTEX_OP(FUTEX_OP_OR, 2, FUTEX_OP_CMP_EQ, 5));
  printf("WAKE_OP or 2, old b == 5: %s, b = %u\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)5L, &b,
         FUTEX_OP((FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT), 4, FUTEX_OP_CMP_GT, -1));
  printf("WAKE_OP set 1<<4, old b > -1: %s, b = %u\n", res(r), b);
  for (int i = 0; i < 4; ++i) printf("  waiter %d: %s\n", i, joined(&ws[i]));
  b = 9;
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, FUTEX_OP(FUTEX_OP_ANDN, 1, FUTEX_OP_CMP_LT, 0));
  printf("WAKE_OP andn 1 nobody waiting: %s, b = %u\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, FUTEX_OP(FUTEX_OP_XOR, 3, FUTEX_OP_CMP_GE, 0));
  printf("WAKE_OP xor 3: %s, b = %u\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, (7u << 28));
  printf("WAKE_OP unknown op: %s, b = %u\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, &b, FUTEX_OP(FUTEX_OP_SET, 42, 9, 0));
  printf("WAKE_OP unknown comparison: %s, b = %u (the operation was applied)\n", res(r), b);
  r = fx(&a, FUTEX_WAKE_OP_PRIVATE, 1, (void*)1L, (char*)&b + 1, FUTEX_OP(FUTEX_OP_SET, 1, 0, 0));
  printf("WAKE_OP misaligned: %s\n", res(r));

  /* Process-shared requests on private memory (libstdc++ 12's atomic wait
   * makes them): a namespace of their own, apart from private ones. */
  w = 0;
  start(&ws[0], &w, FUTEX_WAIT, 0, 0);
  start(&ws[1], &w, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_shared_waiters(&w, 1);
  wait_for_waiters(&w, 1);
  printf("shared WAKE with a shared and a private waiter: %s\n", res(fx(&w, FUTEX_WAKE, 10, NULL, NULL, 0)));
  printf("private WAKE: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  for (int i = 0; i < 2; ++i) printf("  waiter %d: %s\n", i, joined(&ws[i]));
  start(&ws[0], &a, FUTEX_WAIT, 0, 0);
  wait_for_shared_waiters(&a, 1);
  a = 0;
  printf("shared REQUEUE a->b: %s\n", res(fx(&a, FUTEX_CMP_REQUEUE, 0, (void*)1L, &b, 0)));
  printf("shared WAKE b: %s\n", res(fx(&b, FUTEX_WAKE, 1, NULL, NULL, 0)));
  printf("  waiter: %s\n", joined(&ws[0]));

  /* Signals: a timed wait fails with EINTR even under SA_RESTART; an untimed
   * one fails without SA_RESTART and is restarted with it (and the restart
   * compares the value again). */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  struct timespec long_ts = {5, 0};
  w = 0;
  start(&ws[0], &w, FUTEX_WAIT_PRIVATE, 0, 0);
  ws[0].ts = NULL;
  memset(&ws[1], 0, sizeof ws[1]);
  ws[1].word = &w;
  ws[1].op = FUTEX_WAIT_PRIVATE;
  ws[1].ts = &long_ts;
  pthread_create(&ws[1].thread, NULL, wait_main, &ws[1]);
  wait_for_waiters(&w, 2);
  pthread_kill(ws[1].thread, SIGUSR1);
  printf("timed wait, SA_RESTART handler: %s\n", joined(&ws[1]));
  pthread_kill(ws[0].thread, SIGUSR1);
  for (int i = 0; i < 20000 && handled < 2; ++i) sleep_ms(1);
  wait_for_waiters(&w, 1); /* restarted */
  printf("untimed wait, SA_RESTART handler ran %d, still waiting; WAKE: %s\n", handled,
         res(fx(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  printf("  waiter: %s\n", joined(&ws[0]));

  sa.sa_flags = 0;
  sigaction(SIGUSR1, &sa, NULL);
  start(&ws[0], &w, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_waiters(&w, 1);
  pthread_kill(ws[0].thread, SIGUSR1);
  printf("untimed wait, handler without SA_RESTART: %s\n", joined(&ws[0]));

  handler_sets = &w;
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
  w = 0;
  start(&ws[0], &w, FUTEX_WAIT_PRIVATE, 0, 0);
  wait_for_waiters(&w, 1);
  pthread_kill(ws[0].thread, SIGUSR2);
  printf("untimed wait restarted after the handler changed the word: %s\n", joined(&ws[0]));
  printf("handlers run: %d\n", handled);

  long cancel_result = -2;
  pthread_create(&t, NULL, cancel_target, &cancel_result);
  wait_for_waiters(&cancel_word, 1);
  struct timespec c0, c1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  pthread_cancel(t);
  sleep_ms(200);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
  printf("cancel request during a futex wait: still waiting %d, no spinning %d\n", cancel_result == -2, cpu < 0.1);
  __atomic_store_n(&cancel_word, 1, __ATOMIC_SEQ_CST);
  printf("WAKE: %s\n", res(fx(&cancel_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  void* ret;
  pthread_join(t, &ret);
  printf("  the wait returned %ld, then the thread was cancelled %d\n", cancel_result, ret == PTHREAD_CANCELED);
  return 0;
}
