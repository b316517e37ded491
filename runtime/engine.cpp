// engine::create(): the single place an engine is chosen (runtime/engine.h).
//
// UNBLOCK_ENGINE=auto (the default) takes io_uring when a ring can be set up
// and passes its probe (Uring::init: IORING_FEAT_NODROP), else the epoll
// engine, else none (every call passes through). uring and epoll ask for that
// engine only; off for none. The first worker's choice is logged once
// (UNBLOCK_LOG=info) and reported by UNBLOCK_STATS and unblock-ctl stats.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <atomic>

#include "runtime/alloc.h"
#include "runtime/engine.h"
#include "runtime/engine_epoll.h"
#include "runtime/engine_uring.h"
#include "shim/config.h"
#include "shim/log.h"

namespace unblock::engine {
namespace {

// Written by the first create() (runtime start, before any worker runs),
// read afterwards.
const char* g_chosen = "none";
char g_reason[160] = "not started";
std::atomic<bool> g_logged{false};

// Allocates and initialises engine T; nullptr (errno value in *why) if it
// cannot run here.
template <typename T>
T* make(unsigned entries, int* why) {
  T* t = alloc_objects<T>();
  if (!t) {
    *why = ENOMEM;
    return nullptr;
  }
  if (!t->init(entries, why)) {
    t->~T();
    free(t);
    return nullptr;
  }
  return t;
}

__attribute__((format(printf, 2, 3))) void note(const char* chosen, const char* fmt, ...) {
  if (g_logged.exchange(true, std::memory_order_relaxed)) return;
  g_chosen = chosen;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_reason, sizeof g_reason, fmt, ap);
  va_end(ap);
  LOG_INFO("engine: %s (%s)", chosen, g_reason);
}

}  // namespace

Backend* create(unsigned entries, int* why) {
  int choice = config::get().engine;
  if (choice == Config::kEngineOff) {
    *why = ENODEV;
    note("none", "UNBLOCK_ENGINE=off");
    return nullptr;
  }
  int uring_why = 0;
  if (choice != Config::kEngineEpoll) {
    if (Uring* u = make<Uring>(entries, &uring_why)) {
      note("io_uring", "%s", choice == Config::kEngineUring ? "UNBLOCK_ENGINE=uring" : "auto: set up and probed");
      return u;
    }
    if (choice == Config::kEngineUring) {
      *why = uring_why;
      note("none", "UNBLOCK_ENGINE=uring, io_uring: %s", strerror(uring_why));
      return nullptr;
    }
  }
  int epoll_why = 0;
  if (EpollEngine* e = make<EpollEngine>(entries, &epoll_why)) {
    if (choice == Config::kEngineEpoll) note("epoll", "UNBLOCK_ENGINE=epoll");
    else note("epoll", "io_uring: %s", strerror(uring_why));
    return e;
  }
  *why = epoll_why;
  if (choice == Config::kEngineEpoll) note("none", "UNBLOCK_ENGINE=epoll, epoll: %s", strerror(epoll_why));
  else note("none", "io_uring: %s, epoll: %s", strerror(uring_why), strerror(epoll_why));
  return nullptr;
}

const char* chosen() { return g_chosen; }
const char* chosen_reason() { return g_reason; }

}  // namespace unblock::engine
