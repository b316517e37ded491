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
// The numbers that name a thread by id (gettid, tkill, tgkill,
// rt_tgsigqueueinfo, sched_setaffinity/getaffinity, setpriority/getpriority,
// ioprio_set/get) go to unblock_tid_entry, which serves a fiber's id as the
// named wrappers do (runtime/thread_ids.cpp) and passes the rest to glibc.
//
// Where: any thread, any fiber; a fiber may suspend in a wait. The library's
// own code never comes here (it uses raw_syscall; build_symbols checks).
#include <linux/futex.h>
#include <sys/syscall.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

static_assert(SYS_futex == 202 && SYS_getpriority == 140 && SYS_setpriority == 141 && SYS_gettid == 186 &&
                  SYS_tkill == 200 && SYS_sched_setaffinity == 203 && SYS_sched_getaffinity == 204 &&
                  SYS_tgkill == 234 && SYS_ioprio_set == 251 && SYS_ioprio_get == 252 &&
                  SYS_rt_tgsigqueueinfo == 297,
              "the stub below compares with these numbers");

namespace {
long to_libc(long r) { return r < 0 ? hooks::fail(static_cast<int>(-r)) : r; }
}  // namespace

extern "C" __attribute__((visibility("hidden"), used)) long unblock_futex_entry(long nr, long a1, long a2, long a3,
                                                                                long a4, long a5, long a6) {
  return to_libc(rt::syscall_futex(a1, a2, a3, a4, a5, a6));
}

extern "C" __attribute__((visibility("hidden"), used)) long unblock_tid_entry(long nr, long a1, long a2, long a3,
                                                                              long a4, long a5, long a6) {
  return to_libc(rt::syscall_thread_id(nr, a1, a2, a3, a4, a5, a6));
}

// Before the first resolution (a call from another library's constructor):
// resolve, then call glibc's syscall() with the same arguments.
extern "C" __attribute__((visibility("hidden"), used)) long unblock_syscall_slow(long nr, long a1, long a2, long a3,
                                                                                 long a4, long a5, long a6) {
  return to_libc(rt::syscall_other(nr, a1, a2, a3, a4, a5, a6));
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
    cmpq $140, %rdi
    jb 1f
    cmpq $141, %rdi
    jbe unblock_tid_entry
    cmpq $186, %rdi
    je unblock_tid_entry
    cmpq $200, %rdi
    je unblock_tid_entry
    cmpq $203, %rdi
    je unblock_tid_entry
    cmpq $204, %rdi
    je unblock_tid_entry
    cmpq $234, %rdi
    je unblock_tid_entry
    cmpq $251, %rdi
    je unblock_tid_entry
    cmpq $252, %rdi
    je unblock_tid_entry
    cmpq $297, %rdi
    je unblock_tid_entry
1:
    movq unblock_real_syscall_ptr(%rip), %rax
    testq %rax, %rax
    jz unblock_syscall_slow
    jmp *%rax
    .cfi_endproc
    .size syscall, .-syscall
)");
