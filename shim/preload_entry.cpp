// The preload entry: what runs when libunblock.so is loaded and unloaded.
//
// Loading must cost next to nothing, because every process started under
// LD_PRELOAD pays it (a `make -j` starts hundreds): read the UNBLOCK_*
// configuration and return. No thread, no ring, no symbol lookups happen
// until the program creates its first thread (sched::ensure_started).
#include "fault/fault.h"
#include "runtime/scheduler.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"

namespace {

__attribute__((constructor(101))) void unblock_load() {
  unblock::config::load();
  unblock::tls::init_identity();
  // Two getenv() unless faults are configured; with the fault layer compiled
  // out (fault/off.cpp), one message if they are.
  unblock::fault::start_from_env();
}

__attribute__((destructor)) void unblock_unload() { unblock::sched::write_stats(); }

}  // namespace
