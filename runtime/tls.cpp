#include "runtime/tls.h"
#include "shim/raw_syscall.h"

#include <asm/prctl.h>
#include <dlfcn.h>
#include <elf.h>
#include <immintrin.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "shim/config.h"
#include "shim/log.h"

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

namespace unblock::tls {
// Read inline by cancelhandling_of (tls.h).
long g_off_cancelhandling = -1;

namespace {

using GetStaticInfo = void (*)(size_t*, size_t*);
using AllocateTls = void* (*)(void*);
using DeallocateTls = void (*)(void*, bool);
using VoidFn = void (*)();

GetStaticInfo g_get_static_info;
AllocateTls g_allocate;
DeallocateTls g_deallocate;
VoidFn g_ctype_init;
VoidFn g_call_tls_dtors;

const char* g_failure = "not initialised";
bool g_fsgsbase = false;
size_t g_static_size = 0;
size_t g_static_align = 0;
size_t g_pthread_size = 0;
size_t g_reserve = 0;

// struct pthread offsets.
long g_off_list = -1;
long g_off_tid = -1;
long g_off_robust_prev = -1;
long g_off_robust_head = -1;
long g_off_specific = -1;
long g_off_specific_1st = -1;
long g_off_rseq_cpu = -1;
long g_off_tcache = 0;  // malloc's tcache pointer, relative to the thread pointer (negative)
bool g_have_tcache = false;
long g_off_cleanup_jmp_buf = -1;  // malloc's tcache pointer, relative to the thread pointer

// tcbhead_t, fixed by the x86-64 ABI that GCC's stack protector relies on.
constexpr long kOffTcb = 0, kOffSelf = 16, kOffMultipleThreads = 24, kOffSysinfo = 32,
               kOffStackGuard = 40, kOffPointerGuard = 48, kOffFeature1 = 72;

template <typename T>
T sym(const char* name, const char* version) {
  void* p = version ? dlvsym(RTLD_DEFAULT, name, version) : nullptr;
  if (!p) p = dlsym(RTLD_DEFAULT, name);
  return reinterpret_cast<T>(p);
}

// libthread_db descriptors: {size in bits, count, offset}.
long db_offset(const char* field) {
  auto d = sym<const uint32_t*>(field, "GLIBC_PRIVATE");
  return d ? static_cast<long>(d[2]) : -1;
}

bool safe_read(const void* addr, void* out, size_t len) {
  iovec local{out, len};
  iovec remote{const_cast<void*>(addr), len};
  return errno_syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) == static_cast<long>(len);
}

struct TlsBlock {
  char* data = nullptr;
  size_t size = 0;
};

int find_libc_block(dl_phdr_info* info, size_t, void* out) {
  if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so")) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS) {
      auto* b = static_cast<TlsBlock*>(out);
      b->data = static_cast<char*>(info->dlpi_tls_data);
      b->size = info->dlpi_phdr[i].p_memsz;
      return 1;
    }
  }
  return 0;
}

// malloc keeps a per-thread cache (tcache) behind a pointer in libc's TLS
// block. A fiber TCB would otherwise grow its own cache and leak it at fiber
// exit (glibc frees it only in start_thread). Find that pointer: after
// freeing two small chunks of different sizes, the tcache's entries[0] and
// entries[1] hold exactly them. Read candidates with process_vm_readv so a
// word that is not a pointer cannot fault.
void probe_tcache(char* tp) {
  TlsBlock libc;
  dl_iterate_phdr(find_libc_block, &libc);
  if (!libc.data) return;
  void* volatile a = malloc(24);
  void* volatile b = malloc(40);
  free(a);
  free(b);
  for (size_t off = 0; off + 8 <= libc.size; off += 8) {
    uintptr_t v;
    memcpy(&v, libc.data + off, 8);
    if (v == 0 || (v & 15)) continue;
    struct {
      uint16_t counts[64];
      void* entries[64];
    } t;
    if (!safe_read(reinterpret_cast<void*>(v), &t, sizeof t)) continue;
    if (t.entries[0] == a && t.entries[1] == b && t.counts[0] >= 1 && t.counts[1] >= 1) {
      g_off_tcache = (libc.data + off) - tp;
      g_have_tcache = true;
      return;
    }
  }
}

bool fail(const char* why) {
  g_failure = why;
  return false;
}

}  // namespace

bool init_identity() {
  if (g_off_tid < 0) g_off_tid = db_offset("_thread_db_pthread_tid");
  return g_off_tid >= 0;
}

bool init() {
  init_identity();
  g_get_static_info = sym<GetStaticInfo>("_dl_get_tls_static_info", "GLIBC_PRIVATE");
  g_allocate = sym<AllocateTls>("_dl_allocate_tls", "GLIBC_PRIVATE");
  g_deallocate = sym<DeallocateTls>("_dl_deallocate_tls", "GLIBC_PRIVATE");
  g_ctype_init = sym<VoidFn>("__ctype_init", "GLIBC_PRIVATE");
  g_call_tls_dtors = sym<VoidFn>("__call_tls_dtors", "GLIBC_PRIVATE");
  if (!g_get_static_info || !g_allocate || !g_deallocate || !g_ctype_init || !g_call_tls_dtors) {
    return fail("glibc does not export the TLS allocation functions this version relies on");
  }
  auto size_desc = sym<const uint32_t*>("_thread_db_sizeof_pthread", "GLIBC_PRIVATE");
  if (!size_desc) return fail("glibc does not describe struct pthread (_thread_db_sizeof_pthread)");
  g_pthread_size = size_desc[0];
  g_off_list = db_offset("_thread_db_pthread_list");
  g_off_cancelhandling = db_offset("_thread_db_pthread_cancelhandling");
  g_off_specific = db_offset("_thread_db_pthread_specific");
  if (g_off_list < 0 || g_off_tid < 0 || g_off_cancelhandling < 0 || g_off_specific < 0) {
    return fail("glibc's struct pthread descriptors are incomplete");
  }
  g_get_static_info(&g_static_size, &g_static_align);
  if (g_static_size <= g_pthread_size || g_static_align == 0 || (g_static_align & (g_static_align - 1))) {
    return fail("unexpected static TLS geometry");
  }

  // Verify the layout against this thread's live descriptor.
  char* self = static_cast<char*>(current_tp());
  if (*reinterpret_cast<void**>(self + kOffSelf) != self) return fail("thread pointer is not a struct pthread");
  int tid;
  memcpy(&tid, self + g_off_tid, sizeof tid);
  if (tid != static_cast<int>(errno_syscall(SYS_gettid))) return fail("struct pthread tid offset does not match");
  // robust_prev and robust_head follow tid (+ pid) in every glibc since 2.3;
  // an idle thread's robust list is empty, i.e. points to itself.
  long robust_head = g_off_tid + 16;
  if (*reinterpret_cast<char**>(self + robust_head) == self + robust_head &&
      *reinterpret_cast<char**>(self + g_off_tid + 8) == self + robust_head) {
    g_off_robust_prev = g_off_tid + 8;
    g_off_robust_head = robust_head;
  } else {
    LOG_INFO("struct pthread robust list not where expected; left empty in fibers");
  }
  // specific[0] points at specific_1stblock (32 entries of {seq, data}).
  long first = g_off_specific - 32 * 16;
  if (*reinterpret_cast<char**>(self + g_off_specific) == self + first) g_off_specific_1st = first;
  // cleanup_jmp_buf precedes cancelhandling; on a running thread it points at
  // the unwind buffer of start_thread / __libc_start_call_main, i.e. into
  // this stack just above our own frame.
  {
    char* v = *reinterpret_cast<char**>(self + g_off_cancelhandling - 8);
    char* frame = static_cast<char*>(__builtin_frame_address(0));
    if (v > frame && v - frame < (64l << 20)) g_off_cleanup_jmp_buf = g_off_cancelhandling - 8;
    else LOG_INFO("pthread_exit unwinding unavailable: cleanup buffer field not verified");
  }
  auto rseq_offset = sym<const ptrdiff_t*>("__rseq_offset", nullptr);
  auto rseq_size = sym<const unsigned*>("__rseq_size", nullptr);
  if (rseq_offset && rseq_size && *rseq_size >= 8 && *rseq_offset > 0 &&
      static_cast<size_t>(*rseq_offset) + 8 <= g_pthread_size) {
    g_off_rseq_cpu = *rseq_offset + 4;  // struct rseq: cpu_id_start, cpu_id
  }

  // UNBLOCK_FS_SWITCH=arch_prctl takes the path of machines without FSGSBASE
  // on one that has it (the test suite runs that way too: nothing may
  // depend on the instruction). wrfsbase where the CPU lacks it would fault:
  // refused with one message.
  bool have = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
  int want = config::get().fs_switch;
  if (want == Config::kFsWrfsbase && !have) {
    log::always("UNBLOCK_FS_SWITCH=wrfsbase ignored: this CPU or kernel has no FSGSBASE (AT_HWCAP2); using arch_prctl");
  }
  g_fsgsbase = have && want != Config::kFsArchPrctl;
  size_t tls_part = g_static_size - g_pthread_size;
  g_reserve = (g_pthread_size + tls_part + 2 * g_static_align + 63) & ~size_t{63};
  probe_tcache(self);
  if (!g_have_tcache) LOG_INFO("malloc thread cache not located: each thread keeps its own until exit");
  LOG_INFO("per-fiber TLS: static TLS %zu bytes, struct pthread %zu, FS switch by %s", g_static_size,
           g_pthread_size, g_fsgsbase ? "wrfsbase" : (have ? "arch_prctl (UNBLOCK_FS_SWITCH)" : "arch_prctl (no FSGSBASE)"));
  g_failure = nullptr;
  return true;
}

const char* failure() { return g_failure; }
bool fast_switch() { return g_fsgsbase; }
size_t reserve() { return g_reserve; }

void* create(char* region_top, char** stack_top, int tid) {
  char* self = static_cast<char*>(current_tp());
  uintptr_t top = reinterpret_cast<uintptr_t>(region_top) - g_pthread_size;
  char* pd = reinterpret_cast<char*>(top & ~(g_static_align - 1));
  char* tls_low = pd - (g_static_size - g_pthread_size);
  memset(tls_low, 0, g_static_size);  // a reused region must not leak old values
  *reinterpret_cast<void**>(pd + kOffTcb) = pd;
  *reinterpret_cast<void**>(pd + kOffSelf) = pd;
  *reinterpret_cast<int*>(pd + kOffMultipleThreads) = 1;
  memcpy(pd + kOffSysinfo, self + kOffSysinfo, 8);
  memcpy(pd + kOffStackGuard, self + kOffStackGuard, 8);
  memcpy(pd + kOffPointerGuard, self + kOffPointerGuard, 8);
  memcpy(pd + kOffFeature1, self + kOffFeature1, 4);
  char* list = pd + g_off_list;
  reinterpret_cast<char**>(list)[0] = list;
  reinterpret_cast<char**>(list)[1] = list;
  memcpy(pd + g_off_tid, &tid, sizeof tid);
  if (g_off_robust_head >= 0) {
    char* head = pd + g_off_robust_head;
    *reinterpret_cast<char**>(pd + g_off_robust_prev) = head;
    *reinterpret_cast<char**>(head) = head;
    memcpy(head + 8, self + g_off_robust_head + 8, 8);  // futex_offset
  }
  if (g_off_specific_1st >= 0) *reinterpret_cast<char**>(pd + g_off_specific) = pd + g_off_specific_1st;
  if (g_off_rseq_cpu >= 0) *reinterpret_cast<int*>(pd + g_off_rseq_cpu) = -1;  // unregistered
  if (!g_allocate(pd)) return nullptr;
  *stack_top = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(tls_low) & ~uintptr_t{63});
  // The ctype table pointers live in TLS and start out null; glibc's
  // start_thread sets them with __ctype_init on the new thread's TCB.
  void* old = current_tp();
  set_tp(pd);
  g_ctype_init();
  set_tp(old);
  return pd;
}

void run_exit_destructors() { g_call_tls_dtors(); }

void destroy(void* tp) {
  char* pd = static_cast<char*>(tp);
  // pthread_setspecific may have allocated second-level key arrays.
  if (g_off_specific >= 0) {
    auto** specific = reinterpret_cast<void**>(pd + g_off_specific);
    for (int i = 0; i < 32; ++i) {
      void* p = specific[i];
      if (p && !(i == 0 && g_off_specific_1st >= 0 && p == pd + g_off_specific_1st)) free(p);
      specific[i] = nullptr;
    }
  }
  g_deallocate(pd, false);
}

void set_tp(void* tp) {
  if (__builtin_expect(g_fsgsbase, 1)) {
    _writefsbase_u64(reinterpret_cast<uint64_t>(tp));
  } else {
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "0"(SYS_arch_prctl), "D"(ARCH_SET_FS), "S"(tp)
                 : "rcx", "r11", "memory");
  }
}

bool g_off_tid_unknown() { return g_off_tid < 0; }

int tid_of(void* tp) {
  int tid;
  memcpy(&tid, static_cast<char*>(tp) + g_off_tid, sizeof tid);
  return tid;
}

void set_tid(void* tp, int tid) { memcpy(static_cast<char*>(tp) + g_off_tid, &tid, sizeof tid); }

void lend_malloc_cache(void* carrier_tp, void* fiber_tp) {
  if (!g_have_tcache) return;
  memcpy(static_cast<char*>(fiber_tp) + g_off_tcache, static_cast<char*>(carrier_tp) + g_off_tcache, 8);
}

void prefetch_tcb(void* tp) {
  auto* t = static_cast<char*>(tp);
  __builtin_prefetch(t, 1);
  if (g_off_tid >= 0) __builtin_prefetch(t + g_off_tid, 0);
  if (g_have_tcache) __builtin_prefetch(t + g_off_tcache, 1);
  if (g_off_cancelhandling >= 0) __builtin_prefetch(t + g_off_cancelhandling, 0);
}

void return_malloc_cache(void* carrier_tp, void* fiber_tp) {
  if (!g_have_tcache) return;
  // The cache may have been created while the fiber ran.
  memcpy(static_cast<char*>(carrier_tp) + g_off_tcache, static_cast<char*>(fiber_tp) + g_off_tcache, 8);
  memset(static_cast<char*>(fiber_tp) + g_off_tcache, 0, 8);
}

bool set_cleanup_buffer(void* tp, void* buf) {
  if (g_off_cleanup_jmp_buf < 0) return false;
  *reinterpret_cast<void**>(static_cast<char*>(tp) + g_off_cleanup_jmp_buf) = buf;
  return true;
}

void* robust_head_of(void* tp) {
  return g_off_robust_head < 0 ? nullptr : static_cast<char*>(tp) + g_off_robust_head;
}

int* cancelhandling_lookup(void* tp) {
  // Before the runtime starts (plain threads in condition waits): learn
  // the offset now. init() stores the same value.
  long off = db_offset("_thread_db_pthread_cancelhandling");
  if (off < 0) return nullptr;
  __atomic_store_n(&g_off_cancelhandling, off, __ATOMIC_RELAXED);
  return reinterpret_cast<int*>(static_cast<char*>(tp) + off);
}

void** cleanup_buffer_slot(void* tp) {
  if (g_off_cleanup_jmp_buf < 0) return nullptr;
  return reinterpret_cast<void**>(static_cast<char*>(tp) + g_off_cleanup_jmp_buf);
}

}  // namespace unblock::tls

namespace unblock {
int current_thread_id() {
  if (__builtin_expect(tls::g_off_tid_unknown(), 0) && !tls::init_identity()) {
    return static_cast<int>(errno_syscall(SYS_gettid));
  }
  void* tp = tls::current_tp();
  int tid = tls::tid_of(tp);
  return tid ? tid : static_cast<int>(errno_syscall(SYS_gettid));
}
}  // namespace unblock
