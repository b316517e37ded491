// The lock-rank checker (runtime/lockrank.h): compiled only with
// UNBLOCK_LOCKRANK. The ranks a thread holds live in its TLS, which under
// the runtime is the running fiber's: a spin lock is never held across a
// switch, so a critical section begins and ends on the same TLS.
#include "runtime/lockrank.h"

#if UNBLOCK_LOCKRANK

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "shim/raw_syscall.h"

namespace unblock::lockrank {

namespace {

struct Held {
  LockRank rank;
  const void* lock;
};

struct HeldSet {
  int n;
  Held h[kMaxHeld];
};

thread_local HeldSet tl_held __attribute__((tls_model("initial-exec")));

void append(char* buf, size_t cap, size_t* len, const char* s) {
  size_t add = strlen(s);
  if (*len + add >= cap) add = cap - 1 - *len;
  memcpy(buf + *len, s, add);
  *len += add;
  buf[*len] = '\0';
}

[[noreturn]] void die(const char* what, LockRank taking, LockRank held) {
  char buf[384];
  size_t len = 0;
  buf[0] = '\0';
  append(buf, sizeof buf, &len, "unblock: lock order violation: ");
  append(buf, sizeof buf, &len, what);
  append(buf, sizeof buf, &len, " ");
  append(buf, sizeof buf, &len, name(taking));
  append(buf, sizeof buf, &len, " while holding ");
  append(buf, sizeof buf, &len, name(held));
  append(buf, sizeof buf, &len, " (runtime/lockrank.h)\n");
  raw_syscall(SYS_write, 2, reinterpret_cast<long>(buf), static_cast<long>(len));
  abort();
}

}  // namespace

void acquire(LockRank r, const void* lock) {
  if (r == LockRank::kUnranked) return;
  HeldSet& s = tl_held;
  for (int i = 0; i < s.n; ++i) {
    const Held& h = s.h[i];
    if (h.rank < r) continue;
    if (h.rank == r && kRanks[static_cast<int>(r)].nests_by_address && h.lock < lock) continue;
    die(h.lock == lock ? "taking again" : "taking", r, h.rank);
  }
  if (s.n == kMaxHeld) die("too many locks held: taking", r, s.h[s.n - 1].rank);
  s.h[s.n++] = Held{r, lock};
}

void release(LockRank r, const void* lock) {
  if (r == LockRank::kUnranked) return;
  HeldSet& s = tl_held;
  for (int i = s.n - 1; i >= 0; --i) {
    if (s.h[i].lock != lock) continue;
    for (int j = i; j + 1 < s.n; ++j) s.h[j] = s.h[j + 1];
    --s.n;
    return;
  }
  die("releasing a lock not held:", r, r);
}

void acquired_by_try(LockRank r, const void* lock) {
  if (r == LockRank::kUnranked) return;
  HeldSet& s = tl_held;
  if (s.n == kMaxHeld) die("too many locks held: taking", r, s.h[s.n - 1].rank);
  s.h[s.n++] = Held{r, lock};
}

int held_count() { return tl_held.n; }

}  // namespace unblock::lockrank

#endif  // UNBLOCK_LOCKRANK
