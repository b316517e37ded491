// The runtime's view of fault injection: the control socket (control.cpp:
// `unblock-ctl faults list|add|remove`) and the stats (inspect.cpp) call
// fault::apply, fault::disable and fault::for_each_rule.
//
// Fault injection is its own layer above the hooks (fault/, DESIGN.md
// section 11); this header is the runtime's one edge up to it, resolved at
// the final link (the fault archive is linked whole). With
// -DUNBLOCK_FAULTS=OFF fault/off.cpp defines these and answers that fault
// injection is compiled out.
#pragma once

#include "fault/fault.h"
