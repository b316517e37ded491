// The control channel: a Unix socket per process that `unblock-ctl` talks
// to (stats, dump), in a directory only the process's owner can reach.
//
// Cost until used: one socket, bind and listen at runtime start, and one
// poll operation parked in worker 0's ring (not counted as work: the
// monitor and hand-offs ignore it). The first connection completes that
// poll; the completion asks the monitor thread to start the control thread,
// an OS thread of the library with every program signal blocked that then
// accepts and serves connections with raw system calls. It never touches a
// fiber or a hook.
//
// Where: $UNBLOCK_CONTROL_DIR, else $XDG_RUNTIME_DIR/unblock, else
// /run/unblock for root, else /run/user/EUID/unblock; the directory must be
// owned by the effective uid with no group or other access (it is created
// 0700), else there is no channel. The socket is PID.sock, mode 0600, and
// every peer's credentials are checked (SO_PEERCRED: same uid or root).
// It is close-on-exec, closed in a forked child, unlinked at exit, and a
// file left by an earlier process with the same pid is replaced.
#pragma once

namespace unblock {
class Engine;
}

namespace unblock::control {

// Creates and listens on the socket. Runtime start, before any carrier runs.
void setup();

// Arms the poll on the listening socket in `e` (worker 0's ring). The
// carrier driving worker 0, in its scheduler, once.
void arm(Engine& e);

// Starts the control thread if a connection is waiting for it. Monitor
// thread only, every tick (period_us): one relaxed load when nothing is
// asked. While worker 0 is stuck in the program's code (worker0_stuck: a
// spin, a system call) its ring's poll cannot complete, so the monitor polls
// the socket itself, at most every 100 ms.
void on_monitor_tick(bool worker0_stuck, long period_us);

// Starts the control thread at once when UNBLOCK_TRACE asks for a trace
// line every period (it writes them). Runtime start, after the monitor.
void start_if_tracing();

// Writes a text dump to the log, line by line (UNBLOCK_DUMP_SIGNAL). The
// signal thread; not a signal handler.
void dump_to_log();

// Forked child: closes the socket without unlinking the parent's.
void forget_after_fork();

}  // namespace unblock::control
