// The cost of a fault point, in-process (no preload), in ns per call:
//   - a hook body with and without the insertion's test while nothing is
//     enabled for its op (one relaxed load and a branch);
//   - a check through libfiu when a rule matches the point but does not
//     fire (probability 0, or scoped to another descriptor).
// Prints a table; tests/fault/bench.sh runs it with the end-to-end benchmark.
#include <time.h>

#include <cstdio>

#include "fault/fault.h"

using namespace unblock;

namespace {

__attribute__((noinline)) long body(long x) {
  asm volatile("" : "+r"(x));
  return x + 1;
}
__attribute__((noinline)) long slow(long x) { return body(x) + 2; }
__attribute__((noinline)) long hook_plain(long x) { return body(x); }
__attribute__((noinline)) long hook_checked(long x) {
  if (__builtin_expect(fault::armed(fault::Op::kRead) != 0, 0)) return slow(x);
  return body(x);
}

double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

template <class F>
double best_ns_per_call(F f, long n) {
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    double t0 = now_ns();
    long acc = 0;
    for (long i = 0; i < n; ++i) acc += f(i);
    double t = (now_ns() - t0) / n;
    asm volatile("" ::"r"(acc));
    if (t < best) best = t;
  }
  return best;
}

double check_ns(const char* rule, int fd, long n) {
  const char* error = nullptr;
  if (fault::apply(rule, &error) != 0) {
    std::printf("cannot enable %s: %s\n", rule, error ? error : "?");
    return -1;
  }
  double r = best_ns_per_call(
      [fd](long) -> long {
        fault::Call c;
        c.op = fault::Op::kRead;
        c.kind = fault::Kind::kErrno;
        c.fd = fd;
        c.dir = fault::Dir::kIn;
        uintptr_t info;
        return fault::check(c, &info);
      },
      n);
  fault::apply("disable name=posix/io/rw/read", &error);
  return r;
}

}  // namespace

int main() {
  const long n = 200000000;
  double plain = best_ns_per_call(hook_plain, n);
  double checked = best_ns_per_call(hook_checked, n);
  std::printf("hook body, no test:                          %6.2f ns/call\n", plain);
  std::printf("hook body + disabled point (load+branch):    %6.2f ns/call  (+%.2f ns)\n", checked, checked - plain);
  if (!fault::ensure_ready()) return 1;
  const long m = 2000000;
  double never = check_ns("enable_random name=posix/io/rw/read,probability=0", 3, m);
  double scoped = check_ns("enable name=posix/io/rw/read,fd=999", 3, m);
  double wild = check_ns("enable_random name=posix/io/*,probability=0", 3, m);
  std::printf("armed point, rule never fires (libfiu + decide): %6.1f ns/check\n", never);
  std::printf("armed point, rule scoped to another fd:          %6.1f ns/check\n", scoped);
  std::printf("armed point, wildcard rule never fires:          %6.1f ns/check\n", wild);
  return 0;
}
