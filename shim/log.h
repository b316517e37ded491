// Logging for a library that lives inside someone else's process.
//
// Silent unless UNBLOCK_LOG asks. Messages are formatted into a stack buffer
// and written with one raw write(2) to stderr (or UNBLOCK_LOG_FILE), so they
// never allocate, never touch stdio's locks and never change errno.
// Async-signal-safe; may be called from any thread, fiber or signal handler.
#pragma once

#include <cstdarg>

namespace unblock::log {

enum class Level : int { kOff = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

// Set once at start-up by the configuration.
void set_level(Level level);
void set_fd(int fd);
Level level();

inline bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(level()); }

// printf-style subset: %s %d %u %ld %lu %zu %x %lx %p %c %%.
void write(Level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vwrite(Level l, const char* fmt, va_list ap);

// Unconditional message (used for fatal reports such as a stack overflow).
void always(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Formats into buf (always NUL-terminated); returns the length.
int format(char* buf, int cap, const char* fmt, va_list ap);

}  // namespace unblock::log

#define UNBLOCK_LOG_AT(lvl, ...)                                              \
  do {                                                                        \
    if (::unblock::log::enabled(lvl)) ::unblock::log::write(lvl, __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) UNBLOCK_LOG_AT(::unblock::log::Level::kError, __VA_ARGS__)
#define LOG_WARN(...) UNBLOCK_LOG_AT(::unblock::log::Level::kWarn, __VA_ARGS__)
#define LOG_INFO(...) UNBLOCK_LOG_AT(::unblock::log::Level::kInfo, __VA_ARGS__)
#define LOG_DEBUG(...) UNBLOCK_LOG_AT(::unblock::log::Level::kDebug, __VA_ARGS__)
