// runtime_bench: what a program pays for switching, parking and waking
// under unblock, next to the same operations done by OS threads.
//
// The program is ordinary (sched_yield, sem_t, pthread_cond_t): run plain it
// measures OS threads, run with LD_PRELOAD=libunblock.so its threads are
// fibers and every call goes through the hooks into the scheduler - the
// path a real program takes, not an internal shortcut. scripts/bench runs it
// both ways (UNBLOCK_WORKERS=2 under the preload) and prints the two side by
// side under the same benchmark names.
//
// Each benchmark ping-pongs between main (the timed loop) and one partner
// thread; one iteration = one round trip = TWO hand-overs.
//   BM_yield_pingpong       both sched_yield in a loop; the partner counts its
//                           yields (partner_yields_per_iter ~1 shows strict
//                           alternation)
//   BM_sem_pingpong/P       sem_post to the other side, sem_wait for the reply:
//                           park + wake on each side
//   BM_cond_pingpong/P      the same with a mutex, a condition and a turn word
//   BM_futex_pingpong/P     raw syscall(SYS_futex) FUTEX_WAKE_PRIVATE to the
//                           other side, FUTEX_WAIT_PRIVATE for the reply (as
//                           GLib, Rust's std, libstdc++ wait): park + wake on
//                           each side, through the syscall() hook
// P (placement): 0 = same worker / same CPU, 1 = different workers / CPUs,
//   2 (futex only) = the partner is a thread with its own stack
//   (pthread_attr_setstack): a plain OS thread under unblock, main a fiber;
//   plain, pinned as for 1.
//   under unblock: the partner fiber is re-created until it lands on the
//     wanted worker (raw SYS_gettid shows the carrier, and main stays on
//     worker 0's carrier); carriers are not pinned.
//   plain: both threads are pinned to CPU 0 (P=0) or CPU 0 and CPU 1 (P=1).
// Yield ping-pong only makes sense on one worker / CPU (P=0).
// Times are real (wall-clock) times.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

bool g_fibers = false;  // sched_yield resolves to libunblock.so's hook

// The kernel's id of the OS thread running the caller: under unblock gettid()
// and syscall(SYS_gettid) give each thread (fiber) its own id, so ask the
// kernel directly, with the instruction.
pid_t raw_tid() {
  long ret;
  asm volatile("syscall" : "=a"(ret) : "0"(static_cast<long>(SYS_gettid)) : "rcx", "r11", "memory");
  return static_cast<pid_t>(ret);
}

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

struct Shared {
  int placement = 0;
  std::atomic<bool> stop{false};
  std::atomic<pid_t> partner_tid{0};
  pid_t main_tid = 0;  // raw tid of main's carrier when the partner was placed
  std::atomic<long> partner_count{0};
  sem_t to_partner, to_main;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int turn = 0;  // 0: main's turn, 1: partner's turn (under mu)
  uint32_t ping = 0, pong = 0;  // futex words: round numbers
  void (*loop)(Shared*) = nullptr;
  // The partner waits here until main accepted its placement (a partner on
  // the wrong worker is told to stop before it starts its loop).
  sem_t go;
};

void* partner_main(void* arg) {
  auto* s = static_cast<Shared*>(arg);
  if (!g_fibers) pin_to(s->placement != 0);
  s->partner_tid.store(raw_tid(), std::memory_order_release);
  sem_wait(&s->go);
  if (!s->stop.load(std::memory_order_acquire)) s->loop(s);
  return nullptr;
}

// Starts the partner where `placement` asks. False (and an error on the
// state) if it could not be placed.
bool start_partner(benchmark::State& st, Shared* s, pthread_t* t) {
  cpu_set_t old;
  sched_getaffinity(0, sizeof old, &old);
  if (!g_fibers && !pin_to(0)) {
    st.SkipWithError("cannot pin to CPU 0");
    return false;
  }
  if (!g_fibers && s->placement == 1 && sysconf(_SC_NPROCESSORS_ONLN) < 2) {
    st.SkipWithError("one CPU");
    return false;
  }
  pid_t me = raw_tid();
  s->main_tid = me;
  if (s->placement == 2) {
    // A program-supplied stack: an OS thread under unblock, wherever it lands.
    static char stack[256 * 1024] __attribute__((aligned(4096)));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, sizeof stack);
    int rc = pthread_create(t, &attr, partner_main, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      st.SkipWithError("pthread_create with a stack");
      return false;
    }
    while (s->partner_tid.load(std::memory_order_acquire) == 0) sched_yield();
    sem_post(&s->go);
    return true;
  }
  // Round-robin placement: a few attempts reach every worker.
  for (int attempt = 0; attempt < 16; ++attempt) {
    s->partner_tid.store(0);
    if (pthread_create(t, nullptr, partner_main, s) != 0) {
      st.SkipWithError("pthread_create");
      return false;
    }
    while (s->partner_tid.load(std::memory_order_acquire) == 0) sched_yield();
    bool same = s->partner_tid.load() == me;
    if (!g_fibers || same == (s->placement == 0)) {
      sem_post(&s->go);
      return true;
    }
    s->stop.store(true, std::memory_order_release);
    sem_post(&s->go);
    pthread_join(*t, nullptr);
    s->stop.store(false, std::memory_order_release);
  }
  st.SkipWithError(s->placement == 1 ? "partner never on another worker (UNBLOCK_WORKERS=1?)"
                                     : "partner never on main's worker");
  return false;
}

void finish(benchmark::State& st, Shared* s, pthread_t t, void (*release)(Shared*)) {
  s->stop.store(true, std::memory_order_release);
  release(s);
  pthread_join(t, nullptr);
  if (!g_fibers) {
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
    sched_setaffinity(0, sizeof all, &all);
  }
  st.counters["fibers"] = g_fibers;
  // 1 if main ended on another carrier: the monitor handed its worker off
  // (e.g. the VM preempted the carrier for over UNBLOCK_HANDOFF_US while it
  // ran the benchmark loop). Real time stays valid; CPU time, read from
  // per-OS-thread clocks, does not.
  st.counters["main_moved"] = raw_tid() != s->main_tid;
}

void init(Shared* s, int placement) {
  s->placement = placement;
  sem_init(&s->to_partner, 0, 0);
  sem_init(&s->to_main, 0, 0);
  sem_init(&s->go, 0, 0);
}

// ---- yield ----

void yield_loop(Shared* s) {
  long n = 0;
  while (!s->stop.load(std::memory_order_relaxed)) {
    sched_yield();
    ++n;
  }
  s->partner_count.store(n, std::memory_order_relaxed);
}

void BM_yield_pingpong(benchmark::State& st) {
  Shared s;
  init(&s, 0);
  s.loop = yield_loop;
  pthread_t t;
  if (!start_partner(st, &s, &t)) return;
  for (auto _ : st) sched_yield();
  finish(st, &s, t, [](Shared*) {});
  st.counters["partner_yields_per_iter"] =
      st.iterations() ? static_cast<double>(s.partner_count.load()) / static_cast<double>(st.iterations()) : 0;
}

// ---- semaphore ----

void sem_loop(Shared* s) {
  for (;;) {
    sem_wait(&s->to_partner);
    if (s->stop.load(std::memory_order_acquire)) return;
    sem_post(&s->to_main);
  }
}

void BM_sem_pingpong(benchmark::State& st) {
  Shared s;
  init(&s, static_cast<int>(st.range(0)));
  s.loop = sem_loop;
  pthread_t t;
  if (!start_partner(st, &s, &t)) return;
  for (auto _ : st) {
    sem_post(&s.to_partner);
    sem_wait(&s.to_main);
  }
  finish(st, &s, t, [](Shared* x) { sem_post(&x->to_partner); });
}

// ---- condition variable ----

void cond_loop(Shared* s) {
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->turn != 1 && !s->stop.load(std::memory_order_acquire)) pthread_cond_wait(&s->cv, &s->mu);
    if (s->stop.load(std::memory_order_acquire)) break;
    s->turn = 0;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
}

void BM_cond_pingpong(benchmark::State& st) {
  Shared s;
  init(&s, static_cast<int>(st.range(0)));
  s.loop = cond_loop;
  pthread_t t;
  if (!start_partner(st, &s, &t)) return;
  for (auto _ : st) {
    pthread_mutex_lock(&s.mu);
    s.turn = 1;
    pthread_cond_signal(&s.cv);
    while (s.turn != 0) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
  }
  finish(st, &s, t, [](Shared* x) {
    pthread_mutex_lock(&x->mu);
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
  });
}

// ---- raw futex ----

long futex(uint32_t* w, int op, uint32_t val) { return syscall(SYS_futex, w, op, val, nullptr, nullptr, 0); }

// Waits until *w reaches `want` (or stop).
void futex_await(Shared* s, uint32_t* w, uint32_t want) {
  for (uint32_t v; (v = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != want;) {
    if (s->stop.load(std::memory_order_acquire)) return;
    futex(w, FUTEX_WAIT_PRIVATE, v);
  }
}

void futex_post(uint32_t* w, uint32_t v) {
  __atomic_store_n(w, v, __ATOMIC_RELEASE);
  futex(w, FUTEX_WAKE_PRIVATE, 1);
}

void futex_loop(Shared* s) {
  for (uint32_t round = 1; !s->stop.load(std::memory_order_acquire); ++round) {
    futex_await(s, &s->ping, round);
    if (s->stop.load(std::memory_order_acquire)) return;
    futex_post(&s->pong, round);
  }
}

void BM_futex_pingpong(benchmark::State& st) {
  Shared s;
  init(&s, static_cast<int>(st.range(0)));
  s.loop = futex_loop;
  pthread_t t;
  if (!start_partner(st, &s, &t)) return;
  uint32_t round = 0;
  for (auto _ : st) {
    ++round;
    futex_post(&s.ping, round);
    futex_await(&s, &s.pong, round);
  }
  finish(st, &s, t, [](Shared* x) {
    __atomic_store_n(&x->ping, ~0u, __ATOMIC_RELEASE);
    futex(&x->ping, FUTEX_WAKE_PRIVATE, 1);
  });
}

}  // namespace

BENCHMARK(BM_yield_pingpong)->UseRealTime();
BENCHMARK(BM_sem_pingpong)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_cond_pingpong)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_futex_pingpong)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

int main(int argc, char** argv) {
  Dl_info info;
  g_fibers = dladdr(reinterpret_cast<void*>(&sched_yield), &info) && info.dli_fname &&
             strstr(info.dli_fname, "libunblock");
  benchmark::AddCustomContext("threads", g_fibers ? "unblock fibers" : "OS threads");
  const char* w = getenv("UNBLOCK_WORKERS");
  if (g_fibers) benchmark::AddCustomContext("unblock_workers", w ? w : "default");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
