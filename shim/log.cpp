#include "shim/log.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "shim/raw_syscall.h"

namespace unblock::log {
namespace {

std::atomic<int> g_level{0};
std::atomic<int> g_fd{2};

long raw_write(int fd, const void* buf, unsigned long len) {
  return raw_syscall(SYS_write, fd, reinterpret_cast<long>(buf), static_cast<long>(len));
}

struct Out {
  char* buf;
  int cap;
  int len = 0;
  void put(char c) {
    if (len + 1 < cap) buf[len] = c;
    ++len;
  }
  void puts(const char* s) {
    if (!s) s = "(null)";
    while (*s) put(*s++);
  }
  void num(unsigned long v, unsigned base, bool neg, int width = 0, char pad = ' ') {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v);
    if (neg) tmp[n++] = '-';
    while (n < width) tmp[n++] = pad;
    while (n) put(tmp[--n]);
  }
};

}  // namespace

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
void set_fd(int fd) { g_fd.store(fd, std::memory_order_relaxed); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

int format(char* buf, int cap, const char* fmt, va_list ap) {
  Out o{buf, cap};
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      o.put(*p);
      continue;
    }
    ++p;
    char pad = ' ';
    int width = 0;
    if (*p == '0') {
      pad = '0';
      ++p;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    int longs = 0;
    bool size = false;
    while (*p == 'l') {
      ++longs;
      ++p;
    }
    if (*p == 'z') {
      size = true;
      ++p;
    }
    switch (*p) {
      case 'd': {
        long v = (longs || size) ? va_arg(ap, long) : va_arg(ap, int);
        o.num(v < 0 ? -static_cast<unsigned long>(v) : v, 10, v < 0, width, pad);
        break;
      }
      case 'u': {
        unsigned long v = (longs || size) ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        o.num(v, 10, false, width, pad);
        break;
      }
      case 'x': {
        unsigned long v = (longs || size) ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        o.num(v, 16, false, width, pad);
        break;
      }
      case 'p':
        o.puts("0x");
        o.num(reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16, false);
        break;
      case 's':
        o.puts(va_arg(ap, const char*));
        break;
      case 'c':
        o.put(static_cast<char>(va_arg(ap, int)));
        break;
      case '%':
        o.put('%');
        break;
      default:
        o.put('?');
        break;
    }
  }
  if (cap > 0) buf[o.len < cap ? o.len : cap - 1] = '\0';
  return o.len < cap ? o.len : cap - 1;
}

static void emit(const char* fmt, va_list ap) {
  char buf[512];
  Out head{buf, static_cast<int>(sizeof buf)};
  head.puts("unblock[");
  head.num(static_cast<unsigned long>(errno_syscall(SYS_getpid)), 10, false);
  head.puts("]: ");
  int n = head.len;
  n += format(buf + n, static_cast<int>(sizeof buf) - n - 1, fmt, ap);
  if (n > 0 && buf[n - 1] != '\n') buf[n++] = '\n';
  raw_write(g_fd.load(std::memory_order_relaxed), buf, n);
}

void vwrite(Level l, const char* fmt, va_list ap) {
  if (!enabled(l)) return;
  emit(fmt, ap);
}

void write(Level l, const char* fmt, ...) {
  if (!enabled(l)) return;
  va_list ap;
  va_start(ap, fmt);
  emit(fmt, ap);
  va_end(ap);
}

void always(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(fmt, ap);
  va_end(ap);
}

}  // namespace unblock::log
