// Cost per operation of the two engines, driven from one plain thread
// (docs/DESIGN.md, section 9, "Measured costs"): a recv that can finish at once,
// and a recv that waits for readiness (submitted on an empty socket, the
// peer's send comes after). Each figure includes the peer's send(2), which
// the "plain" line measures alone with a non-blocking recv. Not a test.
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "runtime/engine.h"
#include "runtime/engine_epoll.h"

using unblock::Completion;
using unblock::IoOp;

namespace {

// unblock::Op is a Completion carrying its IoOp (the io_uring engine's
// interface, runtime/engine.h); the epoll engine takes the two apart.
struct Op : unblock::Op {
  int res = 0;
  bool done = false;
  Op() {
    on_complete = [](Completion* c, int res, uint32_t) {
      auto* self = static_cast<Op*>(c);
      self->res = res;
      self->done = true;
    };
  }
};

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

template <typename E>
double run(E& e, int a, int b, int n, bool wait_first) {
  char buf[64];
  IoOp op{};
  op.kind = IoOp::kRecv;
  op.fd = a;
  op.addr = buf;
  op.len = sizeof buf;
  double t0 = now_s();
  for (int i = 0; i < n; ++i) {
    Op o;
    if (!wait_first && send(b, "x", 1, 0) != 1) abort();
    if constexpr (std::is_same_v<E, unblock::Engine>) {
      o.io = op;
      e.submit(&o);
    } else {
      e.submit_op(op, &o, 0, nullptr);
    }
    if (wait_first) {
      e.flush();
      e.reap();  // a round that finds nothing (the scheduler's usual)
      if (send(b, "x", 1, 0) != 1) abort();
    }
    e.flush();
    while (!o.done) {
      if (!e.reap()) e.wait();
    }
    if (o.res != 1) abort();
  }
  return (now_s() - t0) / n * 1e9;
}

double plain(int a, int b, int n) {
  char buf[64];
  double t0 = now_s();
  for (int i = 0; i < n; ++i) {
    if (send(b, "x", 1, 0) != 1 || recv(a, buf, sizeof buf, MSG_DONTWAIT) != 1) abort();
  }
  return (now_s() - t0) / n * 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100000;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  int why = 0;
  unblock::EpollEngine ep;
  if (!ep.init(256, &why)) return 1;
  unblock::Engine ur;
  bool have_uring = ur.init(256, &why);
  for (int round = 0; round < 2; ++round) {  // the first round warms up
    double p = plain(sv[0], sv[1], n);
    double ei = run(ep, sv[0], sv[1], n, false);
    double ew = run(ep, sv[0], sv[1], n, true);
    double ui = have_uring ? run(ur, sv[0], sv[1], n, false) : 0;
    double uw = have_uring ? run(ur, sv[0], sv[1], n, true) : 0;
    if (round == 0) continue;
    printf("ops per case: %d (AF_UNIX stream socketpair, 1-byte messages, one thread)\n", n);
    printf("plain send + recv(MSG_DONTWAIT):   %7.0f ns\n", p);
    printf("epoll engine, recv ready at once:  %7.0f ns   (enters %llu)\n", ei,
           (unsigned long long)ep.enters());
    printf("epoll engine, recv waits:          %7.0f ns\n", ew);
    if (have_uring) {
      printf("io_uring engine, recv ready:       %7.0f ns\n", ui);
      printf("io_uring engine, recv waits:       %7.0f ns\n", uw);
    } else {
      printf("io_uring engine: unavailable (%s)\n", strerror(why));
    }
  }
  ep.shutdown();
  if (have_uring) ur.shutdown();
  return 0;
}
