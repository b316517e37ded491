// Carrying out faults around the hooks (fault/inject.h).
//
// Order of the checks for one call (each kind is checked with libfiu only if
// the op's armed mask has it, and only where it could happen for real):
//   eintr, errno, connect refused/timeout, reset, hang, delay -> the call
//   fails or waits before anything is submitted;
//   eof_after, reduce/short -> the call runs with fewer bytes;
//   corrupt -> bytes received are changed after the call.
#include "fault/inject.h"
#include "shim/raw_syscall.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <initializer_list>

#include "hooks/hook.h"
#include "runtime/api_internal.h"
#include "runtime/fdtable.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/parker.h"

using namespace unblock;

namespace unblock::fault {

thread_local int tl_fault_depth __attribute__((tls_model("initial-exec"))) = 0;

namespace {

constexpr uintptr_t kDefaultDelayUs = 100 * 1000;
constexpr uintptr_t kDefaultConnectTimeoutUs = 1000 * 1000;

struct DepthGuard {
  DepthGuard() { ++tl_fault_depth; }
  ~DepthGuard() { --tl_fault_depth; }
};

bool in_signal_handler() {
  Fiber* f = Fiber::current();
  return f && f->sig.handler_depth > 0;
}

int port_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return -1;
}

void resolve_ports(fault::Call* c) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (c->peer_port == -2) {
    c->peer_port = getpeername(c->fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? port_of(ss) : -1;
  }
  len = sizeof ss;
  if (c->local_port == -2) {
    c->local_port = getsockname(c->fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? port_of(ss) : -1;
  }
}

// What the runtime knows of the fd, and the kind of socket, learnt on first
// need (a kind that does not fire costs no system call).
class Facts {
 public:
  Facts(int fd, fault::Dir dir, int msg_flags) : fd_(fd), dir_(dir), msg_flags_(msg_flags) {}

  const fds::Info& info() {
    if (!have_info_) {
      if (fd_ >= 0) info_ = fds::lookup(fd_);
      have_info_ = true;
    }
    return info_;
  }
  // The call may sleep in the kernel (so EINTR and hangs are possible).
  bool blocking() { return info().valid && !info().nonblock && !(msg_flags_ & MSG_DONTWAIT); }
  const fault::FdClass& cls() {
    if (have_cls_) return cls_;
    have_cls_ = true;
    const fds::Info& i = info();
    using T = fault::FdClass::Type;
    if (!i.valid) return cls_;
    if (i.socket) {
      int domain = 0, type = 0;
      socklen_t len = sizeof domain;
      getsockopt(fd_, SOL_SOCKET, SO_DOMAIN, &domain, &len);
      len = sizeof type;
      getsockopt(fd_, SOL_SOCKET, SO_TYPE, &type, &len);
      bool inet = domain == AF_INET || domain == AF_INET6;
      bool stream = type == SOCK_STREAM || type == SOCK_SEQPACKET;
      if (inet) cls_.type = type == SOCK_STREAM ? T::kTcp : type == SOCK_DGRAM ? T::kUdp : T::kOtherSocket;
      else if (domain == AF_UNIX) cls_.type = stream ? T::kUnixStream : T::kUnixDgram;
      else cls_.type = T::kOtherSocket;
    } else if (i.kind == fds::Kind::kRegular) {
      cls_.type = T::kRegular;
    } else if (i.kind == fds::Kind::kPipe) {
      cls_.type = T::kPipe;
    } else {
      struct stat st;
      if (fstat(fd_, &st) == 0) {
        if (S_ISDIR(st.st_mode)) cls_.type = T::kDirectory;
        else if (S_ISCHR(st.st_mode)) cls_.type = T::kChar;
        else if (S_ISFIFO(st.st_mode)) cls_.type = T::kPipe;
        else if (S_ISREG(st.st_mode)) cls_.type = T::kRegular;
      }
    }
    cls_.nonblock = i.nonblock || (msg_flags_ & MSG_DONTWAIT) || timeout_ns() > 0;
    return cls_;
  }
  bool regular() { return info().valid && info().kind == fds::Kind::kRegular; }
  bool stream_socket() { return info().valid && info().socket && cls().is_stream(); }
  bool datagram_socket() { return info().valid && info().socket && !cls().is_stream(); }
  // The socket timeout that bounds a wait in this direction (0: none).
  int64_t timeout_ns() {
    const fds::Info& i = info();
    if (!i.valid || !i.socket) return 0;
    return dir_ == fault::Dir::kIn ? i.rcvtimeo_ns : i.sndtimeo_ns;
  }

 private:
  int fd_;
  fault::Dir dir_;
  int msg_flags_;
  bool have_info_ = false;
  bool have_cls_ = false;
  fds::Info info_;
  fault::FdClass cls_;
};

const char* errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

// Checks one kind of the call's op: true if it fires (info: libfiu's failinfo).
bool fires(uint16_t mask, fault::Call& call, Kind k, uintptr_t* info) {
  if (!(mask & fault::bit(k))) return false;
  call.kind = k;
  return fault::check(call, info);
}

uint64_t rnd(const fault::Call& c, uint64_t salt) {
  return fault::draw(fault::seed(), fault::point_id(c.op, c.kind), c.k, salt);
}

// Parks the caller until the deadline. A fiber parks on an io_uring timeout
// and may be interrupted by a handler (EINTR contract in runtime/signals.h):
// -EINTR unless every handler asked for SA_RESTART. Fiber or plain thread.
int park_until(const Deadline& d, bool interruptible) {
  Fiber* f = hooks::fiber_for_call();
  Parker* p = Parker::current();
  if (Fiber* pf = p->fiber()) pf->wait_op = kWaitFault;
  while (!d.passed()) {
    ParkResult r = p->park(d, WaitReason::kIo, f && interruptible);
    if (r == ParkResult::kInterrupted && !rt::detail::after_interrupt(f)) return -EINTR;
  }
  return 0;
}

// A hung call: waits until no rule enables the point any more (a rule change
// wakes it), or until the socket's own timeout (-EAGAIN), or a handler
// without SA_RESTART (-EINTR). 0: the hang ended, run the call.
// A hang waiter registered for the lifetime of a frame: removed on return
// and when a cancellation unwinds the frame (glibc's forced unwind runs the
// destructors), so the rule change that wakes waiters never meets a dead one.
struct HangRegistration {
  fault::HangWaiter w;
  HangRegistration() {
    w.parker = Parker::current();
    fault::add_hang_waiter(&w);
  }
  ~HangRegistration() { fault::remove_hang_waiter(&w); }
  HangRegistration(const HangRegistration&) = delete;
  HangRegistration& operator=(const HangRegistration&) = delete;
};

int hang(Op op, Kind k, int64_t timeout_ns, bool interruptible) {
  Fiber* f = hooks::fiber_for_call();
  HangRegistration reg;
  if (Fiber* pf = reg.w.parker->fiber()) pf->wait_op = kWaitFault;
  Deadline d = timeout_ns > 0 ? Deadline::after_ns(timeout_ns) : Deadline::never();
  for (;;) {
    if (!(fault::armed(op) & fault::bit(k))) return 0;
    if (d.passed()) return -EAGAIN;
    ParkResult r = reg.w.parker->park(d, WaitReason::kIo, f && interruptible);
    if (r == ParkResult::kInterrupted && !rt::detail::after_interrupt(f)) return -EINTR;
  }
}

// The peer sees a reset: a TCP socket is disconnected with connect(AF_UNSPEC)
// (tcp_disconnect sends RST); other stream sockets can only be shut down
// (the peer sees EOF).
void reset_connection(int fd, Facts& facts) {
  if (facts.cls().type == fault::FdClass::kTcp) {
    sockaddr sa{};
    sa.sa_family = AF_UNSPEC;
    errno_syscall(SYS_connect, fd, &sa, sizeof sa);
  } else {
    real::shutdown(fd, SHUT_RDWR);
  }
}

ssize_t failed(int err) {
  errno = err;
  return -1;
}

// A copy of iov cut to `limit` bytes (at most kMaxCopy entries).
constexpr int kMaxCopy = 64;
int cut(const iovec* iov, int cnt, size_t limit, iovec* out) {
  int n = 0;
  size_t left = limit;
  for (int i = 0; i < cnt && n < kMaxCopy && left > 0; ++i) {
    out[n] = iov[i];
    if (out[n].iov_len > left) out[n].iov_len = left;
    left -= out[n].iov_len;
    ++n;
  }
  if (n == 0 && cnt > 0) {
    out[0] = iov[0];
    out[0].iov_len = 0;
    n = 1;
  }
  return n;
}

unsigned char* byte_at(const iovec* iov, int cnt, size_t pos) {
  for (int i = 0; i < cnt; ++i) {
    if (pos < iov[i].iov_len) return static_cast<unsigned char*>(iov[i].iov_base) + pos;
    pos -= iov[i].iov_len;
  }
  return nullptr;
}

}  // namespace

ssize_t fault_transfer(Op op, int fd, const iovec* iov, int cnt, int msg_flags, FaultVecFn fn, void* ctx) {
  uint16_t mask = fault::armed(op);
  if (!mask || cnt < 0 || cnt > IOV_MAX || in_signal_handler()) {
    DepthGuard g;
    return fn(ctx, iov, cnt);
  }
  int saved_errno = errno;
  size_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  fault::Call call;
  call.op = op;
  call.fd = fd;
  call.dir = fault::direction(op);
  call.resolve_ports = resolve_ports;
  Facts facts(fd, call.dir, msg_flags);
  const bool in = call.dir == fault::Dir::kIn;
  uintptr_t info = 0;

  // A zero-length transfer moves nothing and the kernel returns before it
  // could fail: only delays apply to it.
  if (total > 0 && facts.info().valid) {
    if ((mask & fault::bit(Kind::kEintr)) && facts.blocking() && !facts.regular() &&
        fires(mask, call, Kind::kEintr, &info)) {
      fault::record(call, "EINTR");
      return failed(EINTR);
    }
    if (fires(mask, call, Kind::kErrno, &info)) {
      int e = info ? static_cast<int>(info) : fault::pick_errno(op, facts.cls(), 0, rnd(call, 1));
      fault::record(call, "errno %s%s", errno_name(e), info ? "" : " (chosen)");
      if (e == EPIPE && !in && !(msg_flags & MSG_NOSIGNAL) &&
          (facts.info().socket || facts.info().kind == fds::Kind::kPipe)) {
        rt::raise_sigpipe();  // as the kernel does with EPIPE
      }
      return failed(e);
    }
    if ((mask & fault::bit(Kind::kReset)) && facts.stream_socket() && fires(mask, call, Kind::kReset, &info)) {
      reset_connection(fd, facts);
      fault::record(call, "reset (peer sees ECONNRESET), ECONNRESET");
      return failed(ECONNRESET);
    }
    if (fires(mask, call, Kind::kHang, &info)) {
      if (!facts.blocking()) {
        fault::record(call, "hang: EAGAIN (non-blocking)");
        return failed(EAGAIN);
      }
      fault::record(call, "hang");
      int r = hang(op, Kind::kHang, facts.timeout_ns(), !facts.regular());
      if (r < 0) {
        fault::record(call, "hang ended: %s", errno_name(-r));
        return failed(-r);
      }
    }
  }
  if (fires(mask, call, Kind::kDelay, &info)) {
    uintptr_t us = info ? info : kDefaultDelayUs;
    fault::record(call, "delay %luus", static_cast<unsigned long>(us));
    int r = park_until(Deadline::after_ns(static_cast<int64_t>(us) * 1000), !facts.regular());
    if (r < 0) return failed(-r);
  }

  size_t limit = total;
  bool eof = false;
  if (in && total > 0 && fires(mask, call, Kind::kEofAfter, &info)) {
    eof = true;
    uint64_t seen = fault::eof_bytes(fd);
    if (seen >= info) {
      fault::record(call, "eof after %lu bytes", static_cast<unsigned long>(info));
      errno = saved_errno;
      return 0;
    }
    if (info - seen < limit) limit = static_cast<size_t>(info - seen);
  }
  if (limit >= 2 && (mask & (fault::bit(Kind::kReduce) | fault::bit(Kind::kShort))) && !facts.datagram_socket()) {
    for (Kind k : {Kind::kReduce, Kind::kShort}) {
      if (!fires(mask, call, k, &info)) continue;
      size_t cut_to = fault::short_length(limit, info, rnd(call, 2));
      if (cut_to < limit) {
        fault::record(call, "short %lu -> %lu bytes", static_cast<unsigned long>(limit),
                      static_cast<unsigned long>(cut_to));
        limit = cut_to;
      }
      break;
    }
  }

  iovec copy[kMaxCopy];
  const iovec* use = iov;
  int use_cnt = cnt;
  if (limit < total) {
    use_cnt = cut(iov, cnt, limit, copy);
    use = copy;
  }
  errno = saved_errno;
  ssize_t r;
  {
    DepthGuard g;
    r = fn(ctx, use, use_cnt);
  }
  int call_errno = errno;
  if (r > 0 && in && fires(mask, call, Kind::kCorrupt, &info)) {
    size_t n = info ? info : 1;
    if (n > static_cast<size_t>(r)) n = static_cast<size_t>(r);
    size_t first = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t pos = static_cast<size_t>(rnd(call, 3 + i) % static_cast<uint64_t>(r));
      unsigned char* b = byte_at(use, use_cnt, pos);
      if (b) *b ^= static_cast<unsigned char>(1 + rnd(call, 1000 + i) % 255);
      if (i == 0) first = pos;
    }
    fault::record(call, "corrupt %lu of %ld bytes, first at %lu", static_cast<unsigned long>(n),
                  static_cast<long>(r), static_cast<unsigned long>(first));
  }
  if (r > 0 && eof) fault::add_eof_bytes(fd, static_cast<uint64_t>(r));
  errno = call_errno;
  return r;
}

long fault_invoke(Op op, const FaultArgs& a, FaultCallFn fn, void* ctx) {
  uint16_t mask = fault::armed(op);
  if (!mask || in_signal_handler()) {
    DepthGuard g;
    return fn(ctx);
  }
  int saved_errno = errno;
  fault::Call call;
  call.op = op;
  call.fd = a.fd;
  call.dir = fault::direction(op);
  call.resolve_ports = a.fd >= 0 ? resolve_ports : nullptr;
  if (a.addr && (a.addr->sa_family == AF_INET || a.addr->sa_family == AF_INET6) && a.addrlen >= sizeof(sockaddr_in)) {
    sockaddr_storage ss{};
    memcpy(&ss, a.addr, a.addrlen < sizeof ss ? a.addrlen : sizeof ss);
    call.peer_port = port_of(ss);
  }
  if (a.fd < 0) call.peer_port = call.local_port = -1;
  Facts facts(a.fd, call.dir, 0);
  const bool is_poll = op == Op::kPoll || op == Op::kSelect || op == Op::kPselect || op == Op::kEpollWait;
  // Whether the call may sleep: poll-likes by their timeout, open by
  // O_NONBLOCK, calls on a descriptor by the descriptor.
  bool blocking = is_poll ? a.timeout_ns != 0 : a.fd >= 0 ? facts.blocking() : !(a.flags & O_NONBLOCK);
  bool fd_ok = a.fd < 0 || facts.info().valid;
  uintptr_t info = 0;

  if (op == Op::kClose && (mask & fault::kTrackClose)) fault::forget_fd(a.fd);
  if (fd_ok) {
    if (blocking && fires(mask, call, Kind::kEintr, &info)) {
      fault::record(call, "EINTR");
      return failed(EINTR);
    }
    if (fires(mask, call, Kind::kErrno, &info)) {
      fault::FdClass cls = a.fd >= 0 ? facts.cls() : fault::FdClass{};
      if (is_poll) cls.nonblock = a.timeout_ns == 0;
      if (op == Op::kOpen) cls.nonblock = !blocking;
      int e = info ? static_cast<int>(info) : fault::pick_errno(op, cls, a.flags, rnd(call, 1));
      fault::record(call, "errno %s%s", errno_name(e), info ? "" : " (chosen)");
      if (op == Op::kClose) {
        // Linux releases the descriptor even when close reports an error.
        DepthGuard g;
        fn(ctx);
      }
      return failed(e);
    }
    if (op == Op::kConnect) {
      if (fires(mask, call, Kind::kRefused, &info)) {
        fault::record(call, "refused: ECONNREFUSED");
        return failed(ECONNREFUSED);
      }
      if (blocking && fires(mask, call, Kind::kTimeout, &info)) {
        uintptr_t us = info ? info : kDefaultConnectTimeoutUs;
        int64_t ns = static_cast<int64_t>(us) * 1000;
        int64_t sndtimeo = facts.timeout_ns();
        // SO_SNDTIMEO ends a connect first, and Linux then says EINPROGRESS.
        bool by_sndtimeo = sndtimeo > 0 && sndtimeo < ns;
        fault::record(call, "connect timeout after %ldus", static_cast<long>((by_sndtimeo ? sndtimeo : ns) / 1000));
        int r = park_until(Deadline::after_ns(by_sndtimeo ? sndtimeo : ns), true);
        return failed(r < 0 ? -r : by_sndtimeo ? EINPROGRESS : ETIMEDOUT);
      }
    }
    if (!is_poll && fires(mask, call, Kind::kHang, &info)) {
      if (!blocking) {
        if (op == Op::kAccept) {
          fault::record(call, "hang: EAGAIN (non-blocking)");
          return failed(EAGAIN);
        }
      } else {
        fault::record(call, "hang");
        int r = hang(op, Kind::kHang, facts.timeout_ns(), op == Op::kAccept || op == Op::kConnect);
        if (r == -EAGAIN && op == Op::kConnect) r = -EINPROGRESS;
        if (r < 0) {
          fault::record(call, "hang ended: %s", errno_name(-r));
          return failed(-r);
        }
      }
    }
  }
  if (fires(mask, call, Kind::kDelay, &info)) {
    uintptr_t us = info ? info : kDefaultDelayUs;
    fault::record(call, "delay %luus", static_cast<unsigned long>(us));
    int r = park_until(Deadline::after_ns(static_cast<int64_t>(us) * 1000), op != Op::kClose && op != Op::kFsync &&
                                                                             op != Op::kFdatasync && op != Op::kSocket);
    if (r < 0) return failed(-r);
  }
  errno = saved_errno;
  DepthGuard g;
  return fn(ctx);
}

}  // namespace unblock::fault

