// runtime/api.h on plain OS threads, before any runtime runs: every entry
// point returns a result or -errno, serves what the runtime owns (sync
// objects, the key table, thread ids, signal dispositions before the
// emulation starts) and passes the rest to the real call.
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
#include <thread>

#include "runtime/threads.h"

namespace rt = unblock::rt;

namespace {

timespec in_ms(clockid_t clock, long ms) {
  timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_nsec += ms * 1000000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  return ts;
}

}  // namespace

// ---- synchronisation -------------------------------------------------------------

TEST(ApiSync, MutexErrorsAreNegativeErrnos) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m;
  ASSERT_EQ(rt::mutex_init(&m, &a), 0);
  EXPECT_EQ(rt::mutex_lock(&m), 0);
  EXPECT_EQ(rt::mutex_lock(&m), -EDEADLK);
  std::thread([&] { EXPECT_EQ(rt::mutex_trylock(&m), -EBUSY); }).join();
  std::thread([&] {
    timespec ts = in_ms(CLOCK_REALTIME, 20);
    EXPECT_EQ(rt::mutex_timedlock(&m, CLOCK_REALTIME, &ts, false), -ETIMEDOUT);
    EXPECT_EQ(rt::mutex_unlock(&m), -EPERM);
  }).join();
  EXPECT_EQ(rt::mutex_unlock(&m), 0);
  timespec ts = in_ms(CLOCK_MONOTONIC, 20);
  EXPECT_EQ(rt::mutex_timedlock(&m, 12345, &ts, true), -EINVAL);  // clocklock checks the clock
  EXPECT_EQ(rt::mutex_destroy(&m), 0);
  pthread_mutexattr_destroy(&a);
}

TEST(ApiSync, CondTimedWaitTimesOutWithTheMutexHeld) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  ASSERT_EQ(rt::mutex_lock(&m), 0);
  timespec ts = in_ms(CLOCK_MONOTONIC, 20);
  EXPECT_EQ(rt::cond_clockwait(&c, &m, CLOCK_MONOTONIC, &ts), -ETIMEDOUT);
  // Still held by this thread: another cannot take it.
  std::thread([&] { EXPECT_EQ(rt::mutex_trylock(&m), -EBUSY); }).join();
  EXPECT_EQ(rt::mutex_unlock(&m), 0);
  EXPECT_EQ(rt::cond_signal(&c), 0);
  EXPECT_EQ(rt::cond_broadcast(&c), 0);
}

TEST(ApiSync, CondWaitIsWokenBySignal) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  bool ready = false;
  std::thread t([&] {
    rt::mutex_lock(&m);
    ready = true;
    rt::cond_signal(&c);
    rt::mutex_unlock(&m);
  });
  ASSERT_EQ(rt::mutex_lock(&m), 0);
  while (!ready) ASSERT_EQ(rt::cond_wait(&c, &m), 0);
  EXPECT_EQ(rt::mutex_unlock(&m), 0);
  t.join();
}

TEST(ApiSync, RwlockReadersShareWritersExclude) {
  pthread_rwlock_t l;
  ASSERT_EQ(rt::rwlock_init(&l, nullptr), 0);
  EXPECT_EQ(rt::rwlock_rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::thread([&] {
    EXPECT_EQ(rt::rwlock_tryrdlock(&l), 0);
    EXPECT_EQ(rt::rwlock_unlock(&l), 0);
    EXPECT_EQ(rt::rwlock_trywrlock(&l), -EBUSY);
    timespec ts = in_ms(CLOCK_REALTIME, 20);
    EXPECT_EQ(rt::rwlock_wrlock(&l, CLOCK_REALTIME, &ts, true), -ETIMEDOUT);
  }).join();
  EXPECT_EQ(rt::rwlock_unlock(&l), 0);
  EXPECT_EQ(rt::rwlock_wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  EXPECT_EQ(rt::rwlock_unlock(&l), 0);
  EXPECT_EQ(rt::rwlock_destroy(&l), 0);
}

TEST(ApiSync, BarrierNamesExactlyOneSerialThread) {
  constexpr int kThreads = 4;
  pthread_barrier_t b;
  ASSERT_EQ(rt::barrier_init(&b, nullptr, kThreads), 0);
  EXPECT_EQ(rt::barrier_init(&b, nullptr, 0), -EINVAL);
  std::atomic<int> serial{0}, zero{0};
  std::thread ts[kThreads];
  for (auto& t : ts) {
    t = std::thread([&] {
      int r = rt::barrier_wait(&b);
      if (r == rt::kBarrierSerial) serial.fetch_add(1);
      if (r == 0) zero.fetch_add(1);
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(serial.load(), 1);
  EXPECT_EQ(zero.load(), kThreads - 1);
  EXPECT_EQ(rt::barrier_destroy(&b), 0);
}

TEST(ApiSync, OnceRunsItsRoutineOnce) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  static int runs = 0;
  EXPECT_EQ(rt::once(&once, [] { ++runs; }), 0);
  EXPECT_EQ(rt::once(&once, [] { ++runs; }), 0);
  EXPECT_EQ(runs, 1);
}

TEST(ApiSync, SemaphoreErrorsAreNegativeErrnos) {
  sem_t s;
  EXPECT_EQ(rt::sem_init(&s, 0, static_cast<unsigned>(SEM_VALUE_MAX) + 1u), -EINVAL);
  ASSERT_EQ(rt::sem_init(&s, 0, 1), 0);
  EXPECT_EQ(rt::sem_trywait(&s), 0);
  EXPECT_EQ(rt::sem_trywait(&s), -EAGAIN);
  timespec ts = in_ms(CLOCK_REALTIME, 20);
  EXPECT_EQ(rt::sem_timedwait(&s, CLOCK_REALTIME, &ts, false), -ETIMEDOUT);
  timespec bad{0, 2000000000};
  EXPECT_EQ(rt::sem_timedwait(&s, CLOCK_REALTIME, &bad, false), -EINVAL);
  EXPECT_EQ(rt::sem_post(&s), 0);
  int v = -1;
  EXPECT_EQ(rt::sem_getvalue(&s, &v), 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(rt::sem_wait(&s), 0);
  EXPECT_EQ(rt::sem_destroy(&s), 0);
}

// ---- keys and exit duties ---------------------------------------------------------

namespace {
std::atomic<int> g_dtor_runs{0};
void count_dtor(void* v) {
  g_dtor_runs.fetch_add(1);
  *static_cast<int*>(v) += 1;
}
}  // namespace

TEST(ApiThreads, KeyDestructorsRunAsExitDutiesOnlyForLiveKeysWithValues) {
  pthread_key_t live, deleted, empty;
  ASSERT_EQ(rt::key_create(&live, count_dtor), 0);
  ASSERT_EQ(rt::key_create(&deleted, count_dtor), 0);
  ASSERT_EQ(rt::key_create(&empty, count_dtor), 0);
  int a = 0, b = 0;
  pthread_setspecific(live, &a);
  pthread_setspecific(deleted, &b);
  ASSERT_EQ(rt::key_delete(deleted), 0);
  EXPECT_EQ(rt::key_delete(deleted), -EINVAL);
  g_dtor_runs = 0;
  unblock::threads::exit_duties(nullptr);  // the calling thread's keys, as a fiber's at its exit
  EXPECT_EQ(g_dtor_runs.load(), 1);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(pthread_getspecific(live), nullptr);  // cleared before its destructor ran
  rt::key_delete(live);
  rt::key_delete(empty);
}

// ---- plain-thread pass-through ------------------------------------------------------

TEST(ApiThreads, PlainThreadCallsPassThroughWithNegativeErrnos) {
  pthread_t self = pthread_self();
  char name[16];
  EXPECT_EQ(rt::thread_setname(self, "0123456789abcdefg"), -ERANGE);
  EXPECT_EQ(rt::thread_setname(self, "api-test"), 0);
  EXPECT_EQ(rt::thread_getname(self, name, 4), -ERANGE);
  ASSERT_EQ(rt::thread_getname(self, name, sizeof name), 0);
  EXPECT_STREQ(name, "api-test");
  char via_prctl[16] = {};
  EXPECT_EQ(rt::prctl(PR_GET_NAME, reinterpret_cast<unsigned long>(via_prctl), 0, 0, 0), 0);
  EXPECT_STREQ(via_prctl, "api-test");
  EXPECT_EQ(rt::prctl(-1, 0, 0, 0, 0), -EINVAL);
  sched_param p{};
  EXPECT_EQ(rt::sched_setscheduler(0, 12345, &p), -EINVAL);
  EXPECT_GE(rt::sched_getscheduler(0), 0);
  EXPECT_EQ(rt::yield(), 0);
  // A thread that is not a fiber is joined by glibc.
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, [](void*) -> void* { return reinterpret_cast<void*>(7); }, nullptr), 0);
  void* ret = nullptr;
  EXPECT_EQ(rt::thread_join(t, &ret), 0);
  EXPECT_EQ(ret, reinterpret_cast<void*>(7));
}

TEST(ApiThreadIds, PlainThreadIdsAreTheKernels) {
  EXPECT_EQ(rt::gettid(), static_cast<pid_t>(syscall(SYS_gettid)));
  cpu_set_t set;
  memset(&set, 0xff, sizeof set);
  ASSERT_EQ(rt::sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_GT(CPU_COUNT(&set), 0);
  // glibc's wrapper: bytes past what the kernel wrote are cleared.
  EXPECT_LE(CPU_COUNT(&set), CPU_SETSIZE);
  EXPECT_EQ(rt::sched_getaffinity(0, 1, &set), -EINVAL);
  // The syscall's form of the nice value: 20 - nice.
  int r = rt::getpriority(PRIO_PROCESS, 0);
  EXPECT_EQ(20 - r, getpriority(PRIO_PROCESS, 0));
  EXPECT_EQ(rt::tgkill(getpid(), rt::gettid(), 0), 0);
  EXPECT_EQ(rt::tgkill(getpid(), 0x7fffffff, 0), -ESRCH);
}

// ---- syscall() ------------------------------------------------------------------

TEST(ApiSyscall, FutexAndOtherNumbersReturnKernelResults) {
  uint32_t word = 1;
  EXPECT_EQ(rt::syscall_futex(reinterpret_cast<long>(&word), FUTEX_WAIT_PRIVATE, 0, 0, 0, 0), -EAGAIN);
  EXPECT_EQ(rt::syscall_futex(reinterpret_cast<long>(&word), FUTEX_WAKE_PRIVATE, 1, 0, 0, 0), 0);
  timespec ts{0, 1000000};
  EXPECT_EQ(rt::syscall_futex(reinterpret_cast<long>(&word), FUTEX_WAIT_PRIVATE, 1, reinterpret_cast<long>(&ts), 0, 0),
            -ETIMEDOUT);
  EXPECT_EQ(rt::syscall_other(SYS_getpid, 0, 0, 0, 0, 0, 0), getpid());
  EXPECT_EQ(rt::syscall_other(100000, 0, 0, 0, 0, 0, 0), -ENOSYS);
  EXPECT_EQ(rt::syscall_thread_id(SYS_gettid, 0, 0, 0, 0, 0, 0), static_cast<long>(syscall(SYS_gettid)));
}

// ---- signals before the emulation runs ---------------------------------------------

namespace {
std::atomic<int> g_handled{0};
void on_usr1(int) { g_handled.fetch_add(1); }
}  // namespace

TEST(ApiSignals, DispositionCallsFollowTheirLibcConventions) {
  struct sigaction act {};
  EXPECT_EQ(rt::sigaction(0, nullptr, &act), -EINVAL);
  EXPECT_EQ(rt::sigaction(SIGKILL, &act, nullptr), -EINVAL);
  sighandler_t old = nullptr;
  EXPECT_EQ(rt::signal_bsd(33, on_usr1, &old), -EINVAL);  // glibc's SIGSETXID
  EXPECT_EQ(rt::signal_bsd(SIGUSR1, on_usr1, &old), 0);
  EXPECT_EQ(old, SIG_DFL);
  // BSD semantics: SA_RESTART, until siginterrupt asks for EINTR.
  ASSERT_EQ(rt::sigaction(SIGUSR1, nullptr, &act), 0);
  EXPECT_TRUE(act.sa_flags & SA_RESTART);
  EXPECT_EQ(rt::siginterrupt(SIGUSR1, 1), 0);
  ASSERT_EQ(rt::sigaction(SIGUSR1, nullptr, &act), 0);
  EXPECT_FALSE(act.sa_flags & SA_RESTART);
  EXPECT_EQ(rt::signal_bsd(SIGUSR1, on_usr1, &old), 0);
  ASSERT_EQ(rt::sigaction(SIGUSR1, nullptr, &act), 0);
  EXPECT_FALSE(act.sa_flags & SA_RESTART);
  EXPECT_EQ(rt::siginterrupt(SIGUSR1, 0), 0);
  // sigset(SIG_HOLD) blocks and reports the handler; the next sigset says SIG_HOLD.
  EXPECT_EQ(rt::sigset(SIGUSR1, SIG_HOLD, &old), 0);
  EXPECT_EQ(old, on_usr1);
  EXPECT_EQ(rt::sigset(SIGUSR1, on_usr1, &old), 0);
  EXPECT_EQ(old, SIG_HOLD);
  EXPECT_EQ(rt::signal_sysv(SIGUSR1, SIG_DFL, &old), 0);
  EXPECT_EQ(old, on_usr1);
}

TEST(ApiSignals, MasksSendingAndWaitingOnAPlainThread) {
  ASSERT_EQ(rt::sigmask_one(SIG_BLOCK, SIGUSR2), 0);
  EXPECT_EQ(rt::sigmask_one(SIG_BLOCK, 0), -EINVAL);
  EXPECT_EQ(rt::thread_sigmask(12345, nullptr, nullptr), 0);  // no set: how is not looked at
  sigset_t bad;
  sigemptyset(&bad);
  EXPECT_EQ(rt::thread_sigmask(12345, &bad, nullptr), -EINVAL);
  EXPECT_EQ(rt::sigprocmask(12345, &bad, nullptr), -EINVAL);
  ASSERT_EQ(rt::raise(SIGUSR2), 0);
  sigset_t pending;
  ASSERT_EQ(rt::sigpending(&pending), 0);
  EXPECT_TRUE(sigismember(&pending, SIGUSR2));
  sigset_t want;
  sigemptyset(&want);
  sigaddset(&want, SIGUSR2);
  siginfo_t si;
  EXPECT_EQ(rt::sigtimedwait(&want, &si, nullptr), SIGUSR2);
  timespec zero{0, 0};
  EXPECT_EQ(rt::sigtimedwait(&want, &si, &zero), -EAGAIN);
  timespec invalid{0, -1};
  EXPECT_EQ(rt::sigtimedwait(&want, &si, &invalid), -EINVAL);
  ASSERT_EQ(rt::thread_kill(pthread_self(), SIGUSR2), 0);
  int sig = 0;
  EXPECT_EQ(rt::sigwait(&want, &sig), 0);
  EXPECT_EQ(sig, SIGUSR2);
  EXPECT_EQ(rt::thread_kill(pthread_self(), 1000), -EINVAL);
  EXPECT_EQ(rt::kill(getpid(), 1000), -EINVAL);
  ASSERT_EQ(rt::sigmask_one(SIG_UNBLOCK, SIGUSR2), 0);
  // A handled signal raised while unblocked runs its handler before raise returns.
  sighandler_t old;
  ASSERT_EQ(rt::signal_bsd(SIGUSR1, on_usr1, &old), 0);
  g_handled = 0;
  EXPECT_EQ(rt::raise(SIGUSR1), 0);
  EXPECT_EQ(g_handled.load(), 1);
  rt::signal_bsd(SIGUSR1, SIG_DFL, &old);
}

TEST(ApiSignals, AltstackAndSignalfdReportErrors) {
  stack_t ss{};
  ss.ss_size = 16;  // below MINSIGSTKSZ
  ss.ss_sp = &ss;
  EXPECT_EQ(rt::sigaltstack(&ss, nullptr), -ENOMEM);
  stack_t cur;
  EXPECT_EQ(rt::sigaltstack(nullptr, &cur), 0);
  sigset_t m;
  sigemptyset(&m);
  EXPECT_EQ(rt::signalfd(-5, &m, 0), -EBADF);
}

TEST(ApiProcess, ForkAndSystemReturnResultsOrNegativeErrnos) {
  pid_t pid = rt::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(3);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(WEXITSTATUS(status), 3);
  int st = rt::system("exit 5");
  ASSERT_GE(st, 0);
  EXPECT_EQ(WEXITSTATUS(st), 5);
  char* argv[] = {const_cast<char*>("nope"), nullptr};
  EXPECT_EQ(rt::execve("/nonexistent/program", argv, argv + 1), -ENOENT);
  FILE* f = nullptr;
  EXPECT_EQ(rt::popen("true", "x", &f), -EINVAL);
  ASSERT_EQ(rt::popen("echo hi", "r", &f), 0);
  char buf[8] = {};
  EXPECT_NE(fgets(buf, sizeof buf, f), nullptr);
  EXPECT_STREQ(buf, "hi\n");
  pclose(f);
}
