// The one table of UNBLOCK_* options.
//
// Read once from the environment by config::load() during bootstrap (before
// any thread exists). A value that does not parse or is out of range gets one
// clear message on stderr naming the variable, and the default is used:
// configuration can never crash the host. Everything else reads the
// resulting plain struct; it never changes after bootstrap.
#pragma once

#include <cstddef>

namespace unblock {

struct Config {
  bool disabled = false;            // UNBLOCK_DISABLE=1: every hook passes through
  int workers = 0;                  // UNBLOCK_WORKERS, default: online CPUs
  size_t stack_size = 0;            // UNBLOCK_STACK_SIZE, default: glibc's default thread stack
  size_t guard_size = 64 * 1024;    // UNBLOCK_GUARD_SIZE, below every fiber stack
  int log_level = 0;                // UNBLOCK_LOG: off|error|warn|info|debug or 0..4
  const char* log_file = nullptr;   // UNBLOCK_LOG_FILE: append log lines there instead of stderr
  long handoff_us = 1000;           // UNBLOCK_HANDOFF_US: a worker stuck this long hands off
  int max_threads = 256;            // UNBLOCK_MAX_THREADS: extra OS threads for hand-off, at most
  // UNBLOCK_FS_SWITCH: how a switch sets the FS base (runtime/tls.cpp).
  enum FsSwitch { kFsAuto = 0, kFsWrfsbase = 1, kFsArchPrctl = 2 };
  int fs_switch = kFsAuto;
  // UNBLOCK_ENGINE: what waits for the kernel (runtime/engine.cpp).
  enum EngineChoice { kEngineAuto = 0, kEngineUring = 1, kEngineEpoll = 2, kEngineOff = 3 };
  int engine = kEngineAuto;
  unsigned ring_entries = 1024;     // UNBLOCK_RING_ENTRIES: submission queue size per worker
  const char* stats = nullptr;      // UNBLOCK_STATS: "stderr" or a path; counters written at exit
  bool control = true;              // UNBLOCK_CONTROL: the unblock-ctl socket (runtime/control.h)
  const char* control_dir = nullptr;  // UNBLOCK_CONTROL_DIR: where it lives
  const char* trace = nullptr;      // UNBLOCK_TRACE: period of the schedtrace log line ("1s", "500ms")
  long stall_ms = 0;                // UNBLOCK_STALL_MS: report threads keeping a worker longer (0: off)
  const char* dump_signal = nullptr;  // UNBLOCK_DUMP_SIGNAL: a signal that dumps to the log (runtime/signals.cpp)
  // Fault injection (runtime/fault.h, docs/FAULTS.md).
  const char* faults = nullptr;     // UNBLOCK_FAULTS: fault commands applied at start-up, ';'-separated
  long fault_seed = -1;             // UNBLOCK_FAULT_SEED: seed of every fault decision (-1: FIU_PRNG_SEED or the clock)
  const char* fault_log = nullptr;  // UNBLOCK_FAULT_LOG: append every injected fault to this file
  const char* fault_fifo = nullptr; // UNBLOCK_FAULT_FIFO: serve fiu-ctrl ("1": the default prefix, or a base path)
};

namespace config {

// Parses the environment. Bootstrap only (single-threaded); may call getenv.
// Cheap: every process that inherits LD_PRELOAD runs it.
void load();

// Fills the defaults that cost a system call or a file read (CPU count,
// glibc's default stack size). Called when the runtime starts.
void resolve_defaults();

// The parsed configuration. Valid after load(); read-only afterwards.
const Config& get();

// Parses "123", "64k", "8M", "1g" (binary units). Returns false if malformed.
bool parse_size(const char* text, size_t* out);

// Describes every option for the launcher's --help. Returns a static string.
const char* describe();

}  // namespace config
}  // namespace unblock
