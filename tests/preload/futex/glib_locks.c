/* GLib's own locks on raw futexes: GMutex, GRecMutex, GCond and g_bit_lock
 * all wait with syscall(SYS_futex, ...), not pthread. 100 threads take 48
 * GMutexes at random (trylock, then lock, yielding three times while
 * holding one); producers and consumers pass items through a GCond-guarded
 * queue; threads share bits of one word with g_bit_lock. Under the preload
 * every waiter is a fiber: a wait that blocked its carrier would hang. */
#include <glib.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 100
#define MUTEXES 48
#define ROUNDS 300

static GMutex mutexes[MUTEXES];
static long counters[MUTEXES];
static long trylock_ok, trylock_busy;
static GMutex stats_mu;

static unsigned next_rand(unsigned* s) {
  *s = *s * 1103515245u + 12345u;
  return (*s >> 8) & 0xffffff;
}

static gpointer mutex_worker(gpointer arg) {
  unsigned seed = GPOINTER_TO_UINT(arg) * 7919u + 1;
  long ok = 0, busy = 0;
  for (int i = 0; i < ROUNDS; ++i) {
    int m = next_rand(&seed) % MUTEXES;
    if (g_mutex_trylock(&mutexes[m])) {
      ++ok;
    } else {
      ++busy;
      g_mutex_lock(&mutexes[m]);
    }
    long v = counters[m];
    for (int y = 0; y < 3; ++y) sched_yield();
    counters[m] = v + 1;
    g_mutex_unlock(&mutexes[m]);
  }
  g_mutex_lock(&stats_mu);
  trylock_ok += ok;
  trylock_busy += busy;
  g_mutex_unlock(&stats_mu);
  return NULL;
}

/* A bounded queue on one GMutex and two GConds. */
#define QCAP 4
#define PRODUCERS 8
#define ITEMS 500
static GMutex q_mu;
static GCond q_not_empty, q_not_full;
static int q_items[QCAP];
static int q_head, q_len;
static long consumed_sum;

static gpointer producer(gpointer arg) {
  int base = GPOINTER_TO_INT(arg) * ITEMS;
  for (int i = 0; i < ITEMS; ++i) {
    g_mutex_lock(&q_mu);
    while (q_len == QCAP) g_cond_wait(&q_not_full, &q_mu);
    q_items[(q_head + q_len) % QCAP] = base + i;
    ++q_len;
    g_cond_signal(&q_not_empty);
    g_mutex_unlock(&q_mu);
  }
  return NULL;
}

static gpointer consumer(gpointer arg) {
  long sum = 0;
  for (int i = 0; i < ITEMS; ++i) {
    g_mutex_lock(&q_mu);
    while (q_len == 0) g_cond_wait(&q_not_empty, &q_mu);
    sum += q_items[q_head];
    q_head = (q_head + 1) % QCAP;
    --q_len;
    g_cond_broadcast(&q_not_full);
    g_mutex_unlock(&q_mu);
  }
  g_mutex_lock(&q_mu);
  consumed_sum += sum;
  g_mutex_unlock(&q_mu);
  return NULL;
}

/* g_bit_lock: 32 threads, 4 bits of one word, each bit guarding a counter. */
static volatile gint bits;
static long bit_counters[4];

static gpointer bit_worker(gpointer arg) {
  int b = GPOINTER_TO_INT(arg) % 4;
  for (int i = 0; i < 200; ++i) {
    g_bit_lock(&bits, b);
    long v = bit_counters[b];
    sched_yield();
    bit_counters[b] = v + 1;
    g_bit_unlock(&bits, b);
  }
  return NULL;
}

/* GRecMutex, taken twice by each thread, and a timed GCond wait that times out. */
static GRecMutex rec;
static long rec_counter;
static gpointer rec_worker(gpointer arg) {
  for (int i = 0; i < 100; ++i) {
    g_rec_mutex_lock(&rec);
    g_rec_mutex_lock(&rec);
    long v = rec_counter;
    sched_yield();
    rec_counter = v + 1;
    g_rec_mutex_unlock(&rec);
    g_rec_mutex_unlock(&rec);
  }
  return NULL;
}

int main(void) {
  GThread* t[THREADS];
  for (int i = 0; i < THREADS; ++i) t[i] = g_thread_new("m", mutex_worker, GUINT_TO_POINTER(i));
  for (int i = 0; i < THREADS; ++i) g_thread_join(t[i]);
  long total = 0;
  for (int i = 0; i < MUTEXES; ++i) total += counters[i];
  printf("gmutex: %d threads x %d rounds: total %ld (trylock ok+busy %ld)\n", THREADS, ROUNDS, total,
         trylock_ok + trylock_busy);

  GThread* p[PRODUCERS];
  GThread* c[PRODUCERS];
  for (int i = 0; i < PRODUCERS; ++i) {
    p[i] = g_thread_new("p", producer, GINT_TO_POINTER(i));
    c[i] = g_thread_new("c", consumer, NULL);
  }
  for (int i = 0; i < PRODUCERS; ++i) {
    g_thread_join(p[i]);
    g_thread_join(c[i]);
  }
  long n = (long)PRODUCERS * ITEMS;
  printf("gcond queue: sum %ld (expected %ld)\n", consumed_sum, n * (n - 1) / 2);

  GThread* b[32];
  for (int i = 0; i < 32; ++i) b[i] = g_thread_new("b", bit_worker, GINT_TO_POINTER(i));
  for (int i = 0; i < 32; ++i) g_thread_join(b[i]);
  printf("g_bit_lock: %ld %ld %ld %ld, word %d\n", bit_counters[0], bit_counters[1], bit_counters[2],
         bit_counters[3], bits);

  GThread* r[16];
  for (int i = 0; i < 16; ++i) r[i] = g_thread_new("r", rec_worker, NULL);
  for (int i = 0; i < 16; ++i) g_thread_join(r[i]);
  printf("grecmutex: %ld\n", rec_counter);

  GMutex m;
  GCond cv;
  g_mutex_init(&m);
  g_cond_init(&cv);
  g_mutex_lock(&m);
  gint64 end = g_get_monotonic_time() + 50 * G_TIME_SPAN_MILLISECOND;
  gboolean signalled = g_cond_wait_until(&cv, &m, end);
  printf("g_cond_wait_until with nobody signalling: %s, late enough: %d\n", signalled ? "signalled" : "timed out",
         g_get_monotonic_time() >= end);
  g_mutex_unlock(&m);
  return 0;
}
