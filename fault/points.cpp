// The pure half of fault injection: the point table, command parsing, rule
// matching, the seeded decision and the realistic errno choice. Nothing here
// performs I/O or calls libfiu (fault/control.cpp does), so the unit
// tests drive all of it directly.
#include "fault/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include <cstdlib>

namespace unblock::fault {

std::atomic<uint16_t> g_mask[kOps];
std::atomic<uint64_t> g_point_calls[kPoints];

namespace {

constexpr uint16_t E = bit(Kind::kErrno), R = bit(Kind::kReduce), D = bit(Kind::kDelay), H = bit(Kind::kHang),
                   S = bit(Kind::kShort), X = bit(Kind::kReset), F = bit(Kind::kEofAfter),
                   C = bit(Kind::kCorrupt), I = bit(Kind::kEintr), RF = bit(Kind::kRefused),
                   TO = bit(Kind::kTimeout);

// reads: every kind that changes what comes in; positioned reads are never
// sockets (ESPIPE), so no reset.
constexpr uint16_t kReads = E | R | D | H | S | X | F | C | I;
constexpr uint16_t kPreads = E | R | D | H | S | F | C | I;
constexpr uint16_t kWrites = E | R | D | H | S | X | I;
constexpr uint16_t kPwrites = E | R | D | H | S | I;
constexpr uint16_t kRecvs = E | D | H | S | X | F | C | I;
constexpr uint16_t kSends = E | D | H | S | X | I;

struct OpInfo {
  const char* function;
  const char* posix;
  Dir dir;
  uint16_t kinds;
};

#define FAULT_UNPAREN_(...) __VA_ARGS__
constexpr OpInfo kOpInfo[kOps] = {
#define FAULT_OP(op, function, posix, dir, kinds, errnos) {function, posix, Dir::dir, kinds},
#include "fault/ops.def"
#undef FAULT_OP
};

#define FAULT_OP(op, function, posix, dir, kinds, errnos) constexpr int kErrnos_##op[] = {FAULT_UNPAREN_ errnos};
#include "fault/ops.def"
#undef FAULT_OP
struct ErrnoList {
  const int* v;
  int n;
};
constexpr ErrnoList kErrnos[kOps] = {
#define FAULT_OP(op, ...) {kErrnos_##op, static_cast<int>(sizeof kErrnos_##op / sizeof(int))},
#include "fault/ops.def"
#undef FAULT_OP
};

constexpr const char* kKindNames[kKinds] = {"errno", "reduce", "delay", "hang", "short", "reset",
                                            "eof_after", "corrupt", "eintr", "refused", "timeout"};

constexpr int kPointNameMax = 64;

uint64_t fnv1a(const char* s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

struct Names {
  char name[kOps][kKinds][kPointNameMax];
  uint64_t hash[kPoints];
  Names() {
    memset(name, 0, sizeof name);
    for (int o = 0; o < kOps; ++o) {
      const OpInfo& op = kOpInfo[o];
      for (int k = 0; k < kKinds; ++k) {
        if (!(op.kinds & (1u << k))) continue;
        char* out = name[o][k];
        auto kind = static_cast<Kind>(k);
        if (kind == Kind::kErrno) {
          append(out, op.posix);
        } else if (kind == Kind::kReduce) {
          append(out, op.posix);
          append(out, "/reduce");
        } else if (kind == Kind::kRefused || kind == Kind::kTimeout) {
          append(out, "unblock/connect/");
          append(out, kKindNames[k]);
        } else {
          append(out, "unblock/");
          append(out, kKindNames[k]);
          append(out, "/");
          append(out, op.posix);
        }
        hash[o * kKinds + k] = fnv1a(out);
      }
    }
  }
  static void append(char* out, const char* s) {
    size_t len = strlen(out);
    size_t add = strlen(s);
    if (len + add >= kPointNameMax) add = kPointNameMax - 1 - len;
    memcpy(out + len, s, add);
    out[len + add] = '\0';
  }
};

const Names& names() {
  // Built on first use (a control path enables a rule before any hook can
  // ask for a name); a process that never enables a fault never builds it.
  static const Names table;
  return table;
}

uint64_t mix(uint64_t x) {
  // splitmix64's finaliser.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

bool parse_u64(const char* text, uint64_t* out) {
  if (!text || !*text || *text == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

bool parse_int(const char* text, long min, long max, long* out) {
  if (!text || !*text) return false;
  char* end = nullptr;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

bool parse_errno(const char* text, uintptr_t* out) {
  uint64_t v;
  if (parse_u64(text, &v)) {
    if (v == 0 || v > 4095) return false;
    *out = v;
    return true;
  }
  for (int e = 1; e < 4096; ++e) {
    const char* n = strerrorname_np(e);
    if (n && strcmp(n, text) == 0) {
      *out = static_cast<uintptr_t>(e);
      return true;
    }
  }
  return false;
}

void copy_name(char* dst, const char* src) {
  size_t n = strlen(src);
  if (n >= Command::kNameMax) n = Command::kNameMax - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

int pick(const int* v, size_t n, uint64_t r) { return v[r % n]; }
#define PICK(...)                                             \
  do {                                                        \
    static const int kChoice[] = {__VA_ARGS__};               \
    return pick(kChoice, sizeof kChoice / sizeof *kChoice, r); \
  } while (0)

bool is_read(Op op) {
  switch (op) {
    case Op::kRead: case Op::kPread: case Op::kReadv: case Op::kPreadv:
    case Op::kRecv: case Op::kRecvfrom: case Op::kRecvmsg:
      return true;
    default:
      return false;
  }
}

bool is_write(Op op) {
  switch (op) {
    case Op::kWrite: case Op::kPwrite: case Op::kWritev: case Op::kPwritev:
    case Op::kSend: case Op::kSendto: case Op::kSendmsg:
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* op_function(Op op) { return kOpInfo[static_cast<int>(op)].function; }
const char* posix_name(Op op) { return kOpInfo[static_cast<int>(op)].posix; }
const char* kind_name(Kind k) { return kKindNames[static_cast<int>(k)]; }
Dir direction(Op op) { return kOpInfo[static_cast<int>(op)].dir; }
bool applies(Op op, Kind k) { return kOpInfo[static_cast<int>(op)].kinds & bit(k); }

const int* errnos(Op op, int* n) {
  const ErrnoList& l = kErrnos[static_cast<int>(op)];
  *n = l.n;
  return l.v;
}

const char* point_name(Op op, Kind k) {
  if (!applies(op, k)) return nullptr;
  return names().name[static_cast<int>(op)][static_cast<int>(k)];
}

bool pattern_matches(const char* pattern, const char* name) {
  size_t len = strlen(pattern);
  if (len > 0 && pattern[len - 1] == '*') return strncmp(pattern, name, len - 1) == 0;
  return strcmp(pattern, name) == 0;
}

// ---- parsing ------------------------------------------------------------------

bool parse(const char* line, Command* out, const char** error) {
  *out = Command{};
  char buf[512];
  size_t len = strlen(line);
  if (len >= sizeof buf) {
    *error = "command too long";
    return false;
  }
  memcpy(buf, line, len + 1);
  // Command and parameters, separated by blanks, as libfiu's fiu_rc_string.
  char* p = buf;
  while (*p == ' ' || *p == '\t') ++p;
  char* verb = p;
  while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') ++p;
  if (p == verb) {
    *error = "cannot get command";
    return false;
  }
  if (*p) *p++ = '\0';
  while (*p == ' ' || *p == '\t') ++p;
  char* params = p;
  while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') ++p;
  *p = '\0';
  if (!strcmp(verb, "enable")) out->verb = Command::kEnable;
  else if (!strcmp(verb, "enable_random")) out->verb = Command::kEnableRandom;
  else if (!strcmp(verb, "disable")) out->verb = Command::kDisable;
  else if (!strcmp(verb, "enable_stack_by_name")) out->verb = Command::kEnableStackByName;
  else {
    *error = "unknown command";
    return false;
  }
  if (!*params) {
    *error = "cannot get parameters";
    return false;
  }
  bool have_name = false, have_probability = false;
  char* save = nullptr;
  for (char* tok = strtok_r(params, ",", &save); tok; tok = strtok_r(nullptr, ",", &save)) {
    char* value = strchr(tok, '=');
    if (value) *value++ = '\0';
    auto need = [&]() {
      if (!value || !*value) *error = "parameter needs a value";
      return value && *value;
    };
    long l;
    uint64_t u;
    if (!strcmp(tok, "name")) {
      if (!need()) return false;
      if (strlen(value) >= Command::kNameMax) {
        *error = "name too long";
        return false;
      }
      copy_name(out->name, value);
      have_name = true;
    } else if (!strcmp(tok, "failnum")) {
      if (!need()) return false;
      if (!parse_int(value, INT32_MIN, INT32_MAX, &l) || l == 0) {
        *error = "failnum must be a nonzero integer";
        return false;
      }
      out->failnum = static_cast<int>(l);
    } else if (!strcmp(tok, "failinfo") || !strcmp(tok, "bytes") || !strcmp(tok, "us")) {
      if (!need()) return false;
      if (!parse_u64(value, &u)) {
        *error = "failinfo/bytes/us must be a number";
        return false;
      }
      out->failinfo = static_cast<uintptr_t>(u);
    } else if (!strcmp(tok, "ms")) {
      if (!need()) return false;
      if (!parse_u64(value, &u) || u > UINT64_MAX / 1000) {
        *error = "ms must be a number";
        return false;
      }
      out->failinfo = static_cast<uintptr_t>(u * 1000);
    } else if (!strcmp(tok, "errno")) {
      if (!need()) return false;
      if (!parse_errno(value, &out->failinfo)) {
        *error = "errno must be a name such as ECONNRESET or a number";
        return false;
      }
    } else if (!strcmp(tok, "probability")) {
      if (!need()) return false;
      char* end = nullptr;
      double v = strtod(value, &end);
      if (*end || v > 1.0 || v != v) {
        *error = "probability must be between 0 and 1";
        return false;
      }
      out->probability = v;
      have_probability = true;
    } else if (!strcmp(tok, "onetime")) {
      out->flags |= 1;  // FIU_ONETIME
    } else if (!strcmp(tok, "func_name")) {
      if (!need()) return false;
      copy_name(out->func_name, value);
    } else if (!strcmp(tok, "pos_in_stack")) {
      if (!need() || !parse_int(value, -1, 1 << 20, &l)) {
        *error = "pos_in_stack must be an integer";
        return false;
      }
      out->pos_in_stack = static_cast<int>(l);
    } else if (!strcmp(tok, "fd")) {
      if (!need() || !parse_int(value, 0, INT32_MAX, &l)) {
        *error = "fd must be a descriptor number";
        return false;
      }
      out->scope.fd = static_cast<int>(l);
    } else if (!strcmp(tok, "port") || !strcmp(tok, "lport")) {
      if (!need() || !parse_int(value, 0, 65535, &l)) {
        *error = "port/lport must be 0..65535";
        return false;
      }
      (tok[0] == 'p' ? out->scope.port : out->scope.lport) = static_cast<int>(l);
    } else if (!strcmp(tok, "dir")) {
      if (!need()) return false;
      if (!strcmp(value, "in")) out->scope.dir = Dir::kIn;
      else if (!strcmp(value, "out")) out->scope.dir = Dir::kOut;
      else {
        *error = "dir must be in or out";
        return false;
      }
    } else if (!strcmp(tok, "every") || !strcmp(tok, "after") || !strcmp(tok, "count")) {
      if (!need() || !parse_int(value, 0, UINT32_MAX, &l)) {
        *error = "every/after/count must be a count";
        return false;
      }
      uint32_t v = static_cast<uint32_t>(l);
      if (tok[0] == 'e') out->scope.every = v;
      else if (tok[0] == 'a') out->scope.after = v;
      else out->scope.count = v;
    } else {
      *error = "unknown parameter";
      return false;
    }
  }
  if (!have_name) {
    *error = "missing name=";
    return false;
  }
  if (out->verb == Command::kEnableRandom && !have_probability) {
    *error = "enable_random needs probability=";
    return false;
  }
  if (out->verb == Command::kEnableStackByName && !out->func_name[0]) {
    *error = "enable_stack_by_name needs func_name=";
    return false;
  }
  return true;
}

// ---- rules ---------------------------------------------------------------------

Rule* RuleTable::add(const Command& c, bool ours) {
  if (!c.name[0]) return nullptr;
  for (Rule& r : slots_) {
    int expected = Rule::kFree;
    if (!r.state.compare_exchange_strong(expected, Rule::kFilling, std::memory_order_acquire)) continue;
    r.gen = next_gen_++;
    copy_name(r.pattern, c.name);
    r.ours = ours;
    r.scope = c.scope;
    double p = c.verb == Command::kEnableRandom ? c.probability : -1;
    r.random = p >= 0 && p < 1;
    // p * 2^64, below 2^64 because p < 1.
    r.threshold = r.random ? static_cast<uint64_t>(p * 18446744073709551616.0) : 0;
    r.counter.store(0, std::memory_order_relaxed);
    r.fired.store(0, std::memory_order_relaxed);
    // Pairs with the acquire loads in find()/any_matches(): the fields above
    // are complete before a reader can see the rule live.
    r.state.store(Rule::kLive, std::memory_order_release);
    return &r;
  }
  return nullptr;
}

void RuleTable::drop(const char* pattern, const Rule* keep) {
  for (Rule& r : slots_) {
    if (&r == keep || r.state.load(std::memory_order_acquire) != Rule::kLive) continue;
    if (strcmp(r.pattern, pattern) == 0) r.state.store(Rule::kFree, std::memory_order_release);
  }
}

Rule* RuleTable::find(const char* pattern) {
  Rule* best = nullptr;
  for (Rule& r : slots_) {
    if (r.state.load(std::memory_order_acquire) != Rule::kLive) continue;
    if (strcmp(r.pattern, pattern) == 0 && (!best || r.gen > best->gen)) best = &r;
  }
  return best;
}

bool RuleTable::any_matches(const char* name) const {
  for (const Rule& r : slots_) {
    if (r.state.load(std::memory_order_acquire) == Rule::kLive && pattern_matches(r.pattern, name)) return true;
  }
  return false;
}

int RuleTable::live() const {
  int n = 0;
  for (const Rule& r : slots_) n += r.state.load(std::memory_order_acquire) == Rule::kLive;
  return n;
}

void RuleTable::compute_masks(std::atomic<uint16_t>* masks) const {
  uint16_t m[kOps] = {};
  bool eof = false;
  for (int o = 0; o < kOps; ++o) {
    for (int k = 0; k < kKinds; ++k) {
      const char* name = point_name(static_cast<Op>(o), static_cast<Kind>(k));
      if (name && any_matches(name)) m[o] |= static_cast<uint16_t>(1u << k);
    }
    eof |= (m[o] & bit(Kind::kEofAfter)) != 0;
  }
  if (eof) m[static_cast<int>(Op::kClose)] |= kTrackClose;
  for (int o = 0; o < kOps; ++o) masks[o].store(m[o], std::memory_order_relaxed);
}

bool decide(Rule& r, Call* c, uint64_t seed) {
  const Scope& s = r.scope;
  int point = -1;
  if (c) {
    if (s.fd >= 0 && c->fd != s.fd) return false;
    if (s.dir != Dir::kNone && c->dir != s.dir) return false;
    if (s.port >= 0 || s.lport >= 0) {
      if ((c->peer_port == -2 || c->local_port == -2) && c->resolve_ports) c->resolve_ports(c);
      if (s.port >= 0 && c->peer_port != s.port) return false;
      if (s.lport >= 0 && c->local_port != s.lport) return false;
    }
    point = point_id(c->op, c->kind);
  } else if (s.limits_call()) {
    return false;  // a scoped rule cannot judge a call it knows nothing about
  }
  std::atomic<uint64_t>& counter = point >= 0 ? g_point_calls[point] : r.counter;
  uint64_t k = counter.fetch_add(1, std::memory_order_relaxed) + 1;
  if (k <= s.after) return false;
  if (s.every > 1 && (k - s.after) % s.every != 0) return false;
  if (r.random) {
    uint64_t d = point >= 0 ? draw(seed, point, k, 0) : draw_for_pattern(seed, r.pattern, k);
    if (d >= r.threshold) return false;
  }
  if (s.count) {
    uint32_t f = r.fired.load(std::memory_order_relaxed);
    do {
      if (f >= s.count) return false;
    } while (!r.fired.compare_exchange_weak(f, f + 1, std::memory_order_relaxed));
  }
  if (c) c->k = k;
  return true;
}

uint64_t draw(uint64_t seed, int point, uint64_t k, uint64_t salt) {
  uint64_t h = point >= 0 && point < kPoints ? names().hash[point] : 0;
  return mix(mix(seed ^ mix(h)) ^ (k * 0x9e3779b97f4a7c15ull) ^ mix(salt + 0x632be59bd9b4e019ull));
}

uint64_t draw_for_pattern(uint64_t seed, const char* pattern, uint64_t k) {
  return mix(mix(seed ^ mix(fnv1a(pattern))) ^ (k * 0x9e3779b97f4a7c15ull) ^ mix(0x632be59bd9b4e019ull));
}

// ---- choices ---------------------------------------------------------------------

int pick_errno(Op op, const FdClass& c, int open_flags, uint64_t r) {
  const bool nb = c.nonblock;
  using T = FdClass::Type;
  if (is_read(op) || is_write(op)) {
    const bool rd = is_read(op);
    switch (c.type) {
      case T::kRegular:
        if (rd) PICK(EIO);
        PICK(EIO, ENOSPC, EDQUOT, EFBIG);
      case T::kDirectory:
        if (rd) PICK(EISDIR);
        PICK(EBADF);  // a directory is never open for writing
      case T::kPipe:
        if (nb) PICK(EAGAIN);
        PICK(EINTR);
      case T::kChar:
        if (nb) PICK(EIO, EAGAIN);
        PICK(EIO, EINTR);
      case T::kTcp:
        if (nb) PICK(ECONNRESET, ETIMEDOUT, EAGAIN);
        PICK(ECONNRESET, ETIMEDOUT, EINTR);
      case T::kUnixStream:
        if (nb) PICK(ECONNRESET, EAGAIN);
        PICK(ECONNRESET, EINTR);
      case T::kUdp:
        if (rd) {
          if (nb) PICK(ECONNREFUSED, EAGAIN);
          PICK(ECONNREFUSED, EINTR);
        }
        if (nb) PICK(ENOBUFS, ECONNREFUSED, EHOSTUNREACH, EAGAIN);
        PICK(ENOBUFS, ECONNREFUSED, EHOSTUNREACH);
      case T::kUnixDgram:
        if (nb) PICK(ECONNREFUSED, EAGAIN);
        PICK(ECONNREFUSED, EINTR);
      case T::kOtherSocket:
        if (nb) PICK(EAGAIN);
        PICK(EINTR);
      case T::kUnknown:
        PICK(EIO);
    }
    PICK(EIO);
  }
  switch (op) {
    case Op::kOpen: {
      int v[8];
      size_t n = 0;
      for (int e : {EACCES, ENOENT, EMFILE, ENFILE, ENOMEM}) v[n++] = e;
      if (open_flags & O_CREAT) {
        v[n++] = ENOSPC;
        v[n++] = EDQUOT;
      }
      if ((open_flags & O_ACCMODE) != O_RDONLY || (open_flags & (O_CREAT | O_TRUNC))) v[n++] = EROFS;
      return pick(v, n, r);
    }
    case Op::kClose:
      PICK(EIO, EINTR);
    case Op::kFsync:
    case Op::kFdatasync:
      if (c.type == T::kRegular || c.type == T::kDirectory || c.type == T::kUnknown) PICK(EIO, ENOSPC, EDQUOT);
      PICK(EINVAL);
    case Op::kSocket:
      PICK(EMFILE, ENFILE, ENOBUFS, ENOMEM);
    case Op::kAccept:
      if (nb) PICK(ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM, EPROTO, EAGAIN);
      PICK(ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM, EPROTO, EINTR);
    case Op::kConnect:
      if (c.type == T::kUnixStream || c.type == T::kUnixDgram) {
        if (nb) PICK(ECONNREFUSED, ENOENT, EACCES, EAGAIN);
        PICK(ECONNREFUSED, ENOENT, EACCES, EINTR);
      }
      if (c.type == T::kUdp) PICK(ENETUNREACH, EADDRNOTAVAIL);
      // A non-blocking TCP connect reports refusals and timeouts later,
      // through SO_ERROR; only local failures come at once.
      if (nb) PICK(ENETUNREACH, EADDRNOTAVAIL);
      PICK(ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, EINTR);
    case Op::kPoll:
    case Op::kSelect:
    case Op::kPselect:
    case Op::kEpollWait:
      if (nb) PICK(ENOMEM);  // a zero timeout never sleeps, so never EINTR
      PICK(EINTR, ENOMEM);
    case Op::kSplice:
    case Op::kSendfile:
      if (nb) PICK(EIO, ENOMEM, EAGAIN);
      PICK(EIO, ENOMEM, EINTR);
    default:
      break;
  }
  PICK(EIO);
}

#undef PICK

size_t short_length(size_t n, uintptr_t cap, uint64_t r) {
  if (n < 2) return n;
  if (cap > 0) return cap < n ? static_cast<size_t>(cap) : n;
  return 1 + static_cast<size_t>(r % (n - 1));
}

}  // namespace unblock::fault
