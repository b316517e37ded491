// Fault injection: the points, the rules that enable them, and the decision.
//
// Responsible for: the table of fault points (libfiu's POSIX names, and
// unblock's own kinds under unblock/...), the rules people enable (libfiu's
// remote-control syntax plus unblock's scoping), the per-operation armed
// masks the hooks test, the seeded decision, the realistic errno choice, the
// fault log, and the control paths (environment, fiu-ctrl FIFO, libfiu's
// control calls). fault/inject.cpp carries faults out; fault/wrappers.def
// lists the entry points that have fault points.
// Must not: call a hooked function for its own I/O (the FIFO server, the
// fault log and the stale-FIFO sweep use raw system calls), use the host's
// random(), or cost a process that enabled nothing more than a few getenv().
//
// libfiu is the table of record: every rule is registered with the shared
// libfiu (dlopen'ed only when fault injection is configured; see FAULTS.md
// for the measured reason), and a hook checks a point with libfiu's
// fiu_fail()/fiu_failinfo(). Rules that unblock creates are libfiu
// "external" rules whose callback is decide() below, so probability, scope
// and every-Nth are decided here, from (seed, point, per-point counter).
// libfiu keeps exact-before-wildcard matching, failnum/failinfo and onetime.
//
// Point names (docs/FAULTS.md has the full table):
//   posix/io/rw/read ...           errno faults (libfiu's names, exactly)
//   posix/io/rw/read/reduce ...    short transfers (libfiu's names)
//   unblock/<kind>/<posix name>    delay, hang, short, reset, eof_after,
//                                  corrupt, eintr
//   unblock/connect/refused, unblock/connect/timeout
// A posix/* wildcard therefore never enables a hang or a delay.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace unblock {
class Parker;
}

namespace unblock::fault {

// One entry per operation family with its own libfiu name (fault/ops.def).
enum class Op : uint8_t {
#define FAULT_OP(op, ...) op,
#include "fault/ops.def"
#undef FAULT_OP
  kCount
};
constexpr int kOps = static_cast<int>(Op::kCount);

// What a point injects. kErrno is the libfiu point itself.
enum class Kind : uint8_t {
  kErrno, kReduce, kDelay, kHang, kShort, kReset, kEofAfter, kCorrupt, kEintr, kRefused, kTimeout,
  kCount
};
constexpr int kKinds = static_cast<int>(Kind::kCount);
constexpr int kPoints = kOps * kKinds;

constexpr uint16_t bit(Kind k) { return static_cast<uint16_t>(1u << static_cast<int>(k)); }
// Not a point: close() must reset eof_after byte counts (set while any
// eof_after point is armed).
constexpr uint16_t kTrackClose = 1u << 15;

enum class Dir : uint8_t { kNone, kIn, kOut };

// ---- the hook fast path -----------------------------------------------------

// Per operation: which kinds may fire (bits of Kind, plus kTrackClose).
// Zero unless a rule matches one of the op's points. Written by control
// paths; read relaxed: a stale read only costs a libfiu lookup or misses a
// rule that is being enabled at that very moment.
extern std::atomic<uint16_t> g_mask[kOps];

// The whole cost of a disabled point: one relaxed load. Any context.
inline uint16_t armed(Op op) { return g_mask[static_cast<int>(op)].load(std::memory_order_relaxed); }

// ---- the point table (pure; any context) -----------------------------------

const char* op_function(Op op);        // "recv"
const char* posix_name(Op op);         // "posix/io/net/recv"
const char* kind_name(Kind k);         // "delay"
Dir direction(Op op);
bool applies(Op op, Kind k);
// The errnos an injected failure of op may carry (fault/ops.def); n gets
// their count.
const int* errnos(Op op, int* n);
// The point's name, or nullptr when the kind does not apply to the op.
const char* point_name(Op op, Kind k);
inline int point_id(Op op, Kind k) { return static_cast<int>(op) * kKinds + static_cast<int>(k); }

// libfiu's wildcard rule: a pattern ending in '*' matches every name with
// the prefix before it; otherwise the names must be equal.
bool pattern_matches(const char* pattern, const char* name);

// ---- rules ------------------------------------------------------------------

// unblock's extensions to a rule; -1 / 0 mean "any".
struct Scope {
  int fd = -1;
  int port = -1;   // peer port (the address a client connected to)
  int lport = -1;  // local port (a server's listening port)
  Dir dir = Dir::kNone;
  uint32_t every = 0;  // fire on every Nth in-scope call
  uint32_t after = 0;  // not before call after+1
  uint32_t count = 0;  // at most this many times
  bool limits_call() const { return fd >= 0 || port >= 0 || lport >= 0 || dir != Dir::kNone; }
};

// A parsed control command (libfiu's remote-control syntax, see parse()).
struct Command {
  enum Verb : uint8_t { kEnable, kEnableRandom, kDisable, kEnableStackByName };
  static constexpr int kNameMax = 128;
  Verb verb = kEnable;
  char name[kNameMax] = {};
  int failnum = 1;
  uintptr_t failinfo = 0;
  unsigned flags = 0;        // FIU_ONETIME
  double probability = -1;   // enable_random; < 0 means always, as libfiu documents
  char func_name[kNameMax] = {};
  int pos_in_stack = -1;
  Scope scope;
};

// Parses "enable name=posix/io/net/recv,failinfo=104,fd=5" and friends.
// Verbs: enable, enable_random, disable, enable_stack_by_name. Parameters:
// libfiu's name, failnum, failinfo, probability, onetime, func_name,
// pos_in_stack; unblock's errno=NAME|N, us=, ms=, bytes= (set failinfo),
// fd=, port=, lport=, dir=in|out, every=, after=, count=. False with a
// static message on error. Pure.
bool parse(const char* line, Command* out, const char** error);

// One enabled pattern. Slots are never freed while libfiu may still call
// decide() for them (see fault.cpp).
struct Rule {
  enum State : int { kFree, kFilling, kLive };
  std::atomic<int> state{kFree};
  uint64_t gen = 0;
  char pattern[Command::kNameMax] = {};
  bool ours = true;         // decided by decide(); false: libfiu or the program decides
  bool random = false;
  uint64_t threshold = 0;   // random: fire when the draw is below it
  Scope scope;
  std::atomic<uint64_t> counter{0};  // checks without a call context
  std::atomic<uint32_t> fired{0};
};

// What the hook knows about the call being checked. Lives on the hook's stack.
struct Call {
  Op op = Op::kRead;
  Kind kind = Kind::kErrno;
  int fd = -1;
  Dir dir = Dir::kNone;
  int peer_port = -2;  // -2: not known yet (resolve_ports fills), -1: none
  int local_port = -2;
  void (*resolve_ports)(Call*) = nullptr;
  uint64_t k = 0;  // out: the point's in-scope call number when it fired
};

// The rule table. The process has one (rules()); tests make their own.
class RuleTable {
 public:
  static constexpr int kMaxRules = 64;
  // Claims and fills a slot (state kLive). nullptr if full or bad pattern.
  Rule* add(const Command& c, bool ours);
  // Frees every slot with this pattern except `keep`.
  void drop(const char* pattern, const Rule* keep = nullptr);
  // The newest live rule with exactly this pattern (libfiu's callback gets
  // the pattern, not the point).
  Rule* find(const char* pattern);
  // True if a live rule's pattern matches the point name.
  bool any_matches(const char* name) const;
  // Recomputes the armed masks from the live rules.
  void compute_masks(std::atomic<uint16_t>* masks) const;
  int live() const;
  // Slot i (0 <= i < kMaxRules), for listing: check state first.
  const Rule& at(int i) const { return slots_[i]; }

 private:
  Rule slots_[kMaxRules];
  uint64_t next_gen_ = 1;
};

// The per-point in-scope call counters (reset when a rule matching the point
// is enabled: "the k-th call since it was enabled").
extern std::atomic<uint64_t> g_point_calls[kPoints];

// Decides whether rule r fires for call c (nullptr: a check that did not
// come from a hook - the program's own fiu_fail or fiu_posix_preload).
// Counts the call, applies scope, after, every, probability and count.
// Any thread; lock-free; does not allocate; may call resolve_ports.
bool decide(Rule& r, Call* c, uint64_t seed);

// ---- deterministic choices ---------------------------------------------------

// 64 random bits from (seed, point, k, salt): splitmix64 over a mix of them.
uint64_t draw(uint64_t seed, int point, uint64_t k, uint64_t salt);
uint64_t draw_for_pattern(uint64_t seed, const char* pattern, uint64_t k);

// How a fd looks to the errno choice.
struct FdClass {
  enum Type : uint8_t {
    kUnknown, kRegular, kDirectory, kPipe, kChar,
    kTcp, kUdp, kUnixStream, kUnixDgram, kOtherSocket,  // sockets last (is_socket)
  };
  Type type = kUnknown;
  bool nonblock = false;  // O_NONBLOCK, MSG_DONTWAIT, or a socket timeout for this direction
  bool is_socket() const { return type >= kTcp; }
  bool is_stream() const { return type == kTcp || type == kUnixStream; }
};

// An errno the real call could return for this op and fd, chosen by r.
// EAGAIN only when nonblock; EINTR only when the call could sleep; nothing a
// socket cannot return for a socket; never EPIPE (it comes with SIGPIPE; ask
// for it with errno=EPIPE). open_flags: open's flags (ENOSPC/EROFS need
// O_CREAT/writing). Pure.
int pick_errno(Op op, const FdClass& c, int open_flags, uint64_t r);

// Short transfer length for a transfer of n bytes: `cap` bytes if 0 < cap <
// n, else a length in [1, n-1] from r. n < 2 is returned unchanged (nothing
// can be cut without turning the call into EOF). Pure.
size_t short_length(size_t n, uintptr_t cap, uint64_t r);

// ---- control (any thread or fiber; not from a signal handler) -----------------
// Rule changes take a spin lock that may be held across libfiu's write lock,
// and allocate (libfiu copies names). They are rare; hooks never take it.

// Start-up from the environment: UNBLOCK_FAULTS, FIU_ENABLE, UNBLOCK_FAULT_FIFO,
// FIU_CTRL_FIFO, UNBLOCK_FAULT_SEED/FIU_PRNG_SEED, UNBLOCK_FAULT_LOG. Called by
// the preload constructor after config::load(); returns at once (two getenv)
// when nothing is configured.
void start_from_env();

// The shared libfiu's own functions, resolved from its handle (never the
// interposers in fault/fiu_api.cpp). Valid once ready().
struct Libfiu {
  using Callback = int (*)(const char* name, int* failnum, void** failinfo, unsigned* flags);
  int (*init)(unsigned flags) = nullptr;
  int (*fail)(const char* name) = nullptr;
  void* (*failinfo)() = nullptr;
  int (*enable_external)(const char* name, int failnum, void* failinfo, unsigned flags, Callback cb) = nullptr;
  int (*enable_stack)(const char* name, int failnum, void* failinfo, unsigned flags, void* func, int pos) = nullptr;
  int (*enable_stack_by_name)(const char* name, int failnum, void* failinfo, unsigned flags, const char* func,
                              int pos) = nullptr;
  int (*disable)(const char* name) = nullptr;
};
const Libfiu& libfiu();

// True once libfiu is loaded and initialised (faults can be enabled).
bool ready();
// Loads libfiu if needed. False (and one message) if it cannot be loaded.
bool ensure_ready();

// Applies one command line. 0, or -1 with *error set (static string).
int apply(const char* line, const char** error);
// Applies a parsed command. 0 or -1.
int apply(const Command& c);
// Registers a rule decided by someone else (fiu_enable_external/_stack
// called by the program): libfiu decides; the masks learn the pattern.
// register_fn performs the real libfiu call and returns its result.
int enable_foreign(const char* name, int (*register_fn)(void*), void* arg);
int disable(const char* name);
// Calls fn for every live rule of the process's table (unblock-ctl faults
// list), under the control lock: fn must not block or call back in.
void for_each_rule(void (*fn)(const Rule& r, void* arg), void* arg);

// Serves fiu-ctrl on <basename>-<pid>.in/.out from an OS thread of its own.
// Idempotent per basename. 0 or -1.
int serve_fifo(const char* basename);

// Checks one point for call c through libfiu. True if it fires; *info is
// libfiu's failinfo for it. Fills c->k. Any thread or fiber, not a signal
// handler; only after ready(). May suspend (libfiu's locks are pthread
// rwlocks, fiber-aware under unblock) and may allocate (libfiu caches
// wildcard lookups with strdup): armed points only, never a disabled one.
bool check(Call& c, uintptr_t* info);

uint64_t seed();

// Appends one line to UNBLOCK_FAULT_LOG (and logs it at debug level):
// "<seconds> pid=<pid> thread=<id> call=<function> fd=<fd> point=<name> k=<k> <what>".
// Any context; no allocation, no lock, errno untouched: log::format into a
// stack buffer and one raw write(2) with O_APPEND. No-op without a log.
void record(const Call& c, const char* what_fmt, ...) __attribute__((format(printf, 2, 3)));

// eof_after: bytes read so far through fired eof_after points, per fd
// (below 65536). Any context, lock-free; add_eof_bytes may mmap a chunk of
// counters the first time a descriptor range is used.
uint64_t eof_bytes(int fd);
void add_eof_bytes(int fd, uint64_t n);
void forget_fd(int fd);

// Hung calls wait here until a rule changes (they re-check their point):
// every rule change unparks every waiter. Any thread; a spin lock, never
// held across a park.
struct HangWaiter {
  Parker* parker = nullptr;
  HangWaiter* next = nullptr;
  HangWaiter* prev = nullptr;
};
void add_hang_waiter(HangWaiter* w);
void remove_hang_waiter(HangWaiter* w);

}  // namespace unblock::fault
