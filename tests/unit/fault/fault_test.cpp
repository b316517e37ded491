// The fault decision logic (runtime/fault.h), without libfiu and without the
// preload: point names, command parsing, wildcard matching, armed masks, the
// seeded decision and its scoping, the errno choice, short lengths.
#include "fault/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace unblock::fault {
namespace {

Command parsed(const char* line) {
  Command c;
  const char* error = nullptr;
  EXPECT_TRUE(parse(line, &c, &error)) << line << ": " << (error ? error : "");
  return c;
}

// A rule as the process table would hold it, for decide().
struct TestRule {
  RuleTable table;
  Rule* rule;
  explicit TestRule(const char* line) : rule(table.add(parsed(line), true)) {}
};

void reset_counters() {
  for (auto& c : g_point_calls) c.store(0);
}

Call call_for(Op op, Kind kind, int fd = 3) {
  Call c;
  c.op = op;
  c.kind = kind;
  c.fd = fd;
  c.dir = direction(op);
  c.peer_port = c.local_port = -1;
  return c;
}

std::vector<uint64_t> firing_calls(Rule& r, Op op, Kind kind, int calls, uint64_t seed, int fd = 3) {
  reset_counters();
  std::vector<uint64_t> fired;
  for (int i = 0; i < calls; ++i) {
    Call c = call_for(op, kind, fd);
    if (decide(r, &c, seed)) fired.push_back(c.k);
  }
  return fired;
}

TEST(FaultPoints, PosixNamesAreLibfiusOwn) {
  EXPECT_STREQ(point_name(Op::kRead, Kind::kErrno), "posix/io/rw/read");
  EXPECT_STREQ(point_name(Op::kRead, Kind::kReduce), "posix/io/rw/read/reduce");
  EXPECT_STREQ(point_name(Op::kPread, Kind::kErrno), "posix/io/rw/pread");
  EXPECT_STREQ(point_name(Op::kPwritev, Kind::kReduce), "posix/io/rw/pwritev/reduce");
  EXPECT_STREQ(point_name(Op::kOpen, Kind::kErrno), "posix/io/oc/open");
  EXPECT_STREQ(point_name(Op::kClose, Kind::kErrno), "posix/io/oc/close");
  EXPECT_STREQ(point_name(Op::kFsync, Kind::kErrno), "posix/io/sync/fsync");
  EXPECT_STREQ(point_name(Op::kFdatasync, Kind::kErrno), "posix/io/sync/fdatasync");
  EXPECT_STREQ(point_name(Op::kAccept, Kind::kErrno), "posix/io/net/accept");
  EXPECT_STREQ(point_name(Op::kConnect, Kind::kErrno), "posix/io/net/connect");
  EXPECT_STREQ(point_name(Op::kRecv, Kind::kErrno), "posix/io/net/recv");
  EXPECT_STREQ(point_name(Op::kRecvfrom, Kind::kErrno), "posix/io/net/recvfrom");
  EXPECT_STREQ(point_name(Op::kSendmsg, Kind::kErrno), "posix/io/net/sendmsg");
  EXPECT_STREQ(point_name(Op::kPoll, Kind::kErrno), "posix/io/net/poll");
  EXPECT_STREQ(point_name(Op::kPselect, Kind::kErrno), "posix/io/net/pselect");
  EXPECT_STREQ(point_name(Op::kSocket, Kind::kErrno), "posix/io/net/socket");
}

TEST(FaultPoints, UnblockKindsLiveUnderTheirOwnNames) {
  EXPECT_STREQ(point_name(Op::kRecv, Kind::kDelay), "unblock/delay/posix/io/net/recv");
  EXPECT_STREQ(point_name(Op::kRead, Kind::kHang), "unblock/hang/posix/io/rw/read");
  EXPECT_STREQ(point_name(Op::kWrite, Kind::kShort), "unblock/short/posix/io/rw/write");
  EXPECT_STREQ(point_name(Op::kSend, Kind::kReset), "unblock/reset/posix/io/net/send");
  EXPECT_STREQ(point_name(Op::kRecv, Kind::kEofAfter), "unblock/eof_after/posix/io/net/recv");
  EXPECT_STREQ(point_name(Op::kRecvmsg, Kind::kCorrupt), "unblock/corrupt/posix/io/net/recvmsg");
  EXPECT_STREQ(point_name(Op::kAccept, Kind::kEintr), "unblock/eintr/posix/io/net/accept");
  EXPECT_STREQ(point_name(Op::kConnect, Kind::kRefused), "unblock/connect/refused");
  EXPECT_STREQ(point_name(Op::kConnect, Kind::kTimeout), "unblock/connect/timeout");
}

TEST(FaultPoints, KindsOnlyWhereTheyCanHappen) {
  EXPECT_EQ(point_name(Op::kWrite, Kind::kCorrupt), nullptr);  // corruption is of received bytes
  EXPECT_EQ(point_name(Op::kSend, Kind::kEofAfter), nullptr);
  EXPECT_EQ(point_name(Op::kRead, Kind::kRefused), nullptr);
  EXPECT_EQ(point_name(Op::kRecv, Kind::kReduce), nullptr);  // libfiu has no recv/reduce
  EXPECT_EQ(point_name(Op::kPread, Kind::kReset), nullptr);  // positioned I/O is never on a socket
  for (int o = 0; o < kOps; ++o) {
    EXPECT_TRUE(applies(static_cast<Op>(o), Kind::kErrno)) << op_function(static_cast<Op>(o));
  }
}

TEST(FaultCommand, ParsesLibfiuRemoteControlSyntax) {
  Command c = parsed("enable_random name=posix/io/*,probability=0.25,failnum=2,failinfo=5,onetime");
  EXPECT_EQ(c.verb, Command::kEnableRandom);
  EXPECT_STREQ(c.name, "posix/io/*");
  EXPECT_DOUBLE_EQ(c.probability, 0.25);
  EXPECT_EQ(c.failnum, 2);
  EXPECT_EQ(c.failinfo, 5u);
  EXPECT_EQ(c.flags, 1u);
  EXPECT_EQ(parsed("disable name=posix/io/rw/read").verb, Command::kDisable);
  EXPECT_EQ(parsed("  enable\tname=x\n").verb, Command::kEnable);
}

TEST(FaultCommand, ParsesUnblockExtensions) {
  Command c = parsed("enable name=posix/io/net/recv,errno=ECONNRESET,fd=7,port=8080,lport=9,dir=in,every=3,after=2,count=4");
  EXPECT_EQ(c.failinfo, static_cast<uintptr_t>(ECONNRESET));
  EXPECT_EQ(c.scope.fd, 7);
  EXPECT_EQ(c.scope.port, 8080);
  EXPECT_EQ(c.scope.lport, 9);
  EXPECT_EQ(c.scope.dir, Dir::kIn);
  EXPECT_EQ(c.scope.every, 3u);
  EXPECT_EQ(c.scope.after, 2u);
  EXPECT_EQ(c.scope.count, 4u);
  EXPECT_EQ(parsed("enable name=unblock/delay/*,ms=250").failinfo, 250000u);
  EXPECT_EQ(parsed("enable name=unblock/delay/*,us=7").failinfo, 7u);
  EXPECT_EQ(parsed("enable name=unblock/short/*,bytes=1").failinfo, 1u);
  EXPECT_EQ(parsed("enable name=x,errno=5").failinfo, 5u);
}

TEST(FaultCommand, RejectsWhatLibfiuWouldNotUnderstand) {
  Command c;
  const char* error = nullptr;
  for (const char* bad : {"", "enable", "frobnicate name=x", "enable failnum=2", "enable name=x,colour=red",
                          "enable_random name=x", "enable_random name=x,probability=1.5", "enable name=x,errno=EWHAT",
                          "enable name=x,dir=sideways", "enable name=x,failnum=0", "enable name=x,fd=-3",
                          "enable_stack_by_name name=x"}) {
    EXPECT_FALSE(parse(bad, &c, &error)) << bad;
    EXPECT_NE(error, nullptr);
  }
}

TEST(FaultMatch, WildcardIsAPrefixAsInLibfiu) {
  EXPECT_TRUE(pattern_matches("posix/io/*", "posix/io/rw/read"));
  EXPECT_TRUE(pattern_matches("posix/io/rw/read", "posix/io/rw/read"));
  EXPECT_FALSE(pattern_matches("posix/io/rw/read", "posix/io/rw/read/reduce"));
  EXPECT_TRUE(pattern_matches("*", "unblock/hang/posix/io/rw/read"));
  EXPECT_FALSE(pattern_matches("posix/*", "unblock/hang/posix/io/rw/read"));
}

TEST(FaultMasks, APosixWildcardNeverArmsADelayOrHang) {
  RuleTable t;
  std::atomic<uint16_t> masks[kOps];
  ASSERT_NE(t.add(parsed("enable name=posix/*"), true), nullptr);
  t.compute_masks(masks);
  uint16_t read = masks[static_cast<int>(Op::kRead)].load();
  EXPECT_TRUE(read & bit(Kind::kErrno));
  EXPECT_TRUE(read & bit(Kind::kReduce));
  EXPECT_FALSE(read & (bit(Kind::kDelay) | bit(Kind::kHang) | bit(Kind::kShort) | bit(Kind::kCorrupt)));
}

TEST(FaultMasks, OnlyTheOpsARuleCanReachAreArmed) {
  RuleTable t;
  std::atomic<uint16_t> masks[kOps];
  t.add(parsed("enable name=posix/io/net/recv"), true);
  t.compute_masks(masks);
  for (int o = 0; o < kOps; ++o) {
    EXPECT_EQ(masks[o].load() != 0, o == static_cast<int>(Op::kRecv)) << op_function(static_cast<Op>(o));
  }
  t.drop("posix/io/net/recv");
  t.compute_masks(masks);
  for (auto& m : masks) EXPECT_EQ(m.load(), 0);
}

TEST(FaultMasks, EofAfterMakesCloseTrackDescriptors) {
  RuleTable t;
  std::atomic<uint16_t> masks[kOps];
  t.add(parsed("enable name=unblock/eof_after/posix/io/net/recv,bytes=10"), true);
  t.compute_masks(masks);
  EXPECT_EQ(masks[static_cast<int>(Op::kClose)].load(), kTrackClose);
}

TEST(FaultRules, ReplacingAPatternKeepsTheNewestRule) {
  RuleTable t;
  Rule* a = t.add(parsed("enable name=posix/io/rw/read"), true);
  Rule* b = t.add(parsed("enable name=posix/io/rw/read,every=2"), true);
  EXPECT_EQ(t.find("posix/io/rw/read"), b);
  t.drop("posix/io/rw/read", b);
  EXPECT_EQ(a->state.load(), Rule::kFree);
  EXPECT_EQ(t.live(), 1);
}

TEST(FaultDecide, SameSeedSameDecisions) {
  TestRule r("enable_random name=posix/io/net/recv,probability=0.3");
  auto first = firing_calls(*r.rule, Op::kRecv, Kind::kErrno, 1000, 42);
  auto again = firing_calls(*r.rule, Op::kRecv, Kind::kErrno, 1000, 42);
  auto other = firing_calls(*r.rule, Op::kRecv, Kind::kErrno, 1000, 43);
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

TEST(FaultDecide, RateFollowsTheProbability) {
  TestRule r("enable_random name=posix/io/net/recv,probability=0.25");
  size_t n = firing_calls(*r.rule, Op::kRecv, Kind::kErrno, 20000, 7).size();
  EXPECT_GT(n, 4600u);
  EXPECT_LT(n, 5400u);
  TestRule never("enable_random name=posix/io/net/recv,probability=0");
  EXPECT_TRUE(firing_calls(*never.rule, Op::kRecv, Kind::kErrno, 1000, 7).empty());
}

TEST(FaultDecide, PointsDrawIndependently) {
  // The same seed and call number at two points must not give the same answer
  // every time (each point has its own stream).
  TestRule r("enable_random name=posix/io/*,probability=0.5");
  auto recv = firing_calls(*r.rule, Op::kRecv, Kind::kErrno, 400, 1);
  auto read = firing_calls(*r.rule, Op::kRead, Kind::kErrno, 400, 1);
  EXPECT_NE(recv, read);
}

TEST(FaultDecide, EveryNthCall) {
  TestRule r("enable name=posix/io/rw/write,every=3");
  EXPECT_EQ(firing_calls(*r.rule, Op::kWrite, Kind::kErrno, 10, 1), (std::vector<uint64_t>{3, 6, 9}));
}

TEST(FaultDecide, AfterAndCount) {
  TestRule r("enable name=posix/io/rw/write,after=2,count=3");
  EXPECT_EQ(firing_calls(*r.rule, Op::kWrite, Kind::kErrno, 10, 1), (std::vector<uint64_t>{3, 4, 5}));
}

TEST(FaultDecide, ScopeByDescriptorPortAndDirection) {
  TestRule by_fd("enable name=posix/io/*,fd=5");
  EXPECT_TRUE(firing_calls(*by_fd.rule, Op::kRead, Kind::kErrno, 3, 1, 4).empty());
  EXPECT_EQ(firing_calls(*by_fd.rule, Op::kRead, Kind::kErrno, 3, 1, 5).size(), 3u);

  TestRule by_dir("enable name=posix/io/*,dir=out");
  EXPECT_TRUE(firing_calls(*by_dir.rule, Op::kRead, Kind::kErrno, 3, 1).empty());
  EXPECT_EQ(firing_calls(*by_dir.rule, Op::kWrite, Kind::kErrno, 3, 1).size(), 3u);

  TestRule by_port("enable name=posix/io/net/*,port=8080");
  Call c = call_for(Op::kRecv, Kind::kErrno);
  c.peer_port = 8080;
  EXPECT_TRUE(decide(*by_port.rule, &c, 1));
  c.peer_port = 9090;
  EXPECT_FALSE(decide(*by_port.rule, &c, 1));
  // Ports are learnt only when a rule needs them.
  Call lazy = call_for(Op::kRecv, Kind::kErrno);
  lazy.peer_port = lazy.local_port = -2;
  lazy.resolve_ports = [](Call* x) {
    x->peer_port = 8080;
    x->local_port = 40000;
  };
  EXPECT_TRUE(decide(*by_port.rule, &lazy, 1));
  EXPECT_EQ(lazy.local_port, 40000);
}

TEST(FaultDecide, ScopedRuleNeverFiresForChecksWithoutACall) {
  TestRule scoped("enable name=myapp/*,fd=3");
  EXPECT_FALSE(decide(*scoped.rule, nullptr, 1));
  TestRule plain("enable name=myapp/*");
  EXPECT_TRUE(decide(*plain.rule, nullptr, 1));
}

TEST(FaultErrno, NeverEagainOnABlockingDescriptor) {
  for (int t = FdClass::kUnknown; t <= FdClass::kOtherSocket; ++t) {
    FdClass c;
    c.type = static_cast<FdClass::Type>(t);
    c.nonblock = false;
    for (int o = 0; o < kOps; ++o) {
      for (uint64_t r = 0; r < 64; ++r) {
        EXPECT_NE(pick_errno(static_cast<Op>(o), c, 0, r), EAGAIN) << op_function(static_cast<Op>(o)) << " type " << t;
      }
    }
  }
}

TEST(FaultErrno, ASocketReadGetsOnlyWhatASocketCanSay) {
  std::set<int> seen;
  for (auto type : {FdClass::kTcp, FdClass::kUnixStream}) {
    for (bool nb : {false, true}) {
      FdClass c;
      c.type = type;
      c.nonblock = nb;
      for (uint64_t r = 0; r < 200; ++r) {
        for (Op op : {Op::kRead, Op::kRecv, Op::kRecvmsg, Op::kReadv}) seen.insert(pick_errno(op, c, 0, r));
      }
    }
  }
  for (int e : seen) {
    EXPECT_TRUE(e == ECONNRESET || e == ETIMEDOUT || e == EINTR || e == EAGAIN) << strerrorname_np(e);
  }
  EXPECT_TRUE(seen.count(ECONNRESET));
}

TEST(FaultErrno, FilesGetDiskErrorsAndNeverEpipe) {
  FdClass file;
  file.type = FdClass::kRegular;
  std::set<int> writes, reads;
  for (uint64_t r = 0; r < 200; ++r) {
    writes.insert(pick_errno(Op::kWrite, file, 0, r));
    reads.insert(pick_errno(Op::kPread, file, 0, r));
  }
  EXPECT_EQ(writes, (std::set<int>{EIO, ENOSPC, EDQUOT, EFBIG}));
  EXPECT_EQ(reads, (std::set<int>{EIO}));
  FdClass pipe;
  pipe.type = FdClass::kPipe;
  for (uint64_t r = 0; r < 50; ++r) EXPECT_NE(pick_errno(Op::kWrite, pipe, 0, r), EPIPE);
}

TEST(FaultErrno, OpenErrorsFollowTheFlags) {
  FdClass none;
  std::set<int> ro, creat;
  for (uint64_t r = 0; r < 200; ++r) {
    ro.insert(pick_errno(Op::kOpen, none, O_RDONLY, r));
    creat.insert(pick_errno(Op::kOpen, none, O_WRONLY | O_CREAT, r));
  }
  EXPECT_FALSE(ro.count(ENOSPC));
  EXPECT_FALSE(ro.count(EROFS));
  EXPECT_TRUE(creat.count(ENOSPC));
  EXPECT_TRUE(creat.count(EROFS));
}

TEST(FaultErrno, ANonBlockingConnectFailsOnlyLocally) {
  FdClass tcp;
  tcp.type = FdClass::kTcp;
  tcp.nonblock = true;
  for (uint64_t r = 0; r < 50; ++r) {
    int e = pick_errno(Op::kConnect, tcp, 0, r);
    EXPECT_TRUE(e == ENETUNREACH || e == EADDRNOTAVAIL) << strerrorname_np(e);
  }
}

// fault/ops.def lists, per op, every errno an injected failure may carry;
// pick_errno chooses only among them, whatever the descriptor and flags.
TEST(FaultErrno, ChoicesStayWithinTheOpTable) {
  for (int o = 0; o < kOps; ++o) {
    auto op = static_cast<Op>(o);
    int n = 0;
    const int* allowed = errnos(op, &n);
    ASSERT_GT(n, 0) << op_function(op);
    std::set<int> table(allowed, allowed + n);
    for (int t = FdClass::kUnknown; t <= FdClass::kOtherSocket; ++t) {
      for (bool nb : {false, true}) {
        for (int flags : {O_RDONLY, O_WRONLY | O_CREAT, O_RDWR | O_TRUNC}) {
          FdClass c;
          c.type = static_cast<FdClass::Type>(t);
          c.nonblock = nb;
          for (uint64_t r = 0; r < 64; ++r) {
            int e = pick_errno(op, c, flags, draw(1, o, r, 0));
            EXPECT_TRUE(table.count(e)) << op_function(op) << " type " << t << " nonblock " << nb << ": " << strerror(e);
          }
        }
      }
    }
  }
}

TEST(FaultShort, NeverZeroNeverWholeAndNothingToCutBelowTwo) {
  EXPECT_EQ(short_length(0, 0, 12345), 0u);
  EXPECT_EQ(short_length(1, 0, 12345), 1u);
  EXPECT_EQ(short_length(1, 7, 12345), 1u);
  for (uint64_t r = 0; r < 1000; ++r) {
    size_t n = short_length(2 + r % 100, 0, r * 2654435761u);
    EXPECT_GE(n, 1u);
    EXPECT_LT(n, 2 + r % 100);
  }
  EXPECT_EQ(short_length(100, 10, 0), 10u);   // slicing
  EXPECT_EQ(short_length(100, 500, 0), 100u);  // nothing to cut
}

TEST(FaultDraw, DependsOnEveryInput) {
  int p = point_id(Op::kRecv, Kind::kErrno);
  uint64_t base = draw(1, p, 1, 0);
  EXPECT_EQ(base, draw(1, p, 1, 0));
  EXPECT_NE(base, draw(2, p, 1, 0));
  EXPECT_NE(base, draw(1, p + 1, 1, 0));
  EXPECT_NE(base, draw(1, p, 2, 0));
  EXPECT_NE(base, draw(1, p, 1, 1));
}

}  // namespace
}  // namespace unblock::fault
