/* Helpers for the raw futex programs: syscall(SYS_futex, ...) as libraries
 * call it, and deterministic output (errno names, counts, never times). */
#ifndef FUTEX_TEST_COMMON_H
#define FUTEX_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline long fx(void* uaddr, int op, long val, const void* timeout_or_val2, void* uaddr2, long val3) {
  return syscall(SYS_futex, uaddr, op, val, timeout_or_val2, uaddr2, val3);
}

/* "0", "3", or the errno's name for -1. */
__attribute__((unused)) static const char* res(long r) {
  static char buf[8][32];
  static int slot;
  char* b = buf[slot++ % 8];
  if (r >= 0) {
    snprintf(b, 32, "%ld", r);
    return b;
  }
  switch (errno) {
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    default: snprintf(b, 32, "errno%d", errno); return b;
  }
}

__attribute__((unused)) static double now_s(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((unused)) static struct timespec abs_in_ms(clockid_t c, long ms) {
  struct timespec t;
  clock_gettime(c, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_nsec -= 1000000000L;
    t.tv_sec++;
  }
  return t;
}

__attribute__((unused)) static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Threads waiting on the futex word `w` right now, counted without waking
 * anyone: a CMP_REQUEUE of every waiter onto the same word moves nobody and
 * returns their number. `shared`: count process-shared waiters. */
__attribute__((unused)) static long waiters_on(uint32_t* w, int shared) {
  int op = FUTEX_CMP_REQUEUE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  for (;;) {
    long r = fx(w, op, 0, (void*)(long)INT32_MAX, w, __atomic_load_n(w, __ATOMIC_SEQ_CST));
    if (r >= 0 || errno != EAGAIN) return r;
  }
}

/* Waits (bounded: 20 s) until at least `n` threads wait on `w`. */
__attribute__((unused)) static void wait_for_waiters(uint32_t* w, long n) {
  for (int i = 0; i < 20000 && waiters_on(w, 0) < n; ++i) sleep_ms(1);
}
__attribute__((unused)) static void wait_for_shared_waiters(uint32_t* w, long n) {
  for (int i = 0; i < 20000 && waiters_on(w, 1) < n; ++i) sleep_ms(1);
}

#endif
