// Per-fiber thread-local storage: cost of each candidate mechanism, measured
// side by side in one run (results: docs/tls-measurements.md).
//
// Unit of the fiber benchmarks (BM_switch_*): one iteration = ONE fiber
// switch = the scheduler jumps into a fiber and that fiber jumps back to the
// scheduler (two jump_fcontext calls plus the TLS handling attached to each).
// In steady state fiber A -> scheduler -> fiber B is exactly that pair, so the
// reported time per iteration is the time per fiber-to-fiber switch. The
// scheduler alternates between two fibers.
//
// TLS handling per switch, by benchmark:
//   bare            nothing: every fiber shares the worker's TLS (wrong)
//   errno           the fiber saves errno on yield, the scheduler restores
//                   it on resume (GNU Pth style)
//   image/N         the fiber copies N bytes of the live TLS image out on
//                   yield, the scheduler copies the next fiber's N bytes in
//                   on resume ("swap contents"; live image = this program's
//                   own thread_local block, see TlsImage)
//   tcb_wrfsbase    every fiber owns a glibc TCB; FS is set to the target's
//                   TCB with wrfsbase immediately before each of the two jumps
//   tcb_wrfsbase_cpu  tcb_wrfsbase plus the runtime's CPU accounting (one
//                   rdtsc and three counter updates per switch)
//   tcb_arch_prctl  the same with arch_prctl(ARCH_SET_FS) (two syscalls)
//
// After each timed loop a short verification run (fresh fibers, 1000
// switches, the scheduler scribbling over its own errno / thread_local in
// between) reports counters:
//   errno_own  1 if every fiber always saw its own errno
//   tls_own    1 if every fiber always saw its own thread_local
//   self_own   1 if pthread_self() in a fiber is distinct from the
//              scheduler's and stable
//
// OS references: BM_os_*_pingpong: one iteration = one round trip between
// two threads pinned to the same CPU = TWO hops (thread switches); ns per
// hop = time / 2.
#include <asm/prctl.h>
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace ctx = boost::context::detail;

// glibc internals (GLIBC_PRIVATE): ld.so's TLS allocator and libthread_db's
// description of struct pthread. _thread_db_sizeof_pthread is a single
// uint32_t in glibc 2.36 (4-byte object); _thread_db_pthread_list is a
// descriptor {size in bits, count, offset}.
extern "C" {
void _dl_get_tls_static_info(size_t* size, size_t* align);
void* _dl_allocate_tls(void* mem);
void _dl_deallocate_tls(void* tcb, bool dealloc_tcb);
extern const uint32_t _thread_db_sizeof_pthread;
extern const uint32_t _thread_db_pthread_list[3];
}

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

namespace {

constexpr size_t kMaxImage = 4096;
constexpr size_t kStackSize = 64 * 1024;

// The "live TLS image" of the copy design: this program's own static TLS
// block (local-exec, %fs-relative). `check` doubles as the thread_local that
// the verification run uses.
struct alignas(64) TlsImage {
  long check;
  char rest[kMaxImage - sizeof(long)];
};
thread_local TlsImage t_image;

struct Geometry {
  size_t static_size = 0;   // _dl_get_tls_static_info: TLS blocks + surplus + struct pthread
  size_t static_align = 0;
  size_t pthread_size = 0;  // sizeof(struct pthread)
  size_t list_off = 0;      // offsetof(struct pthread, list)
  size_t exe_tls = 0;       // PT_TLS p_memsz of this executable (its thread_locals)
  size_t region_size = 0;   // one fiber's mmap'd region
  bool fsgsbase = false;
} g;

int find_exe_tls(dl_phdr_info* info, size_t, void*) {
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS) g.exe_tls = info->dlpi_phdr[i].p_memsz;
  return 1;  // the first entry is the main program
}

void init_geometry() {
  _dl_get_tls_static_info(&g.static_size, &g.static_align);
  g.pthread_size = _thread_db_sizeof_pthread;
  g.list_off = _thread_db_pthread_list[2];
  // UNBLOCK_FS_SWITCH=arch_prctl: behave as on a machine without FSGSBASE
  // (the library's own switch honours the same variable).
  const char* force = getenv("UNBLOCK_FS_SWITCH");
  g.fsgsbase = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0 && !(force && !strcasecmp(force, "arch_prctl"));
  dl_iterate_phdr(find_exe_tls, nullptr);
  long page = sysconf(_SC_PAGESIZE);
  g.region_size = (kStackSize + g.static_size + g.static_align + page - 1) & ~size_t(page - 1);
}

char* map_region(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    abort();
  }
  return static_cast<char*>(p);
}

// A real glibc TCB at the top of [.., top): struct pthread at pd, the static
// TLS blocks below it, initialised by ld.so.
char* build_tcb(char* top) {
  char* self = reinterpret_cast<char*>(pthread_self());
  uintptr_t p = (reinterpret_cast<uintptr_t>(top) - g.pthread_size) & ~(uintptr_t)(g.static_align - 1);
  char* pd = reinterpret_cast<char*>(p);
  memset(pd, 0, g.pthread_size);
  *reinterpret_cast<void**>(pd + 0) = pd;   // tcbhead_t.tcb
  *reinterpret_cast<void**>(pd + 16) = pd;  // tcbhead_t.self
  *reinterpret_cast<int*>(pd + 24) = 1;     // multiple_threads
  memcpy(pd + 40, self + 40, 16);           // stack_guard, pointer_guard
  memcpy(pd + 72, self + 72, 4);            // feature_1 (CET)
  char* list = pd + g.list_off;
  reinterpret_cast<char**>(list)[0] = list;
  reinterpret_cast<char**>(list)[1] = list;
  if (!_dl_allocate_tls(pd)) {
    fprintf(stderr, "_dl_allocate_tls failed\n");
    abort();
  }
  return pd;
}

char* tcb_stack_top(char* pd) {
  uintptr_t s = reinterpret_cast<uintptr_t>(pd - (g.static_size - g.pthread_size));
  return reinterpret_cast<char*>(s & ~uintptr_t{63});
}

// ---------------------------------------------------------------- fibers

struct Fiber {
  ctx::fcontext_t ctx = nullptr;
  char* region = nullptr;
  char* pd = nullptr;  // own TCB (tcb_* designs)
  int id = 0;
  int saved_errno = 0;
  std::atomic<uint64_t> cpu_ticks{0};
  long resumes = 0, errno_bad = 0, tls_bad = 0, self_bad = 0;
  pthread_t self0{};
  alignas(64) char image[kMaxImage];  // save area of the copy design
};

ctx::fcontext_t g_sched_ctx;  // globals, not TLS: valid under any FS
uint64_t g_sched_tp;          // the worker's own thread pointer
size_t g_image_size;

inline void set_fs_syscall(uint64_t tp) {
  long ret;
  asm volatile("syscall"
               : "=a"(ret)
               : "0"(SYS_arch_prctl), "D"(ARCH_SET_FS), "S"(tp)
               : "rcx", "r11", "memory");
  (void)ret;
}

struct Bare {
  static constexpr bool kTcb = false;
  static void on_resume(Fiber*) {}
  static void on_yield(Fiber*) {}
};
struct ErrnoOnly {
  static constexpr bool kTcb = false;
  static void on_resume(Fiber* f) { errno = f->saved_errno; }
  static void on_yield(Fiber* f) { f->saved_errno = errno; }
};
struct ImageCopy {
  static constexpr bool kTcb = false;
  static void on_resume(Fiber* f) { memcpy(&t_image, f->image, g_image_size); }
  static void on_yield(Fiber* f) { memcpy(f->image, &t_image, g_image_size); }
};
struct TcbWrfsbase {
  static constexpr bool kTcb = true;
  static void on_resume(Fiber* f) { _writefsbase_u64(reinterpret_cast<uint64_t>(f->pd)); }
  static void on_yield(Fiber*) { _writefsbase_u64(g_sched_tp); }
};
// tcb_wrfsbase plus the runtime's per-switch CPU accounting
// (runtime/cpu_clock.cpp, account_switch): one rdtsc when the fiber is back
// on the scheduler, its run added to the fiber's and the carrier's counters.
struct CpuMark {
  std::atomic<uint64_t> mark{0}, since{0};
};
CpuMark g_cpu_mark;
struct TcbWrfsbaseCpu {
  static constexpr bool kTcb = true;
  static void on_resume(Fiber* f) { _writefsbase_u64(reinterpret_cast<uint64_t>(f->pd)); }
  static void on_yield(Fiber*) { _writefsbase_u64(g_sched_tp); }
  static void on_return(Fiber* f) {
    uint64_t now = __rdtsc();
    uint64_t run = now - g_cpu_mark.mark.load(std::memory_order_relaxed);
    if (__builtin_expect(run < 100000, 1)) {
      f->cpu_ticks.store(f->cpu_ticks.load(std::memory_order_relaxed) + run, std::memory_order_relaxed);
      g_cpu_mark.since.store(g_cpu_mark.since.load(std::memory_order_relaxed) + run, std::memory_order_relaxed);
    }
    g_cpu_mark.mark.store(now, std::memory_order_relaxed);
  }
};
struct TcbArchPrctl {
  static constexpr bool kTcb = true;
  static void on_resume(Fiber* f) { set_fs_syscall(reinterpret_cast<uint64_t>(f->pd)); }
  static void on_yield(Fiber*) { set_fs_syscall(g_sched_tp); }
};

template <class P, bool Verify>
void fiber_main(ctx::transfer_t t) {
  g_sched_ctx = t.fctx;
  Fiber* f = static_cast<Fiber*>(t.data);
  if constexpr (Verify) {
    f->self0 = pthread_self();
    errno = 1000 + f->id;
    t_image.check = f->id;
  }
  for (;;) {
    P::on_yield(f);  // nothing touches TLS between this and the jump
    ctx::transfer_t r = ctx::jump_fcontext(g_sched_ctx, nullptr);
    g_sched_ctx = r.fctx;
    if constexpr (Verify) {
      ++f->resumes;
      if (errno != 1000 + f->id) ++f->errno_bad;
      if (t_image.check != f->id) ++f->tls_bad;
      if (!pthread_equal(pthread_self(), f->self0)) ++f->self_bad;
      errno = 1000 + f->id;
      t_image.check = f->id;
    }
  }
}

template <class P>
__attribute__((noinline)) void resume(Fiber* f) {
  P::on_resume(f);  // nothing touches TLS between this and the jump
  ctx::transfer_t t = ctx::jump_fcontext(f->ctx, f);
  f->ctx = t.fctx;
  if constexpr (requires { P::on_return(f); }) P::on_return(f);
}

template <class P, bool Verify>
Fiber* make_fiber(int id) {
  auto* f = new Fiber;
  f->id = id;
  memset(f->image, 0, sizeof f->image);
  f->region = map_region(g.region_size);
  char* top = f->region + g.region_size;
  if constexpr (P::kTcb) {
    f->pd = build_tcb(top);
    top = tcb_stack_top(f->pd);
  }
  f->ctx = ctx::make_fcontext(top, static_cast<size_t>(top - f->region), &fiber_main<P, Verify>);
  return f;
}

// The fiber stays suspended forever; nothing on its stack needs unwinding.
void free_fiber(Fiber* f) {
  if (f->pd) _dl_deallocate_tls(f->pd, false);
  munmap(f->region, g.region_size);
  delete f;
}

template <class P>
void verify(benchmark::State& st) {
  Fiber* fs[2] = {make_fiber<P, true>(1), make_fiber<P, true>(2)};
  pthread_t sched_self = pthread_self();
  int saved = errno;
  for (int i = 0; i < 1000; ++i) {
    resume<P>(fs[i & 1]);
    errno = 7;  // the scheduler's own use of its TLS between fibers
    t_image.check = -1;
  }
  errno = saved;
  long eb = 0, tb = 0, sb = 0;
  bool distinct = true;
  for (Fiber* f : fs) {
    eb += f->errno_bad;
    tb += f->tls_bad;
    sb += f->self_bad;
    distinct = distinct && !pthread_equal(f->self0, sched_self);
  }
  distinct = distinct && !pthread_equal(fs[0]->self0, fs[1]->self0);
  st.counters["errno_own"] = eb == 0;
  st.counters["tls_own"] = tb == 0;
  st.counters["self_own"] = sb == 0 && distinct;
  for (Fiber* f : fs) free_fiber(f);
}

template <class P>
void BM_switch(benchmark::State& st) {
  if (std::is_same_v<P, TcbWrfsbase> && !g.fsgsbase) {
    st.SkipWithError("needs FSGSBASE (AT_HWCAP2 bit 1): skipped on this machine");
    return;
  }
  g_image_size = st.range(0);
  g_sched_tp = _readfsbase_u64();
  Fiber* fs[2] = {make_fiber<P, false>(1), make_fiber<P, false>(2)};
  resume<P>(fs[0]);  // first entry of each fiber outside the timed loop
  resume<P>(fs[1]);
  unsigned i = 0;
  for (auto _ : st) {
    resume<P>(fs[i & 1]);
    ++i;
  }
  for (Fiber* f : fs) free_fiber(f);
  verify<P>(st);
}

// ------------------------------------------------------- OS thread switch

int pinned_cpu() {
  cpu_set_t set;
  sched_getaffinity(0, sizeof set, &set);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) return c;
  return 0;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

long futex(std::atomic<int>* w, int op, int val) {
  return syscall(SYS_futex, reinterpret_cast<int*>(w), op, val, nullptr, nullptr, 0);
}

void BM_os_futex_pingpong(benchmark::State& st) {
  cpu_set_t old;
  sched_getaffinity(0, sizeof old, &old);
  int cpu = pinned_cpu();
  pin_to(cpu);
  std::atomic<int> word{0};  // 0: main's turn, 1: partner's turn, 2: stop
  std::thread partner([&] {
    pin_to(cpu);
    for (;;) {
      int v;
      while ((v = word.load(std::memory_order_acquire)) == 0) futex(&word, FUTEX_WAIT_PRIVATE, 0);
      if (v == 2) return;
      word.store(0, std::memory_order_release);
      futex(&word, FUTEX_WAKE_PRIVATE, 1);
    }
  });
  for (auto _ : st) {
    word.store(1, std::memory_order_release);
    futex(&word, FUTEX_WAKE_PRIVATE, 1);
    while (word.load(std::memory_order_acquire) == 1) futex(&word, FUTEX_WAIT_PRIVATE, 1);
  }
  word.store(2, std::memory_order_release);
  futex(&word, FUTEX_WAKE_PRIVATE, 1);
  partner.join();
  sched_setaffinity(0, sizeof old, &old);
  st.counters["cpu"] = cpu;
}

void BM_os_pipe_pingpong(benchmark::State& st) {
  cpu_set_t old;
  sched_getaffinity(0, sizeof old, &old);
  int cpu = pinned_cpu();
  pin_to(cpu);
  int to_partner[2], to_main[2];
  if (pipe(to_partner) || pipe(to_main)) abort();
  std::thread partner([&] {
    pin_to(cpu);
    char c;
    for (;;) {
      if (read(to_partner[0], &c, 1) != 1 || c == 'q') return;
      if (write(to_main[1], &c, 1) != 1) return;
    }
  });
  char c = 'x';
  for (auto _ : st) {
    if (write(to_partner[1], &c, 1) != 1 || read(to_main[0], &c, 1) != 1) {
      st.SkipWithError("pipe");
      break;
    }
  }
  c = 'q';
  if (write(to_partner[1], &c, 1) != 1) abort();
  partner.join();
  for (int fd : {to_partner[0], to_partner[1], to_main[0], to_main[1]}) close(fd);
  sched_setaffinity(0, sizeof old, &old);
  st.counters["cpu"] = cpu;
}

// --------------------------------------------------------------- scale

void BM_syscall_getppid(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(syscall(SYS_getppid));
}

// What reading the thread's CPU clock on every switch would cost (it is a
// system call; the vDSO has no thread CPU clocks).
void BM_clock_thread_cputime(benchmark::State& st) {
  timespec ts;
  for (auto _ : st) {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    benchmark::DoNotOptimize(ts);
  }
}

void BM_rdtsc(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(__rdtsc());
}

void BM_rdfsbase_wrfsbase_pair(benchmark::State& st) {
  if (!g.fsgsbase) {
    st.SkipWithError("needs FSGSBASE (AT_HWCAP2 bit 1): skipped on this machine");
    return;
  }
  for (auto _ : st) {
    uint64_t v = _readfsbase_u64();
    _writefsbase_u64(v);
    benchmark::ClobberMemory();
  }
}

// What the chosen design adds per switch: FS to a fiber TCB, then back.
void BM_wrfsbase_to_tcb_and_back(benchmark::State& st) {
  if (!g.fsgsbase) {
    st.SkipWithError("needs FSGSBASE (AT_HWCAP2 bit 1): skipped on this machine");
    return;
  }
  char* region = map_region(g.region_size);
  char* pd = build_tcb(region + g.region_size);
  uint64_t self = _readfsbase_u64();
  for (auto _ : st) {
    _writefsbase_u64(reinterpret_cast<uint64_t>(pd));
    _writefsbase_u64(self);
    benchmark::ClobberMemory();
  }
  _dl_deallocate_tls(pd, false);
  munmap(region, g.region_size);
}

void BM_arch_prctl_set_fs(benchmark::State& st) {
  uint64_t self = _readfsbase_u64();
  for (auto _ : st) set_fs_syscall(self);
}

// --------------------------------------------------------------- creation

// A fiber TCB in an already mapped (pooled) region: init + _dl_allocate_tls
// + _dl_deallocate_tls.
void BM_create_fiber_tcb(benchmark::State& st) {
  char* region = map_region(g.region_size);
  char* top = region + g.region_size;
  for (auto _ : st) {
    char* pd = build_tcb(top);
    benchmark::DoNotOptimize(pd);
    _dl_deallocate_tls(pd, false);
  }
  munmap(region, g.region_size);
}

// The same with a fresh mmap/munmap of the fiber's region each time.
void BM_create_fiber_tcb_mmap(benchmark::State& st) {
  for (auto _ : st) {
    char* region = map_region(g.region_size);
    char* pd = build_tcb(region + g.region_size);
    benchmark::DoNotOptimize(pd);
    _dl_deallocate_tls(pd, false);
    munmap(region, g.region_size);
  }
}

void* empty_thread(void*) { return nullptr; }

void BM_create_pthread_join(benchmark::State& st) {
  for (auto _ : st) {
    pthread_t t;
    if (pthread_create(&t, nullptr, empty_thread, nullptr) != 0) {
      st.SkipWithError("pthread_create");
      break;
    }
    pthread_join(t, nullptr);
  }
}

double stat_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double stat_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

benchmark::internal::Benchmark* with_spread(benchmark::internal::Benchmark* b) {
  return b->ComputeStatistics("min", stat_min)->ComputeStatistics("max", stat_max);
}

}  // namespace

// Registration order = order of the output.
static auto* r1 = with_spread(benchmark::RegisterBenchmark("BM_switch_bare", BM_switch<Bare>)->Arg(0));
static auto* r2 = with_spread(benchmark::RegisterBenchmark("BM_switch_errno", BM_switch<ErrnoOnly>)->Arg(0));
static auto* r3 = with_spread(
    benchmark::RegisterBenchmark("BM_switch_image", BM_switch<ImageCopy>)->Arg(64)->Arg(512)->Arg(2048)->Arg(4096));
static auto* r4 =
    with_spread(benchmark::RegisterBenchmark("BM_switch_tcb_wrfsbase", BM_switch<TcbWrfsbase>)->Arg(0));
static auto* r4b =
    with_spread(benchmark::RegisterBenchmark("BM_switch_tcb_wrfsbase_cpu", BM_switch<TcbWrfsbaseCpu>)->Arg(0));
static auto* r5 =
    with_spread(benchmark::RegisterBenchmark("BM_switch_tcb_arch_prctl", BM_switch<TcbArchPrctl>)->Arg(0));
static auto* r6 = with_spread(benchmark::RegisterBenchmark("BM_os_futex_pingpong", BM_os_futex_pingpong));
static auto* r7 = with_spread(benchmark::RegisterBenchmark("BM_os_pipe_pingpong", BM_os_pipe_pingpong));
static auto* r8 = with_spread(benchmark::RegisterBenchmark("BM_syscall_getppid", BM_syscall_getppid));
static auto* r8b = with_spread(benchmark::RegisterBenchmark("BM_clock_thread_cputime", BM_clock_thread_cputime));
static auto* r8c = with_spread(benchmark::RegisterBenchmark("BM_rdtsc", BM_rdtsc));
static auto* r9 = with_spread(benchmark::RegisterBenchmark("BM_rdfsbase_wrfsbase_pair", BM_rdfsbase_wrfsbase_pair));
static auto* r10 =
    with_spread(benchmark::RegisterBenchmark("BM_wrfsbase_to_tcb_and_back", BM_wrfsbase_to_tcb_and_back));
static auto* r11 = with_spread(benchmark::RegisterBenchmark("BM_arch_prctl_set_fs", BM_arch_prctl_set_fs));
static auto* r12 = with_spread(benchmark::RegisterBenchmark("BM_create_fiber_tcb", BM_create_fiber_tcb));
static auto* r13 = with_spread(benchmark::RegisterBenchmark("BM_create_fiber_tcb_mmap", BM_create_fiber_tcb_mmap));
static auto* r14 = with_spread(benchmark::RegisterBenchmark("BM_create_pthread_join", BM_create_pthread_join));

int main(int argc, char** argv) {
  init_geometry();
  char buf[64];
  snprintf(buf, sizeof buf, "%zu", g.static_size);
  benchmark::AddCustomContext("static_tls_size", buf);
  snprintf(buf, sizeof buf, "%zu", g.static_align);
  benchmark::AddCustomContext("static_tls_align", buf);
  snprintf(buf, sizeof buf, "%zu", g.pthread_size);
  benchmark::AddCustomContext("sizeof_struct_pthread", buf);
  snprintf(buf, sizeof buf, "%zu", g.exe_tls);
  benchmark::AddCustomContext("this_exe_tls_bytes", buf);
  benchmark::AddCustomContext("fsgsbase", g.fsgsbase ? "yes" : "no");
  fprintf(stderr,
          "static TLS size %zu (align %zu), of which struct pthread %zu; this executable's own TLS %zu "
          "(4 KiB image buffer); FSGSBASE %s\n",
          g.static_size, g.static_align, g.pthread_size, g.exe_tls, g.fsgsbase ? "yes" : "no");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
