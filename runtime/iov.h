// iovec arithmetic shared by the blocking-call API (runtime/api.cpp) and the
// epoll engine: the bytes an array asks for, and what is left of it after a
// partial transfer.
#pragma once

#include <sys/uio.h>

#include <cstdint>

namespace unblock {

// The iovecs of `v` past the first `skip` bytes, at most `max` of them,
// written to `out`; returns how many.
inline int advance_iov(const iovec* v, int n, uint64_t skip, iovec* out, int max) {
  int k = 0;
  for (int i = 0; i < n && k < max; ++i) {
    if (skip >= v[i].iov_len) {
      skip -= v[i].iov_len;
      continue;
    }
    out[k].iov_base = static_cast<char*>(v[i].iov_base) + skip;
    out[k].iov_len = v[i].iov_len - skip;
    skip = 0;
    ++k;
  }
  return k;
}

inline uint64_t iov_total(const iovec* v, uint64_t n) {
  uint64_t t = 0;
  for (uint64_t i = 0; i < n; ++i) t += v[i].iov_len;
  return t;
}

}  // namespace unblock
