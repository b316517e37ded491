// Inspection: what `unblock-ctl stats` and `unblock-ctl dump` print - the
// runtime's live counters and every thread of the program with its state
// and what it waits for.
//
// Everything here runs on the control thread (runtime/control.cpp), a plain
// OS thread, never on a fiber or a carrier: it reads the runtime's state
// racily (counters, a fiber's wait fields) and holds the registry lock only
// while it copies each live fiber's fields into a snapshot, so the program
// is never stopped as a whole and a dump changes nothing it computes.
// It must not call an exported hook: system calls go through raw_syscall.
//
// The park side costs a few plain stores: the code that parks a fiber
// writes wait_op/wait_arg/wait_obj (Fiber), sched::park writes wait_since
// and wait_deadline.
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shim/real.h"

namespace unblock {

// What Fiber::wait_op says, next to its WaitReason.
enum WaitOp : uint8_t {
  kWaitNone = 0,        // the reason says it all (wait_obj: the object parked on, if any)
  kWaitPoll = 1,        // poll/select/epoll_wait: wait_arg fds
  kWaitSigwait = 2,     // sigwait/sigtimedwait/sigwaitinfo
  kWaitSigsuspend = 3,  // sigsuspend/pause
  kWaitFault = 4,       // an injected delay or hang (fault/inject.cpp)
  kWaitIoBase = 16,     // + IoOp::Kind: one I/O operation on fd wait_arg
};

namespace inspect {

// CLOCK_MONOTONIC_COARSE in ns: a vDSO read, no system call. Any context.
inline int64_t coarse_now_ns() {
  timespec ts;
  real::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The clock parks are stamped with: CLOCK_MONOTONIC_COARSE as last read by
// the monitor (every tick while any worker is busy) or by a carrier leaving
// its idle wait, so a park pays one load instead of a clock read (~7 ns
// here). It lags the real clock by at most one monitor tick while fibers
// run. Any thread.
extern std::atomic<int64_t> g_park_clock;
inline int64_t park_clock_ns() { return g_park_clock.load(std::memory_order_relaxed); }
inline void tick_park_clock() { g_park_clock.store(coarse_now_ns(), std::memory_order_relaxed); }

// A growable text buffer in its own mapping (raw mmap/mremap: no malloc, so
// it may be filled with the registry lock released but from any thread).
class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void append(const char* s, size_t n);
  void puts(const char* s);
  void printf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // s as a JSON string, quotes included.
  void json_string(const char* s);
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  bool reserve(size_t n);
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

// The runtime's counters, as "key value" lines (what `unblock-ctl top`
// differences) or one JSON object. Control thread.
void stats(Buffer* out, bool json);
// Every thread: summary, then threads grouped by what they do; or JSON
// with every field. Control thread.
void dump(Buffer* out, bool json);
// One schedtrace line (UNBLOCK_TRACE): counters now and rates since the
// previous call. Control thread.
void trace_line(Buffer* out);
// What OS thread `tid` of this process does: "running", or the system call
// it sleeps in; *pc (if given) gets its user-space address in that call, or
// 0. Any plain thread (reads /proc with raw system calls).
void describe_os_thread(int tid, char* out, size_t cap, uintptr_t* pc);
// The stack of the fiber `fiber` kept on OS thread `tid` (a stall): read
// through the marker if the thread runs the program's code, from /proc if
// it sleeps in a system call (never signalled then); one line
// "    #N function+0x1a (object) file.c:73" per frame of the program,
// appended to out; nothing if it could not be read. [lo, hi): the fiber's
// stack (hi 0: the process's initial thread). Monitor thread.
void stall_stack(int tid, const void* fiber, uintptr_t lo, uintptr_t hi, Buffer* out);
// "function+0x1a (object)" for a code address (dladdr only). Any plain thread.
void symbol_of(uintptr_t pc, char* out, size_t cap);

}  // namespace inspect
}  // namespace unblock
