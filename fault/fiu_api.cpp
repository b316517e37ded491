// libfiu's control calls, interposed (the names are in fault/exports.map).
//
// libfiu's control functions are exported under their own names, so every
// rule change in the process - fiu-run's preload applying FIU_ENABLE and
// serving its FIFO, the program's own fiu_enable(), fiu-ctrl - goes through
// fault/'s table: the armed masks stay exact, enable_random becomes a
// decision seeded by UNBLOCK_FAULT_SEED, the FIFO is served by unblock's own
// thread (libfiu's would be a fiber reading through hooked calls), and
// unblock's scoping parameters work on every path.
#include <string.h>

#include "fault/fault.h"
#include "hooks/hook.h"

using namespace unblock;

// ---- libfiu's control calls -------------------------------------------------------

namespace {

bool to_command(const char* name, int failnum, void* failinfo, unsigned flags, fault::Command* c) {
  if (!name) return false;
  size_t n = strlen(name);
  if (n == 0 || n >= fault::Command::kNameMax) return false;
  memcpy(c->name, name, n + 1);
  c->failnum = failnum;
  c->failinfo = reinterpret_cast<uintptr_t>(failinfo);
  c->flags = flags;
  return true;
}

struct External {
  const char* name;
  int failnum;
  void* failinfo;
  unsigned flags;
  fault::Libfiu::Callback cb;
  void* func;
  const char* func_name;
  int pos;
};

int register_external(void* arg) {
  auto* e = static_cast<External*>(arg);
  return fault::libfiu().enable_external(e->name, e->failnum, e->failinfo, e->flags, e->cb);
}
int register_stack(void* arg) {
  auto* e = static_cast<External*>(arg);
  return fault::libfiu().enable_stack(e->name, e->failnum, e->failinfo, e->flags, e->func, e->pos);
}
int register_stack_by_name(void* arg) {
  auto* e = static_cast<External*>(arg);
  return fault::libfiu().enable_stack_by_name(e->name, e->failnum, e->failinfo, e->flags, e->func_name, e->pos);
}

}  // namespace

UNBLOCK_HOOK int fiu_enable(const char* name, int failnum, void* failinfo, unsigned flags) {
  fault::Command c;
  if (!to_command(name, failnum, failinfo, flags, &c)) return -1;
  c.verb = fault::Command::kEnable;
  return fault::apply(c);
}

UNBLOCK_HOOK int fiu_enable_random(const char* name, int failnum, void* failinfo, unsigned flags, float probability) {
  fault::Command c;
  if (!to_command(name, failnum, failinfo, flags, &c)) return -1;
  c.verb = fault::Command::kEnableRandom;
  c.probability = probability;
  return fault::apply(c);
}

UNBLOCK_HOOK int fiu_enable_external(const char* name, int failnum, void* failinfo, unsigned flags,
                                     fault::Libfiu::Callback cb) {
  External e{name, failnum, failinfo, flags, cb, nullptr, nullptr, -1};
  return fault::enable_foreign(name, register_external, &e);
}

UNBLOCK_HOOK int fiu_enable_stack(const char* name, int failnum, void* failinfo, unsigned flags, void* func,
                                  int pos) {
  External e{name, failnum, failinfo, flags, nullptr, func, nullptr, pos};
  return fault::enable_foreign(name, register_stack, &e);
}

UNBLOCK_HOOK int fiu_enable_stack_by_name(const char* name, int failnum, void* failinfo, unsigned flags,
                                          const char* func_name, int pos) {
  External e{name, failnum, failinfo, flags, nullptr, nullptr, func_name, pos};
  return fault::enable_foreign(name, register_stack_by_name, &e);
}

UNBLOCK_HOOK int fiu_disable(const char* name) { return fault::disable(name); }

UNBLOCK_HOOK int fiu_rc_fifo(const char* basename) { return fault::serve_fifo(basename); }

UNBLOCK_HOOK int fiu_rc_string(const char* cmd, char** const error) {
  const char* why = nullptr;
  int r = cmd ? fault::apply(cmd, &why) : -1;
  if (r != 0 && error) *error = const_cast<char*>(why ? why : "no command");
  return r;
}
