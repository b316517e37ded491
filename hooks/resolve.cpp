// Name resolution: getaddrinfo, getnameinfo, gethostbyname*, gethostbyaddr*.
//
// glibc's resolver talks to DNS with libc-internal socket calls the library
// cannot interpose, so a lookup would hold its carrier while other fibers
// wait. Before calling the real function, a fiber hands its worker to another
// carrier (sched::begin_blocking) if anything else is waiting; the lookup
// then blocks only this OS thread, and the fiber rejoins a worker afterwards.
// Calls that are told not to look anything up (a numeric host, and no
// service or a numeric one) only format or parse an address and keep the
// worker: servers log every peer with getnameinfo(NI_NUMERICHOST), and a
// hand-off per accepted connection (a carrier woken, the listener migrated
// to the back of the run queue) let a busy server accept ~1,000 connections
// a second.
#include <netdb.h>

#include "hooks/hook.h"

using namespace unblock;

namespace {
inline void before_lookup() { rt::begin_blocking(); }
}  // namespace

UNBLOCK_HOOK int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                             struct addrinfo** res) {
  bool numeric = hints && (hints->ai_flags & AI_NUMERICHOST) && (!service || (hints->ai_flags & AI_NUMERICSERV));
  if (!numeric) before_lookup();
  return real::getaddrinfo(node, service, hints, res);
}

UNBLOCK_HOOK int getnameinfo(const struct sockaddr* addr, socklen_t len, char* host, socklen_t hostlen, char* serv,
                             socklen_t servlen, int flags) {
  bool numeric = (flags & NI_NUMERICHOST) && (!serv || !servlen || (flags & NI_NUMERICSERV));
  if (!numeric) before_lookup();
  return real::getnameinfo(addr, len, host, hostlen, serv, servlen, flags);
}

UNBLOCK_HOOK struct hostent* gethostbyname(const char* name) {
  before_lookup();
  return real::gethostbyname(name);
}

UNBLOCK_HOOK struct hostent* gethostbyname2(const char* name, int af) {
  before_lookup();
  return real::gethostbyname2(name, af);
}

UNBLOCK_HOOK int gethostbyname_r(const char* name, struct hostent* ret, char* buf, size_t buflen,
                                 struct hostent** result, int* h_errnop) {
  before_lookup();
  return real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
}

UNBLOCK_HOOK int gethostbyname2_r(const char* name, int af, struct hostent* ret, char* buf, size_t buflen,
                                  struct hostent** result, int* h_errnop) {
  before_lookup();
  return real::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}

UNBLOCK_HOOK struct hostent* gethostbyaddr(const void* addr, socklen_t len, int type) {
  before_lookup();
  return real::gethostbyaddr(addr, len, type);
}

UNBLOCK_HOOK int gethostbyaddr_r(const void* addr, socklen_t len, int type, struct hostent* ret, char* buf,
                                 size_t buflen, struct hostent** result, int* h_errnop) {
  before_lookup();
  return real::gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, h_errnop);
}
