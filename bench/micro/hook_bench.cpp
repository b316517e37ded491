// hook_bench: what a hooked call costs when the runtime is not running.
//
// Every process that inherits LD_PRELOAD=libunblock.so calls the hooks, but
// only one that creates a thread starts the runtime; in all others (and in
// a program before its first pthread_create) a hook must pass straight
// through to libc. This program never creates a thread, so run under the
// preload it measures exactly that pass-through path. Each BM_<call> times
// the call by its ordinary name (the hook under the preload: counter
// hooked_ns) against the same call through libc's own symbol (dlsym on the
// libc handle - RTLD_NEXT from the executable would find the preloaded
// library first: counter libc_ns); overhead_ns is the hook's cost (see
// paired() for how noise is kept out). The benchmark's own time is that of
// one block pair and means nothing. read/write/fcntl/sigprocmask are
// cheap system calls (~70-90 ns here), so their difference is a few percent
// of each. _longjmp (after _setjmp: no signal mask, no system call) is a
// hooked call with no kernel time, so its difference shows the pass-through
// cost alone.
// Run plain, both variants are libc's (context "preloaded": "no").
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using ReadFn = ssize_t (*)(int, void*, size_t);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using FcntlFn = int (*)(int, int, ...);
using SigprocmaskFn = int (*)(int, const sigset_t*, sigset_t*);
using LongjmpFn = void (*)(struct __jmp_buf_tag*, int);
using SyscallFn = long (*)(long, ...);
using ClockGettimeFn = int (*)(clockid_t, timespec*);

ReadFn libc_read;
WriteFn libc_write;
FcntlFn libc_fcntl;
SigprocmaskFn libc_sigprocmask;
LongjmpFn libc__longjmp;
SyscallFn libc_syscall;
ClockGettimeFn libc_clock_gettime;
int g_fd = -1;  // /dev/null
char g_buf[1];

// Calls through a volatile pointer so the compiler cannot tell the two
// variants apart by inlining or constant folding.
ReadFn volatile hooked_read = read;
WriteFn volatile hooked_write = write;
FcntlFn volatile hooked_fcntl = fcntl;
SigprocmaskFn volatile hooked_sigprocmask = sigprocmask;
LongjmpFn volatile hooked__longjmp = _longjmp;
SyscallFn volatile hooked_syscall = syscall;
uint32_t g_futex_word;
ClockGettimeFn volatile hooked_clock_gettime = clock_gettime;

double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

double median(std::vector<double>& v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// One iteration = a block of kBlock hooked calls and a block of kBlock libc
// calls, back to back, in alternating order. Each block is timed on its own;
// the counters are medians over all blocks, and overhead_ns the median of the
// paired differences: preemption or a noisy neighbour hits one block of a
// pair, not the median, so the difference stays readable on a shared machine.
template <class Hooked, class Libc>
void paired(benchmark::State& st, Hooked hooked, Libc libc) {
  constexpr int kBlock = 256;
  std::vector<double> h, l, d;
  h.reserve(1 << 16);
  l.reserve(1 << 16);
  d.reserve(1 << 16);
  auto block = [](auto& call) {
    double t0 = now_ns();
    for (int i = 0; i < kBlock; ++i) call();
    return (now_ns() - t0) / kBlock;
  };
  bool hooked_first = true;
  for (auto _ : st) {
    double th, tl;
    if (hooked_first) {
      th = block(hooked);
      tl = block(libc);
    } else {
      tl = block(libc);
      th = block(hooked);
    }
    hooked_first = !hooked_first;
    h.push_back(th);
    l.push_back(tl);
    d.push_back(th - tl);
  }
  st.counters["hooked_ns"] = median(h);
  st.counters["libc_ns"] = median(l);
  st.counters["overhead_ns"] = median(d);
}

void BM_read0(benchmark::State& st) {
  ReadFn volatile f = libc_read;
  paired(st, [] { benchmark::DoNotOptimize(hooked_read(g_fd, g_buf, 0)); },
         [&] { benchmark::DoNotOptimize(f(g_fd, g_buf, 0)); });
}
void BM_write0(benchmark::State& st) {
  WriteFn volatile f = libc_write;
  paired(st, [] { benchmark::DoNotOptimize(hooked_write(g_fd, g_buf, 0)); },
         [&] { benchmark::DoNotOptimize(f(g_fd, g_buf, 0)); });
}
void BM_fcntl_getfd(benchmark::State& st) {
  FcntlFn volatile f = libc_fcntl;
  paired(st, [] { benchmark::DoNotOptimize(hooked_fcntl(g_fd, F_GETFD)); },
         [&] { benchmark::DoNotOptimize(f(g_fd, F_GETFD)); });
}
void BM_sigprocmask_query(benchmark::State& st) {
  SigprocmaskFn volatile f = libc_sigprocmask;
  sigset_t set;
  paired(st, [&] { benchmark::DoNotOptimize(hooked_sigprocmask(SIG_BLOCK, nullptr, &set)); },
         [&] { benchmark::DoNotOptimize(f(SIG_BLOCK, nullptr, &set)); });
}
// _setjmp, then _longjmp back to it.
[[gnu::noinline]] void setjmp_longjmp(LongjmpFn f) {
  jmp_buf jb;
  if (_setjmp(jb) == 0) f(jb, 1);
  benchmark::ClobberMemory();
}
void BM__longjmp(benchmark::State& st) {
  paired(st, [] { setjmp_longjmp(hooked__longjmp); }, [] { setjmp_longjmp(libc__longjmp); });
}
// syscall(): every number but SYS_futex jumps straight to glibc's; a futex
// request goes through the futex entry, which passes it on while the
// runtime is not running (a FUTEX_WAKE nobody waits for).
void BM_syscall_getppid(benchmark::State& st) {
  SyscallFn volatile f = libc_syscall;
  paired(st, [] { benchmark::DoNotOptimize(hooked_syscall(SYS_getppid)); },
         [&] { benchmark::DoNotOptimize(f(SYS_getppid)); });
}
void BM_syscall_futex_wake(benchmark::State& st) {
  SyscallFn volatile f = libc_syscall;
  paired(st, [] { benchmark::DoNotOptimize(hooked_syscall(SYS_futex, &g_futex_word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)); },
         [&] { benchmark::DoNotOptimize(f(SYS_futex, &g_futex_word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)); });
}
// clock_gettime(CLOCK_MONOTONIC): the vDSO, behind the thread-CPU-clock check.
void BM_clock_gettime_monotonic(benchmark::State& st) {
  ClockGettimeFn volatile f = libc_clock_gettime;
  timespec ts;
  paired(st, [&] { benchmark::DoNotOptimize(hooked_clock_gettime(CLOCK_MONOTONIC, &ts)); },
         [&] { benchmark::DoNotOptimize(f(CLOCK_MONOTONIC, &ts)); });
}
// An unhooked system call of the same class, for scale.
void BM_getppid_unhooked(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(getppid());
}

template <class F>
F from_libc(void* libc, const char* name) {
  void* p = dlsym(libc, name);
  if (!p) {
    fprintf(stderr, "hook_bench: %s not found in libc\n", name);
    exit(1);
  }
  return reinterpret_cast<F>(p);
}

bool is_hooked(void* fn) {
  Dl_info info;
  return dladdr(fn, &info) && info.dli_fname && strstr(info.dli_fname, "libunblock");
}

}  // namespace

BENCHMARK(BM_read0);
BENCHMARK(BM_write0);
BENCHMARK(BM_fcntl_getfd);
BENCHMARK(BM_sigprocmask_query);
BENCHMARK(BM__longjmp);
BENCHMARK(BM_syscall_getppid);
BENCHMARK(BM_syscall_futex_wake);
BENCHMARK(BM_clock_gettime_monotonic);
BENCHMARK(BM_getppid_unhooked);

int main(int argc, char** argv) {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (!libc) {
    fprintf(stderr, "hook_bench: libc.so.6 not loaded?\n");
    return 1;
  }
  libc_read = from_libc<ReadFn>(libc, "read");
  libc_write = from_libc<WriteFn>(libc, "write");
  libc_fcntl = from_libc<FcntlFn>(libc, "fcntl");
  libc_sigprocmask = from_libc<SigprocmaskFn>(libc, "sigprocmask");
  libc__longjmp = from_libc<LongjmpFn>(libc, "_longjmp");
  libc_syscall = from_libc<SyscallFn>(libc, "syscall");
  libc_clock_gettime = from_libc<ClockGettimeFn>(libc, "clock_gettime");
  g_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (g_fd < 0) {
    perror("hook_bench: /dev/null");
    return 1;
  }
  bool hooked = is_hooked(reinterpret_cast<void*>(hooked_read));
  benchmark::AddCustomContext("preloaded", hooked ? "yes" : "no");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
