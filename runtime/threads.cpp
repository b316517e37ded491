// The thread calls of runtime/api.h: pthread_create/join/tryjoin/timedjoin/
// clockjoin/detach/exit/cancel, pthread_getattr_np, scheduling parameters
// (recorded per fiber, checked as the kernel checks them, never applied to a
// carrier), thread names (pthread_*name_np, prctl), key destructors,
// sched_yield, the resource-limit calls the thread limit follows, and fork.
//
// Owns: the pthread key table and the thread-exit duties the scheduler runs
// on a dying fiber (exit_duties, threads.h); the probe of glibc's
// pthread_attr_t layout. Must not: call an exported hook (real:: and
// raw_syscall only); be called from a signal handler.
//
// pthread_cancel: a fiber's request is runtime/cancel.cpp's; the
// cancellation points that park act on it, and the joins here.
// pthread_self() and pthread_equal() are not hooked: a fiber's FS base is its
// own TCB, so glibc's versions already return the fiber's identity.
// pthread_getspecific/setspecific likewise work on the fiber's own TCB;
// only key destructors need the runtime, because glibc runs them in
// start_thread, which fibers do not go through.
#include "runtime/threads.h"

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "runtime/api.h"
#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "runtime/sync.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock {
namespace {

// The calling fiber if the runtime may act for this call, else nullptr.
Fiber* caller() {
  Fiber* f = Fiber::current();
  return f && sched::active() ? f : nullptr;
}

// The fiber behind a pthread_t while the runtime runs, else nullptr.
Fiber* fiber_of(pthread_t t) { return sched::active() ? Fiber::from_thread(t) : nullptr; }

// A libc result (-1 and errno on failure) as a result or -errno.
long neg_errno(long r) { return r < 0 ? -errno : r; }

// ---- keys ---------------------------------------------------------------------------

// Destructors of pthread keys, recorded as keys are created (every key the
// program creates goes through key_create).
constexpr int kMaxKeys = 1024;  // PTHREAD_KEYS_MAX
std::atomic<void (*)(void*)> g_key_dtor[kMaxKeys];
std::atomic<bool> g_key_live[kMaxKeys];

void run_key_destructors() {
  // As glibc: up to PTHREAD_DESTRUCTOR_ITERATIONS rounds while values remain.
  for (int round = 0; round < 4; ++round) {
    bool again = false;
    for (int k = 0; k < kMaxKeys; ++k) {
      if (!g_key_live[k].load(std::memory_order_acquire)) continue;
      void (*dtor)(void*) = g_key_dtor[k].load(std::memory_order_acquire);
      if (!dtor) continue;
      void* v = pthread_getspecific(static_cast<pthread_key_t>(k));
      if (!v) continue;
      pthread_setspecific(static_cast<pthread_key_t>(k), nullptr);
      dtor(v);
      again = true;
    }
    if (!again) break;
  }
}

// ---- glibc's pthread_attr_t ---------------------------------------------------------

// pthread_attr_getstacksize() reports glibc's default when the program set
// no size, so it cannot tell "unset" (UNBLOCK_STACK_SIZE applies) from "set"
// (the program's size wins). glibc keeps the size the program set, 0 if none,
// in one word of the attribute object: find that word once by setting two
// sizes on a scratch object. If the probe fails (a layout we do not know), a
// size equal to glibc's default counts as unset.
constexpr int kNotProbed = -2;
std::atomic<int> g_stacksize_word{kNotProbed};

int probe_stacksize_word() {
  constexpr int kWords = sizeof(pthread_attr_t) / sizeof(size_t);
  const size_t sizes[2] = {(1u << 20) + 3 * 4096, (2u << 20) + 5 * 4096};
  size_t fresh[kWords], words[kWords];
  pthread_attr_t a;
  pthread_attr_init(&a);
  memcpy(fresh, &a, sizeof fresh);
  int word = -1;
  for (size_t size : sizes) {
    pthread_attr_setstacksize(&a, size);
    memcpy(words, &a, sizeof words);
    int found = -1;
    for (int i = 0; i < kWords; ++i) {
      if (words[i] == size && fresh[i] == 0) found = found == -1 ? i : -2;
    }
    if (found < 0 || (word >= 0 && found != word)) {
      word = -1;
      break;
    }
    word = found;
  }
  pthread_attr_destroy(&a);
  return word;
}

// The stack size the program asked for in attr, 0 if it asked for none.
size_t requested_stack_size(const pthread_attr_t* attr) {
  // Racing first callers compute the same answer; relaxed is enough.
  int word = g_stacksize_word.load(std::memory_order_relaxed);
  if (word == kNotProbed) {
    word = probe_stacksize_word();
    g_stacksize_word.store(word, std::memory_order_relaxed);
  }
  if (word >= 0) {
    size_t words[sizeof(pthread_attr_t) / sizeof(size_t)];
    memcpy(words, attr, sizeof words);
    return words[word];
  }
  size_t size = 0, fallback = 0;
  pthread_attr_t d;
  pthread_attr_getstacksize(attr, &size);
  pthread_attr_init(&d);
  pthread_attr_getstacksize(&d, &fallback);
  pthread_attr_destroy(&d);
  return size == fallback ? 0 : size;
}

// ---- scheduling parameters ----------------------------------------------------------

// What the kernel's sched_setscheduler()/sched_setparam() would answer for
// giving thread f (policy, priority): EINVAL for a policy or priority the
// kernel rejects, EPERM for a change an unprivileged caller may not make
// (kernel/sched/syscalls.c, user_check_sched_setscheduler: without
// CAP_SYS_NICE a real-time policy needs RLIMIT_RTPRIO, a priority may not
// rise above it, SCHED_IDLE is left only within RLIMIT_NICE, and
// SCHED_RESET_ON_FORK may not be dropped). cur_policy/cur_priority: f's
// present values (a new thread: its creator's). Returns 0 or a positive errno.
int check_sched(int cur_policy, int cur_priority, int policy, int priority, int nice) {
  int base = policy & ~SCHED_RESET_ON_FORK;
  bool rt = base == SCHED_FIFO || base == SCHED_RR;
  if (!rt && base != SCHED_OTHER && base != SCHED_BATCH && base != SCHED_IDLE) return EINVAL;
  if (rt ? (priority < 1 || priority > 99) : priority != 0) return EINVAL;
  if (sched::has_capability(CAP_SYS_NICE)) return 0;
  int cur_base = cur_policy & ~SCHED_RESET_ON_FORK;
  if (rt) {
    rlimit rl{};
    raw_syscall(SYS_getrlimit, RLIMIT_RTPRIO, reinterpret_cast<long>(&rl));
    if (base != cur_base && rl.rlim_cur == 0) return EPERM;
    if (priority > cur_priority && static_cast<rlim_t>(priority) > rl.rlim_cur) return EPERM;
  }
  if (cur_base == SCHED_IDLE && base != SCHED_IDLE) {
    // can_nice(p, nice): 20 - nice must be within RLIMIT_NICE (the carrier's nice).
    rlimit rl{};
    raw_syscall(SYS_getrlimit, RLIMIT_NICE, reinterpret_cast<long>(&rl));
    if (static_cast<rlim_t>(20 - nice) > rl.rlim_cur) return EPERM;
  }
  if ((cur_policy & SCHED_RESET_ON_FORK) && !(policy & SCHED_RESET_ON_FORK)) return EPERM;
  return 0;
}

// The calling thread's policy and priority (what a new thread inherits).
void current_sched(int* policy, int* priority) {
  if (Fiber* f = caller()) {
    *policy = f->sched_policy;
    *priority = f->sched_priority;
    return;
  }
  sched_param p{};
  *policy = static_cast<int>(raw_syscall(SYS_sched_getscheduler, 0));
  *priority = raw_syscall(SYS_sched_getparam, 0, reinterpret_cast<long>(&p)) == 0 ? p.sched_priority : 0;
}

// f takes (policy, priority) if the kernel's rules allow it: 0 or -errno.
int set_sched(Fiber* f, int policy, int priority) {
  if (int r = check_sched(f->sched_policy, f->sched_priority, policy, priority, f->nice)) return -r;
  f->sched_policy = policy;
  f->sched_priority = priority;
  return 0;
}

// ---- joins --------------------------------------------------------------------------

// 0 or -errno; 1: not a fiber (the real call serves it).
int join_common(pthread_t thread, void** ret, const Deadline& d, bool try_only) {
  Fiber* target = fiber_of(thread);
  if (!target) return 1;
  // The waiting joins are cancellation points; tryjoin is not.
  if (!try_only) cancel::point();
  int r = sched::join(target, ret, d, try_only);
  if (r == ECANCELED) cancel::point();  // the target stays joinable
  threads::deliver_due();
  return -r;
}

bool valid_timespec(const timespec* ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// The thread limit (sched::spawn) caches RLIMIT_NPROC: a change the
// program makes to its own limits refreshes it.
int after_limit_change(int r, pid_t pid, int resource) {
  if (r < 0) return -errno;
  if (resource == RLIMIT_NPROC && (pid == 0 || pid == static_cast<pid_t>(raw_syscall(SYS_getpid)))) {
    sched::refresh_nproc_limit();
  }
  return r;
}

}  // namespace

// ---- runtime-internal (threads.h) ---------------------------------------------------------

namespace threads {

void exit_duties(Fiber* f) {
  run_key_destructors();
  if (void* head = f ? tls::robust_head_of(f->tp) : nullptr) sync::Mutex::owner_exited(head, f->tid);
}


}  // namespace threads

// ---- runtime/api.h ---------------------------------------------------------------------

namespace rt {

int thread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  size_t stack_size = 0;
  int detach = PTHREAD_CREATE_JOINABLE;
  sched::SpawnAttrs sa;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (!attr) {
    // glibc's defaults (pthread_setattr_default_np may have changed them).
    pthread_attr_t defaults;
    sa.guard_size = page;
    if (pthread_getattr_default_np(&defaults) == 0) {
      pthread_attr_getguardsize(&defaults, &sa.guard_size);
      pthread_attr_destroy(&defaults);
    }
  } else {
    // pthread_attr_getstack() reports the stored stack address minus the
    // size (stacks grow down), so the stored address - null when the program
    // set none - is their sum. (The deprecated getstackaddr() would report
    // it directly, at the price of a link-time warning.)
    void* low = nullptr;
    size_t size = 0;
    pthread_attr_getstack(attr, &low, &size);
    void* addr = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(low) + size);
    if (addr != nullptr) {
      // The program supplied its own stack memory: honour it with a real thread.
      LOG_INFO("pthread_create with a caller-supplied stack: runs as an OS thread");
      // It starts with its creator's signal mask, as under glibc: a fiber's
      // is emulated, its carrier's real one blocks every signal.
      Fiber* self = caller();
      if (self && signals::table_ready()) {
        struct Create {
          pthread_t* thread;
          const pthread_attr_t* attr;
          void* (*start)(void*);
          void* arg;
        } c{thread, attr, start, arg};
        return -static_cast<int>(signals::with_program_mask(self, [](void* p) -> long {
          auto* c = static_cast<Create*>(p);
          return real::pthread_create(c->thread, c->attr, c->start, c->arg);
        }, &c));
      }
      return -real::pthread_create(thread, attr, start, arg);
    }
    stack_size = requested_stack_size(attr);
    pthread_attr_getdetachstate(attr, &detach);
    pthread_attr_getguardsize(attr, &sa.guard_size);
    int inherit = PTHREAD_INHERIT_SCHED;
    pthread_attr_getinheritsched(attr, &inherit);
    if (inherit == PTHREAD_EXPLICIT_SCHED) {
      sched_param p{};
      pthread_attr_getschedpolicy(attr, &sa.policy);
      pthread_attr_getschedparam(attr, &p);
      sa.priority = p.sched_priority;
      sa.explicit_sched = true;
    }
  }
  if (!sched::ensure_started()) return -real::pthread_create(thread, attr, start, arg);
  // glibc (allocate_stack) adds the guard, rounded up to pages, to the
  // stack size; a sum that overflows is EINVAL (one too large to map: EAGAIN).
  size_t size = stack_size ? stack_size : config::get().stack_size;
  size_t guard = (sa.guard_size + page - 1) & ~(page - 1);
  if (guard < sa.guard_size || size + guard < guard) return -EINVAL;
  if (sa.explicit_sched) {
    // The kernel checks the new thread's policy against its creator's.
    int cur_policy, cur_priority;
    current_sched(&cur_policy, &cur_priority);
    Fiber* self = caller();
    int nice = self ? self->nice : 20 - static_cast<int>(raw_syscall(SYS_getpriority, PRIO_PROCESS, 0));
    if (int r = check_sched(cur_policy, cur_priority, sa.policy, sa.priority, nice)) return -r;
  }
  sa.stack_size = stack_size;
  sa.detached = detach == PTHREAD_CREATE_DETACHED;
  return -sched::spawn(start, arg, sa, thread);
}

int setrlimit(__rlimit_resource_t resource, const struct rlimit* limit) {
  return after_limit_change(real::setrlimit(resource, limit), 0, resource);
}

int setrlimit64(__rlimit_resource_t resource, const struct rlimit64* limit) {
  return after_limit_change(real::setrlimit64(resource, limit), 0, resource);
}

int prlimit(pid_t pid, __rlimit_resource resource, const struct rlimit* limit, struct rlimit* old) {
  return after_limit_change(real::prlimit(pid, resource, limit, old), limit ? pid : -1, resource);
}

int prlimit64(pid_t pid, __rlimit_resource resource, const struct rlimit64* limit, struct rlimit64* old) {
  return after_limit_change(real::prlimit64(pid, resource, limit, old), limit ? pid : -1, resource);
}

int thread_setschedparam(pthread_t thread, int policy, const sched_param* param) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_setschedparam(thread, policy, param);
  return set_sched(f, policy, param->sched_priority);
}

int thread_getschedparam(pthread_t thread, int* policy, sched_param* param) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_getschedparam(thread, policy, param);
  *policy = f->sched_policy;
  memset(param, 0, sizeof *param);
  param->sched_priority = f->sched_priority;
  return 0;
}

int thread_setschedprio(pthread_t thread, int prio) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_setschedprio(thread, prio);
  return set_sched(f, f->sched_policy, prio);
}

// The sched_* calls name a thread by id, 0 for the caller: a fiber's own id
// or another live fiber's means that thread, never the carrier they share.

int sched_setscheduler(pid_t pid, int policy, const sched_param* param) {
  int r = 0;
  if (!threads::for_thread_id(caller(), pid, [&](Fiber* f) {
        r = param ? set_sched(f, policy, param->sched_priority) : -EINVAL;
      })) {
    return static_cast<int>(neg_errno(real::sched_setscheduler(pid, policy, param)));
  }
  return r;
}

int sched_getscheduler(pid_t pid) {
  int policy = 0;
  if (!threads::for_thread_id(caller(), pid, [&](Fiber* f) { policy = f->sched_policy; })) {
    return static_cast<int>(neg_errno(real::sched_getscheduler(pid)));
  }
  return policy;
}

int sched_setparam(pid_t pid, const sched_param* param) {
  int r = 0;
  if (!threads::for_thread_id(caller(), pid, [&](Fiber* f) {
        r = param ? set_sched(f, f->sched_policy, param->sched_priority) : -EINVAL;
      })) {
    return static_cast<int>(neg_errno(real::sched_setparam(pid, param)));
  }
  return r;
}

int sched_getparam(pid_t pid, sched_param* param) {
  int prio = 0;
  if (!threads::for_thread_id(caller(), pid, [&](Fiber* f) { prio = f->sched_priority; })) {
    return static_cast<int>(neg_errno(real::sched_getparam(pid, param)));
  }
  if (!param) return -EINVAL;
  memset(param, 0, sizeof *param);
  param->sched_priority = prio;
  return 0;
}

int thread_join(pthread_t thread, void** ret) {
  int r = join_common(thread, ret, Deadline::never(), false);
  return r <= 0 ? r : -real::pthread_join(thread, ret);
}

int thread_tryjoin(pthread_t thread, void** ret) {
  int r = join_common(thread, ret, Deadline::never(), true);
  return r <= 0 ? r : -real::pthread_tryjoin_np(thread, ret);
}

int thread_clockjoin(pthread_t thread, void** ret, clockid_t clock, const timespec* abstime) {
  if (!fiber_of(thread)) return -real::pthread_clockjoin_np(thread, ret, clock, abstime);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return -EINVAL;
  Deadline d = Deadline::never();
  if (abstime) {
    if (!valid_timespec(abstime)) return -EINVAL;
    if (abstime->tv_sec < 0) return -ETIMEDOUT;
    d = Deadline::at(clock, *abstime);
  }
  int r = join_common(thread, ret, d, false);
  return r <= 0 ? r : -real::pthread_clockjoin_np(thread, ret, clock, abstime);
}

int thread_timedjoin(pthread_t thread, void** ret, const timespec* abstime) {
  if (!fiber_of(thread)) return -real::pthread_timedjoin_np(thread, ret, abstime);
  return thread_clockjoin(thread, ret, CLOCK_REALTIME, abstime);
}

int thread_detach(pthread_t thread) {
  Fiber* target = fiber_of(thread);
  if (!target) return -real::pthread_detach(thread);
  return -sched::detach(target);
}

void thread_exit(void* value) {
  // glibc's unwind may cross this library's frames (cancel.h).
  cancel::prepare_unwinder();
  Fiber* f = caller();
  if (!f) {
    real::pthread_exit(value);
    __builtin_unreachable();
  }
  f->set_exit_value(value);
  if (f->unwind_limit) {
    // glibc unwinds the stack (running C cleanup handlers and C++
    // destructors) and longjmps into the buffer fiber_entry registered in
    // this fiber's TCB, exactly as it does for start_thread's; main's lands
    // in the runtime (cancel::adopt_main).
    real::pthread_exit(value);
    __builtin_unreachable();
  }
  // main's buffer was not recognised: glibc's would end the carrier's OS
  // thread. End the fiber without unwinding main's frames.
  sched::exit_fiber(f, value);
}

int thread_cancel(pthread_t thread) {
  cancel::prepare_unwinder();
  Fiber* target = fiber_of(thread);
  if (target) return -cancel::request(target);
  int r = real::pthread_cancel(thread);
  // A plain OS thread (own stack) may be parked in one of our waits, a futex
  // glibc knows nothing of: a permit makes it re-check its request there.
  if (r == 0 && thread != pthread_self()) Parker::of_os_thread(thread)->unpark();
  return -r;
}

int thread_getattr(pthread_t thread, pthread_attr_t* attr) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_getattr_np(thread, attr);
  if (f->is_main) {
    // glibc's describes main's stack; its scheduling parameters are ours.
    int r = real::pthread_getattr_np(thread, attr);
    if (r == 0) {
      sched_param sp{};
      sp.sched_priority = f->sched_priority;
      pthread_attr_setschedpolicy(attr, f->sched_policy & ~SCHED_RESET_ON_FORK);
      pthread_attr_setschedparam(attr, &sp);
    }
    return -r;
  }
  int r = pthread_attr_init(attr);
  if (r) return -r;
  char* low = f->region.stack_low();
  size_t size = static_cast<size_t>(reinterpret_cast<char*>(f) - low);
  pthread_attr_setstack(attr, low, size);
  pthread_attr_setguardsize(attr, f->guard_size);
  pthread_attr_setschedpolicy(attr, f->sched_policy & ~SCHED_RESET_ON_FORK);
  sched_param sp{};
  sp.sched_priority = f->sched_priority;
  pthread_attr_setschedparam(attr, &sp);
  pthread_attr_setdetachstate(attr, f->join_state.load() == kDetached ? PTHREAD_CREATE_DETACHED
                                                                         : PTHREAD_CREATE_JOINABLE);
  return 0;
}

// A fiber's CPU clock is named by its TCB's tid, as glibc names a thread's
// (rt::clock_gettime in runtime/api_wait.cpp reads it); a thread that has ended has
// no clock (glibc: its tid is cleared, ESRCH).
int thread_getcpuclockid(pthread_t thread, clockid_t* clock) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_getcpuclockid(thread, clock);
  int js = f->join_state.load(std::memory_order_acquire);
  if (js == kExited || js == kJoined || f->run_state.load(std::memory_order_acquire) == static_cast<int>(RunState::kDone)) {
    return -ESRCH;
  }
  *clock = static_cast<clockid_t>((~static_cast<unsigned>(f->tid) << 3) | 4 | 2);
  return 0;
}

int thread_setname(pthread_t thread, const char* name) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_setname_np(thread, name);
  size_t len = strlen(name);
  if (len >= sizeof f->name) return -ERANGE;
  memcpy(f->name, name, len + 1);
  return 0;
}

int thread_getname(pthread_t thread, char* buf, size_t len) {
  Fiber* f = fiber_of(thread);
  if (!f) return -real::pthread_getname_np(thread, buf, len);
  const char* name = f->name[0] ? f->name : program_invocation_short_name;
  size_t n = strnlen(name, 15);
  if (len <= n) return -ERANGE;
  memcpy(buf, name, n);
  buf[n] = '\0';
  return 0;
}

// The name is copied with process_vm_readv/writev so that a bad pointer
// gives EFAULT, as the kernel does, instead of a crash. Does not suspend.
long prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
  Fiber* f = (option == PR_SET_NAME || option == PR_GET_NAME) && sched::active() ? Fiber::current() : nullptr;
  if (!f) return raw_syscall(SYS_prctl, option, a2, a3, a4, a5);
  long pid = raw_syscall(SYS_getpid);
  char name[16] = {};
  if (option == PR_SET_NAME) {
    // As strncpy_from_user: up to 15 bytes, stopping at a NUL, without
    // reading past it (the string may end just before an unmapped page).
    size_t have = 0;
    while (have < sizeof name - 1) {
      size_t to_page = 4096 - ((a2 + have) & 4095);
      size_t want = sizeof name - 1 - have < to_page ? sizeof name - 1 - have : to_page;
      iovec local{name + have, want};
      iovec remote{reinterpret_cast<void*>(a2 + have), want};
      if (raw_syscall(SYS_process_vm_readv, pid, reinterpret_cast<long>(&local), 1, reinterpret_cast<long>(&remote), 1, 0) !=
          static_cast<long>(want)) {
        return -EFAULT;
      }
      if (memchr(name + have, 0, want)) break;
      have += want;
    }
    name[sizeof name - 1] = 0;
    memcpy(f->name, name, sizeof name);
    return 0;
  }
  const char* cur = f->name[0] ? f->name : program_invocation_short_name;
  memcpy(name, cur, strnlen(cur, sizeof name - 1));
  iovec local{name, sizeof name};
  iovec remote{reinterpret_cast<void*>(a2), sizeof name};
  if (raw_syscall(SYS_process_vm_writev, pid, reinterpret_cast<long>(&local), 1, reinterpret_cast<long>(&remote), 1, 0) !=
      static_cast<long>(sizeof name)) {
    return -EFAULT;
  }
  return 0;
}

int key_create(pthread_key_t* key, void (*dtor)(void*)) {
  int r = real::pthread_key_create(key, dtor);
  if (r == 0 && *key < static_cast<pthread_key_t>(kMaxKeys)) {
    g_key_dtor[*key].store(dtor, std::memory_order_release);
    g_key_live[*key].store(true, std::memory_order_release);
  }
  return -r;
}

int key_delete(pthread_key_t key) {
  int r = real::pthread_key_delete(key);
  if (r == 0 && key < static_cast<pthread_key_t>(kMaxKeys)) g_key_live[key].store(false, std::memory_order_release);
  return -r;
}

int yield() {
  Fiber* f = caller();
  if (!f) return static_cast<int>(neg_errno(real::sched_yield()));
  sched::yield(f);
  threads::deliver_due();
  return 0;
}

// io_uring rings and carrier threads do not survive fork. A forked child
// keeps running the calling fiber on its single OS thread, with the fiber's
// own TCB (so its errno, TLS and pthread_self() are unchanged), and the
// runtime marks itself unavailable: from then on every call passes straight
// through and the child is an ordinary process.
pid_t fork() {
  Fiber* f = caller();
  pid_t pid = real::fork();
  if (pid < 0) return -errno;
  if (pid == 0 && f) {
    sched::forget_after_fork();
    signals::native_dispositions_after_fork();
    // The child's OS thread takes the fiber's signal mask.
    raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&f->sigmask), 0, 8);
  }
  return pid;
}

}  // namespace rt
}  // namespace unblock
