#include "runtime/tls.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>

#include <cerrno>

namespace {
thread_local int tl_value = 11;

struct Probe {
  int tl_seen;
  int errno_seen;
  pthread_t self;
};

// Runs on the new TCB: no calls that could switch or unwind.
__attribute__((noinline)) void observe(Probe* p) {
  p->tl_seen = tl_value;
  tl_value = 99;
  errno = 1234;
  p->errno_seen = errno;
  p->self = pthread_self();
}
}  // namespace

TEST(Tls, InitVerifiesTheGlibcLayout) { ASSERT_TRUE(unblock::tls::init()) << unblock::tls::failure(); }

TEST(Tls, ANewTcbHasFreshThreadLocalsAndItsOwnIdentity) {
  ASSERT_TRUE(unblock::tls::init());
  size_t size = 256 * 1024;
  auto* mem = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  char* stack_top = nullptr;
  void* tp = unblock::tls::create(mem + size, &stack_top, 0x01234567);
  ASSERT_NE(tp, nullptr);
  EXPECT_LT(stack_top, static_cast<char*>(tp));
  EXPECT_EQ(unblock::tls::tid_of(tp), 0x01234567);
  tl_value = 5;
  errno = 0;
  Probe p{};
  void* mine = unblock::tls::current_tp();
  unblock::tls::set_tp(tp);
  observe(&p);
  unblock::tls::set_tp(mine);
  EXPECT_EQ(p.tl_seen, 11);  // the initial value, not ours
  EXPECT_EQ(p.errno_seen, 1234);
  EXPECT_EQ(p.self, reinterpret_cast<pthread_t>(tp));
  EXPECT_EQ(tl_value, 5);  // ours untouched
  EXPECT_EQ(errno, 0);
  unblock::tls::destroy(tp);
  munmap(mem, size);
}

TEST(Tls, CurrentThreadIdIsTheKernelTidOnAPlainThread) {
  EXPECT_EQ(unblock::current_thread_id(), gettid());
}
