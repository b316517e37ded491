// The exported faultable entry points, generated from fault/wrappers.def.
//
// Each one is, for `read`:
//
//   extern "C" ssize_t read(int fd, void* buf, size_t n) {
//     if (armed(Op::kRead)) return armed_read(fd, buf, n);   // one relaxed load
//     return unblock_hook_read(fd, buf, n);                   // a tail call
//   }
//   ssize_t armed_read(int fd, void* buf, size_t n) {         // cold
//     if (!(guard) || tl_fault_depth != 0) return unblock_hook_read(fd, buf, n);
//     return fault_io(Op::kRead, fd, buf, n, 0,
//                     [&](void* b, size_t m) { return unblock_hook_read(fd, b, m); });
//   }
//
// where unblock_hook_read is the hook (hooks/io.cpp, renamed and hidden by
// hooks/fault.h). With no rule armed for the op a call costs the load, the
// branch and the jump (DESIGN.md section 11 has the measured cost). Runs
// wherever the hook may run; may suspend only when a rule is armed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fault/inject.h"

using namespace unblock;
using namespace unblock::fault;

namespace {

// The timeout a poll-family call would sleep for: < 0 forever, 0 not at all.
inline int64_t ms_timeout_ns(int ms) { return ms < 0 ? -1 : ms * 1000000LL; }
inline int64_t ts_timeout_ns(const timespec* ts) { return ts ? ts->tv_sec * 1000000000LL + ts->tv_nsec : -1; }
inline int64_t tv_timeout_ns(const timeval* tv) { return tv ? tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL : -1; }

// open(2) reads a mode argument only for these flags (as glibc does).
inline bool open_needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

}  // namespace

#define FAULT_UNPAREN_(...) __VA_ARGS__
#define FAULT_EXPORT_ extern "C" __attribute__((visibility("default")))

// The hooks, under the names hooks/fault.h gives them.
#define FAULT_HOOK_DECL_(ret, name, params) extern "C" __attribute__((visibility("hidden"))) ret unblock_hook_##name params;
#define FAULT_IO(ret, name, params, ...) FAULT_HOOK_DECL_(ret, name, params)
#define FAULT_IOV(ret, name, params, ...) FAULT_HOOK_DECL_(ret, name, params)
#define FAULT_MSG(ret, name, params, ...) FAULT_HOOK_DECL_(ret, name, params)
#define FAULT_CALL(ret, name, params, ...) FAULT_HOOK_DECL_(ret, name, params)
#define FAULT_OPEN(name, params, ...) FAULT_HOOK_DECL_(int, name, (FAULT_UNPAREN_ params, ...))
#include "fault/wrappers.def"
#undef FAULT_IO
#undef FAULT_IOV
#undef FAULT_MSG
#undef FAULT_CALL
#undef FAULT_OPEN

// The wrappers. The armed path is a function of its own (cold, never
// inlined), so the exported function is the load, the branch and a tail
// call of the hook.
#define FAULT_WRAPPER_(ret, name, params, args, op)                                                  \
  FAULT_EXPORT_ ret name params {                                                                    \
    if (__builtin_expect(armed(Op::op) != 0, 0)) return armed_##name args;                           \
    return unblock_hook_##name args;                                                                 \
  }
#define FAULT_ARMED_(ret, name, params, args, guard)                                                 \
  namespace {                                                                                        \
  __attribute__((noinline, cold)) ret armed_##name params {                                          \
    if (!(guard) || tl_fault_depth != 0) return unblock_hook_##name args;
#define FAULT_ARMED_END_ \
  }                      \
  }
#define FAULT_IO(ret, name, params, args, op, guard, fd, buf, n, msg_flags, shrunk)                  \
  FAULT_ARMED_(ret, name, params, args, guard)                                                       \
  return fault_io(Op::op, fd, buf, n, msg_flags, [&](void* b, size_t m) -> ssize_t {                 \
    (void)b;                                                                                         \
    return unblock_hook_##name shrunk;                                                               \
  });                                                                                                \
  FAULT_ARMED_END_                                                                                   \
  FAULT_WRAPPER_(ret, name, params, args, op)
#define FAULT_IOV(ret, name, params, args, op, guard, fd, iov, cnt, shrunk)                          \
  FAULT_ARMED_(ret, name, params, args, guard)                                                       \
  return fault_iov(Op::op, fd, iov, cnt,                                                             \
                   [&](const iovec* w, int c) -> ssize_t { return unblock_hook_##name shrunk; });    \
  FAULT_ARMED_END_                                                                                   \
  FAULT_WRAPPER_(ret, name, params, args, op)
#define FAULT_MSG(ret, name, params, args, op, guard, fd, msg, flags, copy_back, shrunk)             \
  FAULT_ARMED_(ret, name, params, args, guard)                                                       \
  return fault_msg(Op::op, fd, msg, flags, copy_back,                                                \
                   [&](msghdr* mh) -> ssize_t { return unblock_hook_##name shrunk; });               \
  FAULT_ARMED_END_                                                                                   \
  FAULT_WRAPPER_(ret, name, params, args, op)
#define FAULT_CALL(ret, name, params, args, op, guard, fault_args)                                   \
  FAULT_ARMED_(ret, name, params, args, guard)                                                       \
  return static_cast<ret>(fault_call(Op::op, fault_args, [&] { return unblock_hook_##name args; })); \
  FAULT_ARMED_END_                                                                                   \
  FAULT_WRAPPER_(ret, name, params, args, op)
#define FAULT_OPEN(name, params, args, op, guard, fault_args)                                        \
  FAULT_ARMED_(int, name, (FAULT_UNPAREN_ params, mode_t mode), args, guard)                         \
  return static_cast<int>(fault_call(Op::op, fault_args, [&] { return unblock_hook_##name args; })); \
  FAULT_ARMED_END_                                                                                   \
  FAULT_EXPORT_ int name(FAULT_UNPAREN_ params, ...) {                                               \
    mode_t mode = 0;                                                                                 \
    if (open_needs_mode(flags)) {                                                                    \
      va_list ap;                                                                                    \
      va_start(ap, flags);                                                                           \
      mode = va_arg(ap, mode_t);                                                                     \
      va_end(ap);                                                                                    \
    }                                                                                                \
    if (__builtin_expect(armed(Op::op) != 0, 0)) return armed_##name args;                           \
    return unblock_hook_##name args;                                                                 \
  }
#include "fault/wrappers.def"
#undef FAULT_IO
#undef FAULT_IOV
#undef FAULT_MSG
#undef FAULT_CALL
#undef FAULT_OPEN
#undef FAULT_WRAPPER_
#undef FAULT_ARMED_
#undef FAULT_ARMED_END_

// Every Op has at least one entry point in the table.
namespace {
constexpr bool every_op_has_a_wrapper() {
  bool seen[kOps] = {};
#define FAULT_ROW_(op) seen[static_cast<int>(Op::op)] = true;
#define FAULT_IO(ret, name, params, args, op, ...) FAULT_ROW_(op)
#define FAULT_IOV(ret, name, params, args, op, ...) FAULT_ROW_(op)
#define FAULT_MSG(ret, name, params, args, op, ...) FAULT_ROW_(op)
#define FAULT_CALL(ret, name, params, args, op, ...) FAULT_ROW_(op)
#define FAULT_OPEN(name, params, args, op, ...) FAULT_ROW_(op)
#include "fault/wrappers.def"
#undef FAULT_IO
#undef FAULT_IOV
#undef FAULT_MSG
#undef FAULT_CALL
#undef FAULT_OPEN
#undef FAULT_ROW_
  for (bool s : seen) {
    if (!s) return false;
  }
  return true;
}
static_assert(every_op_has_a_wrapper(), "fault/wrappers.def: a fault::Op without an entry point");
}  // namespace
