// http_server: a thread-per-connection HTTP/1.1 static-file server written
// the way legacy servers are: a blocking accept loop in main, one detached
// pthread with the default stack size per connection, file bodies copied with
// read() and write(), an access log shared by all threads through one FILE*
// guarded by a mutex, and a dedicated thread that takes SIGTERM, SIGINT and
// SIGHUP with sigwaitinfo().
//
// It knows nothing of unblock and must behave identically run plain or under
// the preload: tests and benchmarks parse its stdout.
//
// HTTP: GET and HEAD; other methods get 405. Persistent connections (HTTP/1.1
// unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"),
// pipelined requests, request bodies announced by Content-Length are read and
// discarded. 400 for malformed requests and for paths containing a ".."
// segment (checked after percent-decoding), 414 for over-long targets, 404 for
// anything that is not a readable regular file under ROOT (a directory serves
// its index.html). After a 400 or 414 the connection is closed; whenever the
// server closes first it shuts down its side and drains input for up to a
// second, so the peer's unread response is not destroyed by a RST. Symbolic
// links under ROOT are followed, as most legacy servers do.
//
// stdout (line-buffered):
//   listening on ADDR:PORT        once the listener is up (IPv6: [ADDR]:PORT)
//   requests N                    on SIGTERM/SIGINT; then exit status 0
//                                 (N counts every response sent, errors too)
// SIGHUP reopens the access log file (log rotation).
// Access log lines, common log format:
//   HOST - - [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "REQUEST LINE" STATUS BYTES
// Errors go to stderr; bad usage exits 2, a failed start-up exits 1.
//
// The protocol logic (head parsing, target to path, response heads, error
// responses, the access log line) is http_proto.c, shared with the reference
// epoll server bench/epoll_http.cpp; this file holds the threaded I/O model.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "http_proto.h"

enum {
  kInSize = 8192,       // request line plus headers must fit
  kOutSize = 16384,     // response headers and file data per write()
  kMaxPath = 4096       // ROOT plus decoded target
};

static const char* prog = "http_server";
static const char* root = ".";
static long idle_timeout_s;  // -t; 0 = wait for the client forever

// Access log. The FILE* is shared by every connection thread; each line is
// written and flushed under log_mu. SIGHUP swaps the FILE* under log_mu.
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE* log_fp;           // NULL: no access log
static const char* log_path;   // NULL or "-": nothing to reopen

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long n_requests;

struct Conn {
  int fd;
  unsigned long long discard;  // request body bytes still to skip
  size_t in_len;
  char peer[INET6_ADDRSTRLEN];
  char in[kInSize];
  char out[kOutSize];
};

static void usage(FILE* out) {
  fprintf(out,
          "usage: %s [-a ADDR] [-p PORT] [-r ROOT] [-l ACCESS_LOG] [-b BACKLOG]"
          " [-t SECS]\n"
          "  -a ADDR        address to listen on (default 127.0.0.1)\n"
          "  -p PORT        port (default 8080; 0 = ephemeral)\n"
          "  -r ROOT        document root (default .)\n"
          "  -l ACCESS_LOG  append an access log to this file ('-' = stdout;"
          " default none)\n"
          "  -b BACKLOG     listen backlog (default 4096)\n"
          "  -t SECS        close connections idle this long (default 0 ="
          " never)\n",
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
    if (sig == SIGHUP) {
      pthread_mutex_lock(&log_mu);
      if (log_fp != NULL && log_fp != stdout) {
        FILE* fp = fopen(log_path, "a");
        if (fp != NULL) {
          fclose(log_fp);
          log_fp = fp;
        } else {
          fprintf(stderr, "%s: reopen %s: %s\n", prog, log_path,
                  strerror(errno));
        }
      }
      pthread_mutex_unlock(&log_mu);
      continue;
    }
    // Both mutexes stay held through exit(): no log line or summary can be
    // half-written, and exit() flushes the log. Connection threads never hold
    // both, so taking log_mu then stats_mu cannot deadlock.
    pthread_mutex_lock(&log_mu);
    pthread_mutex_lock(&stats_mu);
    printf("requests %llu\n", n_requests);
    fflush(stdout);
    exit(0);
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

static void access_log(const struct Conn* c, const char* request, int status,
                       unsigned long long body_bytes) {
  pthread_mutex_lock(&stats_mu);
  n_requests++;
  pthread_mutex_unlock(&stats_mu);

  pthread_mutex_lock(&log_mu);
  if (log_fp != NULL) {
    char line[kHttpMaxLogLine];
    http_format_log_line(line, sizeof line, c->peer, request, status,
                         body_bytes);
    fputs(line, log_fp);
    fflush(log_fp);
  }
  pthread_mutex_unlock(&log_mu);
}

// Sends a small error response. Returns 0, or -1 if the connection failed.
static int send_error(struct Conn* c, const char* log_line, int status,
                      int head_only, int keep_alive, int minor) {
  unsigned long long log_bytes;
  size_t n = http_format_error(c->out, sizeof c->out, status, head_only,
                               keep_alive, minor, &log_bytes);
  int rc = write_all(c->fd, c->out, n);
  access_log(c, log_line, status, log_bytes);
  return rc;
}

// Answers a GET or HEAD for a file. Returns 0 to keep going with the
// connection, or -1 to close it.
static int serve_file(struct Conn* c, const struct HttpRequest* rq) {
  int head_only = rq->head_only;
  char path[kMaxPath];
  int status = http_target_to_path(root, rq->target, path, sizeof path);
  if (status != 0) {
    send_error(c, rq->log_line, status, head_only, 0, rq->minor);
    return -1;
  }

  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
      http_append_index(path, sizeof path) != 0) {
    send_error(c, rq->log_line, 414, head_only, 0, rq->minor);
    return -1;
  }
  // stat() before open(): opening a FIFO would block until it had a writer.
  int fd = -1;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
    fd = open(path, O_RDONLY | O_NOCTTY);
  if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    fd = -1;
  }
  if (fd < 0) {
    if (send_error(c, rq->log_line, 404, head_only, rq->keep_alive,
                   rq->minor) < 0)
      return -1;
    return rq->keep_alive ? 0 : -1;
  }

  unsigned long long size = (unsigned long long)st.st_size;
  size_t n = http_format_head(c->out, sizeof c->out, 200, http_content_type(path),
                              size, &st.st_mtime, rq->keep_alive, rq->minor, 0);
  unsigned long long left = head_only ? 0 : size;
  int rc = 0;
  // The first write carries the headers and the start of the body, so a
  // small file goes out in one segment.
  for (;;) {
    while (left > 0 && n < sizeof c->out) {
      size_t want = sizeof c->out - n;
      if (want > left) want = (size_t)left;
      ssize_t r = read(fd, c->out + n, want);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        // Shrunk or unreadable under us: Content-Length cannot be met.
        rc = -1;
        break;
      }
      n += (size_t)r;
      left -= (unsigned long long)r;
    }
    if (n > 0 && write_all(c->fd, c->out, n) < 0) {
      rc = -1;
      break;
    }
    n = 0;
    if (left == 0 || rc < 0) break;
  }
  close(fd);
  access_log(c, rq->log_line, 200, head_only ? 0 : size);
  if (rc < 0) return -1;
  return rq->keep_alive ? 0 : -1;
}

// Parses the request head in c->in[0, head_len) and answers it. Returns 0 to
// read the next request on this connection, or -1 to close it.
static int handle_request(struct Conn* c, size_t head_len) {
  struct HttpRequest rq;
  int status = http_parse_request(c->in, head_len, &rq);
  c->discard = rq.body_length;
  if (status != 0) {
    if (send_error(c, rq.log_line, status, 0, rq.keep_alive, rq.minor) < 0)
      return -1;
    return rq.keep_alive ? 0 : -1;
  }
  return serve_file(c, &rq);
}

// Closing a socket that still has unread input makes the kernel send a RST,
// which can destroy the response the peer has not read yet. So when the
// server ends the connection it first shuts down its side, then reads and
// drops whatever the peer still sends, for a bounded time and amount.
static void lingering_close(int fd) {
  char sink[4096];
  size_t total = 0;
  shutdown(fd, SHUT_WR);
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (total < 256 * 1024) {
    ssize_t r = read(fd, sink, sizeof sink);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    total += (size_t)r;
  }
  close(fd);
}

static void* connection_thread(void* arg) {
  struct Conn* c = arg;
  int server_closes = 0;
  for (;;) {
    size_t head_len = http_next_head(c->in, &c->in_len, &c->discard);
    if (head_len > 0) {
      int rc = handle_request(c, head_len);
      memmove(c->in, c->in + head_len, c->in_len - head_len);
      c->in_len -= head_len;
      if (rc < 0) {
        server_closes = 1;
        break;
      }
      continue;
    }
    if (c->in_len == sizeof c->in) {
      // A full buffer without a complete head: if it does not even hold the
      // request line, the target is too long.
      send_error(c, "-", http_overflow_status(c->in, c->in_len), 0, 0, 1);
      server_closes = 1;
      break;
    }
    ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      break;  // ECONNRESET, or EAGAIN after the -t idle timeout
    }
    c->in_len += (size_t)r;
  }
  if (server_closes)
    lingering_close(c->fd);
  else
    close(c->fd);
  free(c);
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
  unsigned long long port = 8080;
  unsigned long long backlog = 4096;
  unsigned long long timeout = 0;

  setvbuf(stdout, NULL, _IOLBF, 0);
  int opt;
  while ((opt = getopt(argc, argv, "a:p:r:l:b:t:h")) != -1) {
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
      case 'r':
        root = optarg;
        break;
      case 'l':
        log_path = optarg;
        break;
      case 'b':
        if (parse_ulong(optarg, INT_MAX, &backlog) < 0 || backlog == 0) {
          fprintf(stderr, "%s: bad backlog '%s'\n", prog, optarg);
          return 2;
        }
        break;
      case 't':
        if (parse_ulong(optarg, 86400 * 365, &timeout) < 0) {
          fprintf(stderr, "%s: bad timeout '%s'\n", prog, optarg);
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
  idle_timeout_s = (long)timeout;

  struct stat st;
  if (stat(root, &st) < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, root, strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    fprintf(stderr, "%s: %s: not a directory\n", prog, root);
    return 1;
  }
  if (log_path != NULL) {
    if (strcmp(log_path, "-") == 0) {
      log_fp = stdout;
    } else if ((log_fp = fopen(log_path, "a")) == NULL) {
      fprintf(stderr, "%s: %s: %s\n", prog, log_path, strerror(errno));
      return 1;
    }
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
  // A client that goes away mid-response turns write() into EPIPE.
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
  // Under log_mu: with "-l -" the access log shares stdout.
  pthread_mutex_lock(&log_mu);
  printf("listening on %s\n", where);
  fflush(stdout);
  pthread_mutex_unlock(&log_mu);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  for (;;) {
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int cfd = accept(lfd, (struct sockaddr*)&peer, &peer_len);
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
    struct Conn* c = malloc(sizeof *c);
    if (c == NULL) {
      close(cfd);
      pause_ms(10);
      continue;
    }
    c->fd = cfd;
    c->discard = 0;
    c->in_len = 0;
    if (getnameinfo((struct sockaddr*)&peer, peer_len, c->peer, sizeof c->peer,
                    NULL, 0, NI_NUMERICHOST) != 0)
      snprintf(c->peer, sizeof c->peer, "-");
    // Headers and body go out in one write() per buffer, so Nagle would
    // only add delay.
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (idle_timeout_s > 0) {
      struct timeval tv = {idle_timeout_s, 0};
      setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }

    pthread_t tid;
    rc = pthread_create(&tid, &attr, connection_thread, c);
    if (rc != 0) {
      fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(rc));
      close(cfd);
      free(c);
      pause_ms(10);
    }
  }
}
