// echo_server: a thread-per-connection TCP echo server written the way legacy
// servers are: a blocking accept loop in main, one detached pthread with the
// default stack size per connection doing blocking read() and write(), a
// mutex around the counters, and a dedicated thread that takes SIGTERM,
// SIGINT and SIGHUP with sigwaitinfo().
//
// It knows nothing of unblock and must behave identically run plain or under
// the preload: tests and benchmarks parse its stdout.
//
// stdout (line-buffered):
//   listening on ADDR:PORT        once the listener is up (IPv6: [ADDR]:PORT)
//   connections N bytes M         on SIGTERM/SIGINT, or after -n closed
//                                 connections; then exit status 0
// SIGHUP writes the same counters to stderr and keeps running.
// Errors go to stderr; bad usage exits 2, a failed start-up exits 1.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum { kBufSize = 16384 };

static const char* prog = "echo_server";

// Counters, all under stats_mu. `exiting` is set by the one thread that
// prints the summary and calls exit(); it keeps the mutex while exiting so no
// other thread prints or exits concurrently.
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long n_connections;  // connections handed to a thread
static unsigned long long n_closed;       // connections finished and closed
static unsigned long long n_bytes;        // bytes echoed back to clients
static unsigned long long max_closed;     // -n; 0 = run until signalled

static void usage(FILE* out) {
  fprintf(out,
          "usage: %s [-a ADDR] [-p PORT] [-b BACKLOG] [-n MAXCONN]\n"
          "  -a ADDR     address to listen on (default 127.0.0.1)\n"
          "  -p PORT     port (default 7000; 0 = ephemeral)\n"
          "  -b BACKLOG  listen backlog (default 4096)\n"
          "  -n MAXCONN  exit after MAXCONN connections have closed "
          "(default 0 = never)\n",
          prog);
}

static int parse_ulong(const char* s, unsigned long long max,
                       unsigned long long* out) {
  char* end;
  if (*s == '\0' || *s == '-' || *s == '+') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return -1;
  *out = v;
  return 0;
}

// Prints the summary and ends the process. Called with stats_mu held, which
// is never released: exit() runs while every other thread that touches the
// counters waits on the mutex.
static void finish_locked(void) {
  printf("connections %llu bytes %llu\n", n_connections, n_bytes);
  fflush(stdout);
  exit(0);
}

static void* signal_thread(void* arg) {
  const sigset_t* set = arg;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(set, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: sigwaitinfo: %s\n", prog, strerror(errno));
      exit(1);
    }
    pthread_mutex_lock(&stats_mu);
    if (sig == SIGHUP) {
      fprintf(stderr, "%s: connections %llu bytes %llu\n", prog,
              n_connections, n_bytes);
      pthread_mutex_unlock(&stats_mu);
      continue;
    }
    finish_locked();
  }
  return NULL;
}

// Writes all of buf; returns 0, or -1 with errno set.
static int write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

static void* connection_thread(void* arg) {
  int fd = (int)(intptr_t)arg;
  char buf[kBufSize];

  pthread_mutex_lock(&stats_mu);
  n_connections++;
  pthread_mutex_unlock(&stats_mu);

  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      // ECONNRESET, ETIMEDOUT and the like: the peer is gone.
      break;
    }
    if (write_all(fd, buf, (size_t)r) < 0) break;  // EPIPE, ECONNRESET
    pthread_mutex_lock(&stats_mu);
    n_bytes += (unsigned long long)r;
    pthread_mutex_unlock(&stats_mu);
  }
  close(fd);

  pthread_mutex_lock(&stats_mu);
  n_closed++;
  if (max_closed != 0 && n_closed >= max_closed) finish_locked();
  pthread_mutex_unlock(&stats_mu);
  return NULL;
}

static void format_addr(const struct sockaddr* sa, socklen_t len, char* out,
                        size_t out_len) {
  char host[INET6_ADDRSTRLEN];
  char port[16];
  int rc = getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                       NI_NUMERICHOST | NI_NUMERICSERV);
  if (rc != 0) {
    snprintf(out, out_len, "?");
    return;
  }
  if (sa->sa_family == AF_INET6)
    snprintf(out, out_len, "[%s]:%s", host, port);
  else
    snprintf(out, out_len, "%s:%s", host, port);
}

static int open_listener(const char* addr, const char* port, int backlog) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res;
  int rc = getaddrinfo(addr, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, addr, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  int saved = 0;
  for (struct addrinfo* ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
      break;
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "%s: listen on %s port %s: %s\n", prog, addr, port,
            strerror(saved));
    return -1;
  }
  return fd;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

int main(int argc, char** argv) {
  const char* addr = "127.0.0.1";
  unsigned long long port = 7000;
  unsigned long long backlog = 4096;

  setvbuf(stdout, NULL, _IOLBF, 0);
  int opt;
  while ((opt = getopt(argc, argv, "a:p:b:n:h")) != -1) {
    switch (opt) {
      case 'a':
        addr = optarg;
        break;
      case 'p':
        if (parse_ulong(optarg, 65535, &port) < 0) {
          fprintf(stderr, "%s: bad port '%s'\n", prog, optarg);
          return 2;
        }
        break;
      case 'b':
        if (parse_ulong(optarg, INT_MAX, &backlog) < 0 || backlog == 0) {
          fprintf(stderr, "%s: bad backlog '%s'\n", prog, optarg);
          return 2;
        }
        break;
      case 'n':
        if (parse_ulong(optarg, ULLONG_MAX, &max_closed) < 0) {
          fprintf(stderr, "%s: bad connection count '%s'\n", prog, optarg);
          return 2;
        }
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }

  // Before any thread exists, so every thread inherits the mask and only the
  // signal thread ever receives these signals.
  static sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  int rc = pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  if (rc != 0) {
    fprintf(stderr, "%s: pthread_sigmask: %s\n", prog, strerror(rc));
    return 1;
  }
  // A client that goes away mid-echo turns write() into EPIPE, not a signal.
  signal(SIGPIPE, SIG_IGN);

  char port_str[16];
  snprintf(port_str, sizeof port_str, "%llu", port);
  int lfd = open_listener(addr, port_str, (int)backlog);
  if (lfd < 0) return 1;

  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  if (getsockname(lfd, (struct sockaddr*)&bound, &bound_len) < 0) {
    fprintf(stderr, "%s: getsockname: %s\n", prog, strerror(errno));
    return 1;
  }
  char where[INET6_ADDRSTRLEN + 24];
  format_addr((struct sockaddr*)&bound, bound_len, where, sizeof where);

  pthread_t sig_tid;
  rc = pthread_create(&sig_tid, NULL, signal_thread, &sigs);
  if (rc != 0) {
    fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(rc));
    return 1;
  }
  printf("listening on %s\n", where);
  fflush(stdout);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  for (;;) {
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // Out of descriptors or memory: let connections drain, then retry.
          fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
          pause_ms(100);
          continue;
        default:
          fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
          return 1;
      }
    }
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    pthread_t tid;
    rc = pthread_create(&tid, &attr, connection_thread, (void*)(intptr_t)cfd);
    if (rc != 0) {
      fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(rc));
      close(cfd);
      pause_ms(10);
    }
  }
}
