// syscall(): the entry point of raw futexes (runtime/futex.h).
//
// glibc's syscall() is variadic and a thin wrapper around the instruction;
// libraries that lock without pthread (GLib, Rust's std, libstdc++'s atomic
// wait, absl, Qt) call syscall(SYS_futex, ...) through it. The hook is a
// few instructions of assembly: every number but SYS_futex jumps to glibc's
// own syscall() with the registers and stack exactly as the caller left
// them, so those calls are glibc's, errno and signal behaviour included (a
// blocking call passed through sleeps inside libc's text, where the signal
// thread may run a handler, as for any unhooked call). SYS_futex goes to
// unblock_futex_entry, which reads the six arguments (the sixth is on the
// stack, where a variadic call and a seven-argument call both put it).
//
// Where: any thread, any fiber; a fiber may suspend in a wait. The library's
// own code never comes here for futexes (runtime code uses raw_syscall).
#include <linux/futex.h>
#include <sys/syscall.h>

#include "hooks/hook.h"
#include "runtime/futex.h"

using namespace unblock;

static_assert(SYS_futex == 202, "the stub below compares with 202");

extern "C" __attribute__((visibility("hidden"), used)) long unblock_futex_entry(long nr, long a1, long a2, long a3,
                                                                                long a4, long a5, long a6) {
  if (sched::active()) {
    long r = futex::call(hooks::fiber_for_call(), reinterpret_cast<uint32_t*>(a1), static_cast<int>(a2),
                         static_cast<uint32_t>(a3), a4, reinterpret_cast<uint32_t*>(a5), static_cast<uint32_t>(a6));
    if (r != futex::kPassThrough) return r < 0 ? hooks::fail(static_cast<int>(-r)) : r;
  }
  return real::syscall6(nr, a1, a2, a3, a4, a5, a6);
}

// Before the first resolution (a call from another library's constructor):
// resolve, then call glibc's syscall() with the same arguments.
extern "C" __attribute__((visibility("hidden"), used)) long unblock_syscall_slow(long nr, long a1, long a2, long a3,
                                                                                 long a4, long a5, long a6) {
  return real::syscall6(nr, a1, a2, a3, a4, a5, a6);
}

asm(R"(
    .text
    .globl syscall
    .type syscall, @function
    .p2align 4
syscall:
    .cfi_startproc
    cmpq $202, %rdi
    je unblock_futex_entry
    movq unblock_real_syscall_ptr(%rip), %rax
    testq %rax, %rax
    jz unblock_syscall_slow
    jmp *%rax
    .cfi_endproc
    .size syscall, .-syscall
)");
