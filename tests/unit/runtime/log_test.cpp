#include "shim/log.h"

#include <gtest/gtest.h>

#include <cstdarg>
#include <string>

namespace {
std::string fmt(const char* f, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, f);
  unblock::log::format(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}
}  // namespace

TEST(Log, FormatsTheSupportedConversions) {
  EXPECT_EQ(fmt("%d %u %x %s %c %%", -12, 34u, 255u, "ok", 'z'), "-12 34 ff ok z %");
  EXPECT_EQ(fmt("%ld %lu %zu", -5L, 6UL, static_cast<size_t>(7)), "-5 6 7");
  EXPECT_EQ(fmt("%05d|%3d", 42, 7), "00042|  7");
  EXPECT_EQ(fmt("%s", static_cast<const char*>(nullptr)), "(null)");
}

TEST(Log, TruncatesWithoutOverflow) {
  char buf[8];
  va_list ap{};
  int n = unblock::log::format(buf, sizeof buf, "0123456789", ap);
  EXPECT_EQ(n, 7);
  EXPECT_STREQ(buf, "0123456");
}

TEST(Log, SilentByDefault) { EXPECT_FALSE(unblock::log::enabled(unblock::log::Level::kError)); }
