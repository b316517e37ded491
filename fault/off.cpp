// The fault layer's answers when it is compiled out (-DUNBLOCK_FAULTS=OFF):
// the runtime's control socket (runtime/fault.h) and the preload entry still
// call these. Every way of asking for a fault says, once, that the library
// was built without them; nothing is injected and libfiu is never loaded.
#include <stdlib.h>
#include <string.h>

#include "fault/fault.h"
#include "shim/config.h"
#include "shim/log.h"

namespace unblock::fault {

namespace {
constexpr const char* kCompiledOut =
    "fault injection is compiled out of this libunblock (built with -DUNBLOCK_FAULTS=OFF)";
}

void start_from_env() {
  const Config& cfg = config::get();
  const char* asked = nullptr;
  if (cfg.faults) asked = "UNBLOCK_FAULTS";
  else if (cfg.fault_fifo && strcmp(cfg.fault_fifo, "0") != 0) asked = "UNBLOCK_FAULT_FIFO";
  else if (const char* e = getenv("FIU_ENABLE"); e && *e) asked = "FIU_ENABLE";
  else if (const char* e = getenv("FIU_CTRL_FIFO"); e && *e) asked = "FIU_CTRL_FIFO (fiu-ctrl)";
  if (asked) log::always("%s ignored: %s", asked, kCompiledOut);
}

int apply(const char*, const char** error) {
  if (error) *error = kCompiledOut;
  return -1;
}

int disable(const char*) { return -1; }

// `unblock-ctl faults list` (runtime/control.cpp) prints each rule's pattern
// and fired count: the one "rule" listed here is the answer that there are
// none to have. inspect's stats add its fired count, 0.
void for_each_rule(void (*fn)(const Rule&, void*), void* arg) {
  static Rule compiled_out;
  static const bool named =
      (strncpy(compiled_out.pattern, "(none: fault injection is compiled out, -DUNBLOCK_FAULTS=OFF)",
               sizeof compiled_out.pattern - 1),
       true);
  (void)named;
  fn(compiled_out, arg);
}

}  // namespace unblock::fault
