#include "runtime/signals.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "runtime/spinlock.h"

namespace unblock::signals {
namespace {

// The kernel's struct sigaction for rt_sigaction.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

constexpr unsigned long kSaRestorer = 0x04000000;

extern "C" void unblock_signal_restorer();
asm(".text\n"
    ".align 16\n"
    "unblock_signal_restorer:\n"
    "  mov $15, %rax\n"  // SYS_rt_sigreturn
    "  syscall\n");

// The program's disposition for fault signals the runtime also handles.
struct sigaction g_program_fault[NSIG];
std::atomic<bool> g_fault_installed[NSIG];

}  // namespace

int raw_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  KernelSigaction k{}, ko{};
  if (act) {
    k.handler = reinterpret_cast<void*>(act->sa_handler);
    k.flags = static_cast<unsigned long>(act->sa_flags) | kSaRestorer;
    k.restorer = unblock_signal_restorer;
    memcpy(&k.mask, &act->sa_mask, sizeof k.mask);
  }
  long r = syscall(SYS_rt_sigaction, sig, act ? &k : nullptr, old ? &ko : nullptr, 8);
  if (r == 0 && old) {
    memset(old, 0, sizeof *old);
    old->sa_handler = reinterpret_cast<void (*)(int)>(ko.handler);
    old->sa_flags = static_cast<int>(ko.flags & ~kSaRestorer);
    memcpy(&old->sa_mask, &ko.mask, sizeof ko.mask);
  }
  return static_cast<int>(r);
}

void install_fault_handler(int sig, const struct sigaction* sa) {
  struct sigaction old{};
  raw_sigaction(sig, sa, &old);
  if (!g_fault_installed[sig].exchange(true)) g_program_fault[sig] = old;
}

bool forward_fault(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& p = g_program_fault[sig];
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction) {
      p.sa_sigaction(sig, info, uctx);
      return true;
    }
    return false;
  }
  if (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN) return false;
  p.sa_handler(sig);
  return true;
}

void start() {}

void carrier_mask(sigset_t* out) {
  sigemptyset(out);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, nullptr, out, 8);
}

}  // namespace unblock::signals

namespace unblock::signals {
bool run_pending(Fiber*) { return false; }
}  // namespace unblock::signals
