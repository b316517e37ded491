#include "runtime/fdtable.h"
#include "shim/raw_syscall.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace unblock::fds {
namespace {

constexpr int kChunkBits = 10;
constexpr int kChunkSize = 1 << kChunkBits;
constexpr int kMaxChunks = 1 << 12;  // fds up to 4M

// state word: generation << 8 | flags
constexpr uint64_t kKnown = 1, kNonblock = 2, kSocket = 4, kShared = 8, kKindShift = 4, kKindMask = 3 << 4;
// Learnt on first need (set_unix_dgram), dropped when the state is learnt again.
constexpr uint64_t kUnixDgramKnown = 64, kUnixDgram = 128;

struct Entry {
  std::atomic<uint64_t> state{0};
  std::atomic<int64_t> rcv{0};
  std::atomic<int64_t> snd{0};
};

std::atomic<Entry*> g_chunks[kMaxChunks];
// Bumped when O_NONBLOCK changes on a possibly shared description: every
// entry learnt under an older generation is learnt again.
std::atomic<uint64_t> g_generation{1};

Entry* entry(int fd, bool create) {
  if (fd < 0 || (fd >> kChunkBits) >= kMaxChunks) return nullptr;
  std::atomic<Entry*>& slot = g_chunks[fd >> kChunkBits];
  Entry* chunk = slot.load(std::memory_order_acquire);
  if (!chunk) {
    if (!create) return nullptr;
    auto* fresh = static_cast<Entry*>(calloc(kChunkSize, sizeof(Entry)));
    if (!fresh) return nullptr;
    // Pairs with the acquire load above.
    if (!slot.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) free(fresh);
    else chunk = fresh;
  }
  return &chunk[fd & (kChunkSize - 1)];
}

uint64_t make_state(uint64_t flags) { return g_generation.load(std::memory_order_acquire) << 8 | flags; }

bool current(uint64_t s) {
  return (s & kKnown) && (s >> 8) == g_generation.load(std::memory_order_acquire);
}

}  // namespace

Info lookup(int fd) {
  Info info;
  Entry* e = entry(fd, true);
  if (!e) return info;
  uint64_t s = e->state.load(std::memory_order_acquire);
  if (!current(s)) {
    int saved = errno;
    long fl = errno_syscall(SYS_fcntl, fd, F_GETFL);
    if (fl < 0) {
      errno = saved;
      return info;  // not open
    }
    uint64_t flags = kKnown | (s & kShared);
    if (fl & O_NONBLOCK) flags |= kNonblock;
    if (!(s & kKnown)) {
      // First sight: what it is, and a socket's timeouts.
      struct stat st;
      Kind kind = Kind::kOther;
      if (errno_syscall(SYS_fstat, fd, &st) == 0) {
        if (S_ISSOCK(st.st_mode)) kind = Kind::kSocket;
        else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) kind = Kind::kRegular;
        else if (S_ISFIFO(st.st_mode)) kind = Kind::kPipe;
      }
      flags |= static_cast<uint64_t>(kind) << kKindShift;
      timeval tv{};
      socklen_t len = sizeof tv;
      if (kind == Kind::kSocket && errno_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0) {
        flags |= kSocket;
        e->rcv.store(timeout_ns(tv), std::memory_order_relaxed);
        len = sizeof tv;
        tv = timeval{};
        errno_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len);
        e->snd.store(timeout_ns(tv), std::memory_order_relaxed);
      }
      // Not made by a hooked call: it may share its description.
      flags |= kShared;
    } else {
      flags |= s & (kSocket | kKindMask | kUnixDgramKnown | kUnixDgram);
    }
    errno = saved;
    s = make_state(flags);
    e->state.store(s, std::memory_order_release);
  }
  info.valid = true;
  info.nonblock = s & kNonblock;
  info.socket = s & kSocket;
  info.kind = static_cast<Kind>((s & kKindMask) >> kKindShift);
  if (s & kUnixDgramKnown) info.unix_dgram = (s & kUnixDgram) ? 1 : 0;
  info.state = s;
  if (info.socket) {
    info.rcvtimeo_ns = e->rcv.load(std::memory_order_relaxed);
    info.sndtimeo_ns = e->snd.load(std::memory_order_relaxed);
  }
  return info;
}

namespace {

// created() with `more` state flags known at creation.
void store_created(int fd, bool nonblock, Kind kind, uint64_t more) {
  Entry* e = entry(fd, true);
  if (!e) return;
  e->rcv.store(0, std::memory_order_relaxed);
  e->snd.store(0, std::memory_order_relaxed);
  uint64_t flags = kKnown | (nonblock ? kNonblock : 0) | (kind == Kind::kSocket ? kSocket : 0) |
                   static_cast<uint64_t>(kind) << kKindShift | more;
  e->state.store(make_state(flags), std::memory_order_release);
}

}  // namespace

void created(int fd, bool nonblock, Kind kind) {
  store_created(fd, nonblock, kind, 0);
}

void forget(int fd) {
  Entry* e = entry(fd, false);
  if (e) e->state.store(0, std::memory_order_release);
}

void forget_range(unsigned first, unsigned last) {
  for (unsigned c = first >> kChunkBits; c < static_cast<unsigned>(kMaxChunks) && c <= (last >> kChunkBits); ++c) {
    Entry* chunk = g_chunks[c].load(std::memory_order_acquire);
    if (!chunk) continue;
    for (unsigned i = 0; i < static_cast<unsigned>(kChunkSize); ++i) {
      unsigned fd = c << kChunkBits | i;
      if (fd >= first && fd <= last) chunk[i].state.store(0, std::memory_order_release);
    }
  }
}

void set_nonblock(int fd, bool nonblock) {
  Entry* e = entry(fd, true);
  if (!e) return;
  uint64_t s = e->state.load(std::memory_order_acquire);
  if (!(s & kKnown) || (s & kShared)) {
    // Other fds may share this description: learn them all again.
    g_generation.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  uint64_t flags = (s & 0xff & ~kNonblock) | (nonblock ? kNonblock : 0);
  e->state.store(make_state(flags), std::memory_order_release);
}

int64_t timeout_ns(const timeval& tv) {
  if (tv.tv_sec < 0) return 1;
  // Past a billion seconds (32 years) a timeout is none: what is left of
  // int64 nanoseconds must also hold the clock it is added to.
  if (tv.tv_sec >= 1000000000) return 0;
  return tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
}

void set_timeout(int fd, bool rcv, int64_t ns) {
  Entry* e = entry(fd, true);
  if (!e) return;
  (rcv ? e->rcv : e->snd).store(ns, std::memory_order_relaxed);
  uint64_t s = e->state.load(std::memory_order_acquire);
  if (s & kKnown) e->state.store(s | kSocket, std::memory_order_release);
}

void set_unix_dgram(int fd, uint64_t seen, bool yes) {
  Entry* e = entry(fd, false);
  if (!e || !current(seen)) return;
  e->state.compare_exchange_strong(seen, seen | kUnixDgramKnown | (yes ? kUnixDgram : 0), std::memory_order_acq_rel);
}

void created_socket(int fd, bool nonblock, int domain, int type) {
  bool yes = domain == AF_UNIX && (type & 0xf) != SOCK_STREAM;
  store_created(fd, nonblock, Kind::kSocket, kUnixDgramKnown | (yes ? kUnixDgram : 0));
}

void mark_shared(int fd) {
  Entry* e = entry(fd, true);
  if (!e) return;
  e->state.fetch_or(kShared, std::memory_order_acq_rel);
}

}  // namespace unblock::fds
