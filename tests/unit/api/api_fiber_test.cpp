// runtime/api.h once the runtime runs: the first rt::thread_create starts it
// in this test process (no preload; gtest_discover_tests runs every test in
// a process of its own), adopts main as a fiber and runs the new threads as
// fibers. Only rt:: calls block here: the binary's own pthread_* calls are
// glibc's.
#include "runtime/api.h"

#include <gtest/gtest.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace rt = unblock::rt;

namespace {

constexpr pid_t kFirstFiberTid = 0x01000000;  // runtime/thread_ids.cpp

timespec in_ms(clockid_t clock, long ms) {
  timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_nsec += ms * 1000000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  return ts;
}

pthread_t spawn(void* (*fn)(void*), void* arg) {
  pthread_t t{};
  EXPECT_EQ(rt::thread_create(&t, nullptr, fn, arg), 0);
  return t;
}

}  // namespace

TEST(ApiFiber, JoinReturnsTheThreadsValueAndIdsAreFibers) {
  struct Seen {
    pid_t tid = 0;
  } seen;
  pthread_t t = spawn([](void* p) -> void* {
    static_cast<Seen*>(p)->tid = rt::gettid();
    return reinterpret_cast<void*>(42);
  }, &seen);
  void* ret = nullptr;
  ASSERT_EQ(rt::thread_join(t, &ret), 0);
  EXPECT_EQ(ret, reinterpret_cast<void*>(42));
  EXPECT_GE(seen.tid, kFirstFiberTid);
  EXPECT_EQ(rt::gettid(), getpid());  // main, adopted, keeps the kernel's id
  EXPECT_EQ(rt::thread_join(t, &ret), -ESRCH);  // joined already: the fiber is gone
}

TEST(ApiFiber, TryjoinTimedjoinAndDetach) {
  static sem_t go;
  ASSERT_EQ(rt::sem_init(&go, 0, 0), 0);
  pthread_t t = spawn([](void*) -> void* {
    rt::sem_wait(&go);
    return nullptr;
  }, nullptr);
  EXPECT_EQ(rt::thread_tryjoin(t, nullptr), -EBUSY);
  timespec ts = in_ms(CLOCK_REALTIME, 20);
  EXPECT_EQ(rt::thread_timedjoin(t, nullptr, &ts), -ETIMEDOUT);
  timespec bad{0, -1};
  EXPECT_EQ(rt::thread_timedjoin(t, nullptr, &bad), -EINVAL);
  EXPECT_EQ(rt::thread_clockjoin(t, nullptr, CLOCK_PROCESS_CPUTIME_ID, &ts), -EINVAL);
  EXPECT_EQ(rt::thread_join(pthread_self(), nullptr), -EDEADLK);
  ASSERT_EQ(rt::sem_post(&go), 0);
  EXPECT_EQ(rt::thread_join(t, nullptr), 0);

  pthread_t d = spawn([](void*) -> void* {
    rt::sem_wait(&go);
    return nullptr;
  }, nullptr);
  EXPECT_EQ(rt::thread_detach(d), 0);
  EXPECT_EQ(rt::thread_join(d, nullptr), -EINVAL);
  ASSERT_EQ(rt::sem_post(&go), 0);
}

TEST(ApiFiber, ThreadExitHandsItsValueToTheJoiner) {
  pthread_t t = spawn([](void*) -> void* {
    rt::thread_exit(reinterpret_cast<void*>(9));
  }, nullptr);
  void* ret = nullptr;
  ASSERT_EQ(rt::thread_join(t, &ret), 0);
  EXPECT_EQ(ret, reinterpret_cast<void*>(9));
}

namespace {
std::atomic<int> g_dtor_runs{0};
pthread_key_t g_key;
}  // namespace

TEST(ApiFiber, KeyDestructorsRunWhenAFiberEnds) {
  ASSERT_EQ(rt::key_create(&g_key, [](void* v) {
    EXPECT_EQ(v, reinterpret_cast<void*>(&g_dtor_runs));
    g_dtor_runs.fetch_add(1);
  }), 0);
  pthread_t t = spawn([](void*) -> void* {
    pthread_setspecific(g_key, &g_dtor_runs);
    return nullptr;
  }, nullptr);
  ASSERT_EQ(rt::thread_join(t, nullptr), 0);
  EXPECT_EQ(g_dtor_runs.load(), 1);
  EXPECT_EQ(rt::key_delete(g_key), 0);
}

TEST(ApiFiber, NamesAndSchedulingParametersArePerFiber) {
  static sem_t go;
  ASSERT_EQ(rt::sem_init(&go, 0, 0), 0);
  struct Seen {
    char name[16] = {};
  } seen;
  pthread_t t = spawn([](void* p) -> void* {
    rt::sem_wait(&go);
    rt::prctl(PR_GET_NAME, reinterpret_cast<unsigned long>(static_cast<Seen*>(p)->name), 0, 0, 0);
    return nullptr;
  }, &seen);
  EXPECT_EQ(rt::thread_setname(t, "0123456789abcdef"), -ERANGE);
  ASSERT_EQ(rt::thread_setname(t, "worker-7"), 0);
  char name[16];
  EXPECT_EQ(rt::thread_getname(t, name, 8), -ERANGE);
  ASSERT_EQ(rt::thread_getname(t, name, sizeof name), 0);
  EXPECT_STREQ(name, "worker-7");

  sched_param p{};
  EXPECT_EQ(rt::thread_setschedparam(t, 12345, &p), -EINVAL);
  p.sched_priority = 5;
  EXPECT_EQ(rt::thread_setschedparam(t, SCHED_OTHER, &p), -EINVAL);  // SCHED_OTHER takes priority 0
  p.sched_priority = 0;
  EXPECT_EQ(rt::thread_setschedparam(t, SCHED_BATCH, &p), 0);
  int policy = -1;
  ASSERT_EQ(rt::thread_getschedparam(t, &policy, &p), 0);
  EXPECT_EQ(policy, SCHED_BATCH);
  EXPECT_EQ(rt::sched_getscheduler(0), SCHED_OTHER);  // the caller's own is unchanged

  // The new thread's affinity is its own: recorded, never a carrier's.
  cpu_set_t none;
  CPU_ZERO(&none);
  EXPECT_EQ(rt::thread_setaffinity(t, sizeof none, &none), -EINVAL);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(rt::thread_setaffinity(t, sizeof one, &one), 0);
  cpu_set_t got;
  ASSERT_EQ(rt::thread_getaffinity(t, sizeof got, &got), 0);
  EXPECT_TRUE(CPU_EQUAL(&got, &one));

  ASSERT_EQ(rt::sem_post(&go), 0);
  ASSERT_EQ(rt::thread_join(t, nullptr), 0);
  EXPECT_STREQ(seen.name, "worker-7");
}

TEST(ApiFiber, SignalsToAFiberFollowPthreadKillRules) {
  static sem_t ready;
  ASSERT_EQ(rt::sem_init(&ready, 0, 0), 0);
  struct Seen {
    int sig = 0;
  } seen;
  pthread_t t = spawn([](void* p) -> void* {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    rt::thread_sigmask(SIG_BLOCK, &set, nullptr);
    rt::sem_post(&ready);
    rt::sigwait(&set, &static_cast<Seen*>(p)->sig);
    return nullptr;
  }, &seen);
  ASSERT_EQ(rt::sem_wait(&ready), 0);
  EXPECT_EQ(rt::thread_kill(t, 0), 0);
  EXPECT_EQ(rt::thread_kill(t, 32), -EINVAL);  // glibc's SIGCANCEL
  EXPECT_EQ(rt::thread_kill(t, 65), -EINVAL);
  ASSERT_EQ(rt::thread_kill(t, SIGUSR1), 0);
  ASSERT_EQ(rt::thread_join(t, nullptr), 0);
  EXPECT_EQ(seen.sig, SIGUSR1);
}

TEST(ApiFiber, FutexWaitOfAFiberIsWokenThroughSyscall) {
  static uint32_t word = 0;
  static sem_t started;
  ASSERT_EQ(rt::sem_init(&started, 0, 0), 0);
  pthread_t t = spawn([](void*) -> void* {
    rt::sem_post(&started);
    while (__atomic_load_n(&word, __ATOMIC_ACQUIRE) == 0) {
      long r = rt::syscall_futex(reinterpret_cast<long>(&word), FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
      if (r != 0 && r != -EAGAIN && r != -EINTR) return reinterpret_cast<void*>(r);
    }
    return nullptr;
  }, nullptr);
  ASSERT_EQ(rt::sem_wait(&started), 0);
  __atomic_store_n(&word, 1, __ATOMIC_RELEASE);
  long woken = rt::syscall_futex(reinterpret_cast<long>(&word), FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
  EXPECT_GE(woken, 0);
  EXPECT_LE(woken, 1);
  void* ret = reinterpret_cast<void*>(1);
  ASSERT_EQ(rt::thread_join(t, &ret), 0);
  EXPECT_EQ(ret, nullptr);
}

TEST(ApiFiber, EndedThreadHasNoCpuClock) {
  static sem_t go;
  ASSERT_EQ(rt::sem_init(&go, 0, 0), 0);
  pthread_t t = spawn([](void*) -> void* {
    rt::sem_wait(&go);
    return nullptr;
  }, nullptr);
  clockid_t c;
  EXPECT_EQ(rt::thread_getcpuclockid(t, &c), 0);
  ASSERT_EQ(rt::sem_post(&go), 0);
  // Ended but not joined: ESRCH, as glibc once the kernel cleared its tid.
  int r = 0;
  for (int i = 0; i < 100000 && (r = rt::thread_getcpuclockid(t, &c)) == 0; ++i) rt::yield();
  EXPECT_EQ(r, -ESRCH);
  ASSERT_EQ(rt::thread_join(t, nullptr), 0);
  EXPECT_EQ(rt::thread_getcpuclockid(pthread_self(), &c), 0);
}
