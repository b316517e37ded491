// sendfile and splice, where a descriptor would block.
//
// splice() runs as one engine operation; sendfile() to a blocking socket or
// pipe becomes two splices through a pipe of the fiber's own, so neither
// step holds the carrier (runtime/api.cpp). The offset argument is honoured
// exactly as sendfile does; SO_SNDTIMEO and signals cut it short with the
// partial count, as Linux does.
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "hooks/fault.h"
#include "hooks/hook.h"

using namespace unblock;
using hooks::ret;

UNBLOCK_FAULTABLE ssize_t splice(int in, off64_t* off_in, int out, off64_t* off_out, size_t len, unsigned flags) {
  return ret(rt::splice(in, off_in, out, off_out, len, flags));
}

UNBLOCK_FAULTABLE ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) {
  return ret(rt::sendfile(out, in, offset, count));
}

UNBLOCK_FAULTABLE ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  return sendfile64(out, in, reinterpret_cast<off64_t*>(offset), count);
}
