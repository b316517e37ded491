#include "shim/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

using unblock::config::parse_size;

TEST(Config, ParsesSizesWithBinaryUnits) {
  size_t v = 0;
  EXPECT_TRUE(parse_size("123", &v));
  EXPECT_EQ(v, 123u);
  EXPECT_TRUE(parse_size("64k", &v));
  EXPECT_EQ(v, 64u * 1024);
  EXPECT_TRUE(parse_size("8M", &v));
  EXPECT_EQ(v, 8u << 20);
  EXPECT_TRUE(parse_size("1GiB", &v));
  EXPECT_EQ(v, 1u << 30);
}

TEST(Config, RejectsMalformedSizes) {
  size_t v = 7;
  EXPECT_FALSE(parse_size("", &v));
  EXPECT_FALSE(parse_size("-4k", &v));
  EXPECT_FALSE(parse_size("12q", &v));
  EXPECT_FALSE(parse_size("k", &v));
  EXPECT_FALSE(parse_size("99999999999999999999999", &v));
  EXPECT_EQ(v, 7u);
}

TEST(Config, BadValuesFallBackToDefaults) {
  setenv("UNBLOCK_WORKERS", "lots", 1);
  setenv("UNBLOCK_STACK_SIZE", "12", 1);  // below the minimum
  setenv("UNBLOCK_LOG", "chatty", 1);
  unblock::config::load();
  unblock::config::resolve_defaults();
  const auto& c = unblock::config::get();
  EXPECT_GE(c.workers, 1);
  EXPECT_GE(c.stack_size, 16u * 1024);
  EXPECT_EQ(c.log_level, 0);
  unsetenv("UNBLOCK_WORKERS");
  unsetenv("UNBLOCK_STACK_SIZE");
  unsetenv("UNBLOCK_LOG");
}

TEST(Config, DescribesEveryOption) {
  const char* text = unblock::config::describe();
  for (const char* name : {"UNBLOCK_WORKERS", "UNBLOCK_STACK_SIZE", "UNBLOCK_LOG", "UNBLOCK_HANDOFF_US",
                           "UNBLOCK_MAX_THREADS", "UNBLOCK_DISABLE", "UNBLOCK_STATS"}) {
    EXPECT_NE(strstr(text, name), nullptr) << name;
  }
}
