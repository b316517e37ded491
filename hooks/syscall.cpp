// syscall(): glibc's generic system call entry, which programs use for calls
// glibc has no wrapper for (or did not have when they were written):
// syscall(SYS_gettid), syscall(SYS_tgkill, ...). The numbers that name a
// thread by id are served for fibers as the named wrappers are
// (hooks/thread_ids.cpp); every other number goes to the kernel exactly as
// glibc's syscall() sends it: six arguments, -1 and errno on a result in
// [-4095, -1].
#include <errno.h>
#include <stdarg.h>

#include "hooks/hook.h"
#include "hooks/thread_ids.h"
#include "shim/raw_syscall.h"

using namespace unblock;

UNBLOCK_HOOK long syscall(long nr, ...) {
  va_list ap;
  va_start(ap, nr);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  long r;
  if (!hooks::thread_id_syscall(nr, a, &r)) r = raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (r < 0 && r >= -4095) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}
