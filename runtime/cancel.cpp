#include "runtime/cancel.h"
#include "shim/raw_syscall.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "runtime/tls.h"
#include "shim/log.h"

namespace unblock::cancel {
namespace {

// glibc 2.36 nptl/descr.h (checked against pthread_testcancel's and
// pthread_setcanceltype's code on Debian 12: masks 0x39 and 0x3b).
constexpr int kDisabled = 1 << 0;
constexpr int kAsync = 1 << 1;
constexpr int kCanceling = 1 << 2;
constexpr int kCanceled = 1 << 3;
constexpr int kExiting = 1 << 4;
constexpr int kTerminated = 1 << 5;

// Unknown layout: no request is ever seen as due (glibc's own checks remain).
inline int load(void* tp) {
  int* w = tls::cancelhandling_of(tp);
  return w ? __atomic_load_n(w, __ATOMIC_SEQ_CST) : 0;
}

// x86-64 jmp_buf (sysdeps/x86_64/jmpbuf-offsets.h) and PTR_MANGLE: xor with
// the TCB's pointer guard (%fs:0x30, the same in every TCB), rotate left 17.
constexpr int kJbRsp = 6, kJbPc = 7;
inline uintptr_t pointer_guard() {
  uintptr_t g;
  asm volatile("mov %%fs:0x30, %0" : "=r"(g));
  return g;
}
inline uintptr_t mangle(uintptr_t v) {
  v ^= pointer_guard();
  return (v << 17) | (v >> 47);
}
inline uintptr_t demangle(uintptr_t v) {
  v = (v >> 17) | (v << 47);
  return v ^ pointer_guard();
}

// glibc's struct pthread_unwind_buf: the jmp_buf, then prev/cleanup in the pad.
struct UnwindBuf {
  uintptr_t jb[8];
  int mask_was_saved;
  void* prev;
  void* cleanup;
  int canceltype;
};

std::atomic<int> g_unwinder{0};  // 0 not tried, 1 loaded, -1 failed
// prime_personality(): 0 not yet, else the id of the thread priming, or
// kPrimed. libgcc's own first-use initialisation calls pthread_once, which
// is ours (Once::run primes too): the priming thread re-enters and must
// return at once.
constexpr int kPrimed = -1;
std::atomic<int> g_primed{0};

_Unwind_Reason_Code stop_at_once(_Unwind_Context*, void*) { return _URC_END_OF_STACK; }

}  // namespace

bool due_tp(void* tp) { return (load(tp) & (kDisabled | kCanceled | kExiting | kTerminated)) == kCanceled; }

bool due(const Fiber* f) { return due_tp(f->tp); }

bool async_due(const Fiber* f) {
  return (load(f->tp) & (kDisabled | kAsync | kCanceled | kExiting | kTerminated)) == (kAsync | kCanceled);
}

void prime_personality() {
  int me = current_thread_id();
  int s = 0;
  if (!g_primed.compare_exchange_strong(s, me, std::memory_order_acq_rel)) {
    // Done, or re-entered by the priming thread, or another thread primes:
    // wait for it (one short walk).
    while (s != kPrimed && s != me) {
      errno_syscall(SYS_sched_yield);  // raw: the runtime never calls a hooked symbol
      s = g_primed.load(std::memory_order_acquire);
    }
    return;
  }
  // libgcc is linked into this library statically, so the personality
  // routine of our own C++ frames (destructors in hooks and the runtime) is
  // a private copy, and so is the _Unwind_SetGR it calls on the context of
  // the unwinder that runs (libgcc_s's: glibc's forced unwind, the
  // program's exceptions). That copy checks register sizes against a table
  // only its own unwinder fills (on first use), and aborts while the table
  // is empty. One trivial walk with our unwinder fills it.
  _Unwind_Backtrace(stop_at_once, nullptr);
  g_primed.store(kPrimed, std::memory_order_release);
}

bool prepare_unwinder() {
  int s = g_unwinder.load(std::memory_order_acquire);
  if (s != 0) return s > 0;
  prime_personality();
  // glibc's own loader (GLIBC_PRIVATE): the handle its __pthread_unwind uses.
  // Calling it is what glibc's pthread_cancel/pthread_exit do first.
  void* link = nullptr;
  if (auto get = reinterpret_cast<void* (*)()>(dlsym(RTLD_DEFAULT, "__libc_unwind_link_get"))) link = get();
  if (!link) link = dlopen("libgcc_s.so.1", RTLD_NOW);
  if (!link) LOG_WARN("cannot load libgcc_s.so.1: thread cancellation will abort, as glibc's does");
  g_unwinder.store(link ? 1 : -1, std::memory_order_release);
  return link != nullptr;
}

static_assert(kDueMask == (kDisabled | kCanceled | kExiting | kTerminated) && kDueValue == kCanceled);

void point_slow() {
  void* tp = tls::current_tp();
  if (!tls::cancelhandling_of(tp)) {
    pthread_testcancel();  // glibc decides alone
    return;
  }
  if (!due_tp(tp)) return;
  Fiber* f = Fiber::current();
  if (f && f->is_main && !f->unwind_limit && sched::active()) {
    // main's buffer could not be redirected (adopt_main): glibc's unwind
    // would end the carrier. End main's fiber without unwinding its frames.
    __atomic_fetch_or(tls::cancelhandling_of(tp), kExiting, __ATOMIC_SEQ_CST);
    sched::exit_fiber(f, PTHREAD_CANCELED);
  }
  // glibc: result = PTHREAD_CANCELED, EXITING set, forced unwind to the
  // TCB's cleanup_jmp_buf (a fiber's: fiber_entry's; main's: adopt_main's
  // landing; a plain thread's: start_thread's).
  pthread_testcancel();
}

int request(Fiber* target) {
  int js = target->join_state.load(std::memory_order_acquire);
  if (js == kExited || js == kJoined || target->run_state.load(std::memory_order_acquire) ==
                                           static_cast<int>(RunState::kDone)) {
    return 0;  // glibc 2.36: the outcome is already decided
  }
  if (!prepare_unwinder()) {
    // glibc: __libc_fatal("unable to load libgcc_s.so.1").
    log::always("pthread_cancel: unable to load libgcc_s.so.1");
    abort();
  }
  int* word = tls::cancelhandling_of(target->tp);
  // seq_cst: pairs with the scheduler's kParked store and re-check of due()
  // (sched::park), as a permit does.
  int old = __atomic_fetch_or(word, kCanceling | kCanceled, __ATOMIC_SEQ_CST);
  int now = old | kCanceling | kCanceled;
  if (old == now) return 0;
  if (now & (kDisabled | kExiting | kTerminated)) return 0;  // acted on when enabled again
  Fiber* self = Fiber::current();
  if (target == self) {
    // glibc: a self-cancel of the asynchronous type acts at once.
    if (now & kAsync) point();
    return 0;
  }
  // A cancellable park re-checks due() when woken; any other park goes on.
  sched::wake(target);
  // Asynchronous: the signal thread marks the target's carrier until it
  // reaches the program's code (or a cancellation point).
  if (now & kAsync) signals::watch_cancel();
  return 0;
}

void act_in_handler(Fiber* f) {
  if (!async_due(f)) return;
  // Unwinds through the interrupted frame (the kernel's signal frame is
  // recognised by the unwinder from our restorer's code).
  pthread_testcancel();
}

}  // namespace unblock::cancel

// Where glibc's unwind of main lands (adopt_main): the jmp_buf gives us
// __libc_start_call_main's stack pointer; main's frames below it are dead.
extern "C" [[noreturn]] __attribute__((visibility("hidden"), used)) void unblock_main_unwound() {
  using namespace unblock;
  Fiber* f = Fiber::current();
  sched::exit_fiber(f, f->exit_called ? f->result : PTHREAD_CANCELED);
}
extern "C" void unblock_main_landing();
asm(".text\n"
    ".align 16\n"
    ".type unblock_main_landing, @function\n"
    "unblock_main_landing:\n"
    "  and $-16, %rsp\n"
    "  call unblock_main_unwound\n"
    "  ud2\n"
    ".size unblock_main_landing, .-unblock_main_landing\n");

namespace unblock::cancel {

bool adopt_main(Fiber* f) {
  void** slot = tls::cleanup_buffer_slot(f->tp);
  if (!slot || !*slot) return false;
  // The chain runs from the innermost pthread_cleanup_push buffer out to
  // __libc_start_call_main's, whose prev is null.
  auto* b = static_cast<UnwindBuf*>(*slot);
  for (int i = 0; i < 64 && b->prev; ++i) b = static_cast<UnwindBuf*>(b->prev);
  if (b->prev) return false;
  uintptr_t sp = demangle(b->jb[kJbRsp]);
  uintptr_t pc = demangle(b->jb[kJbPc]);
  auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  Dl_info info{};
  // Sanity: a frame above ours on this stack, resuming inside libc.
  if (sp <= here || sp - here > (uintptr_t{256} << 20) || !dladdr(reinterpret_cast<void*>(pc), &info) ||
      !info.dli_fname || !strstr(info.dli_fname, "libc.so")) {
    LOG_WARN("main's unwind buffer not recognised: cancelling main will not unwind its frames");
    return false;
  }
  b->jb[kJbPc] = mangle(reinterpret_cast<uintptr_t>(&unblock_main_landing));
  f->unwind_limit = reinterpret_cast<char*>(sp);
  return true;
}

}  // namespace unblock::cancel
