#include "runtime/context.h"

#include <boost/context/detail/fcontext.hpp>

namespace unblock::ctx {

namespace bc = boost::context::detail;
static_assert(sizeof(bc::fcontext_t) == sizeof(Handle));

Handle make(void* stack_top, size_t size, Entry entry) {
  // Boost's entry signature takes its own transfer_t, layout-identical to ours.
  return bc::make_fcontext(stack_top, size,
                           reinterpret_cast<void (*)(bc::transfer_t)>(reinterpret_cast<void*>(entry)));
}

Transfer jump(Handle to, void* data) {
  bc::transfer_t t = bc::jump_fcontext(static_cast<bc::fcontext_t>(to), data);
  return Transfer{t.fctx, t.data};
}

}  // namespace unblock::ctx
