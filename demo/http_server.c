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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum {
  kInSize = 8192,       // request line plus headers must fit
  kOutSize = 16384,     // response headers and file data per write()
  kMaxTarget = 2048,    // longer request targets get 414
  kMaxPath = 4096,      // ROOT plus decoded target
  kMaxLogRequest = 512  // request line as written to the access log
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

// One parsed request, pointing into Conn.in.
struct Request {
  const char* method;
  const char* target;
  int minor;             // HTTP/1.<minor>
  int keep_alive;
  char log_line[kMaxLogRequest];
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

// Copies a request line for the log: quotes, backslashes and bytes that are
// not printable ASCII are escaped, and the result is truncated to fit.
static void log_escape(char* dst, size_t dst_len, const char* src) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (const unsigned char* s = (const unsigned char*)src; *s != '\0'; s++) {
    if (*s == '"' || *s == '\\') {
      if (o + 2 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = (char)*s;
    } else if (*s < 0x20 || *s >= 0x7f) {
      if (o + 4 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[*s >> 4];
      dst[o++] = hex[*s & 15];
    } else {
      if (o + 1 >= dst_len) break;
      dst[o++] = (char)*s;
    }
  }
  dst[o] = '\0';
}

static void access_log(const struct Conn* c, const char* request, int status,
                       unsigned long long body_bytes) {
  pthread_mutex_lock(&stats_mu);
  n_requests++;
  pthread_mutex_unlock(&stats_mu);

  pthread_mutex_lock(&log_mu);
  if (log_fp != NULL) {
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
    if (body_bytes != 0)
      fprintf(log_fp, "%s - - [%s] \"%s\" %d %llu\n", c->peer, when, request,
              status, body_bytes);
    else
      fprintf(log_fp, "%s - - [%s] \"%s\" %d -\n", c->peer, when, request,
              status);
    fflush(log_fp);
  }
  pthread_mutex_unlock(&log_mu);
}

static const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    default: return "Internal Server Error";
  }
}

static const char* content_type(const char* path) {
  static const struct {
    const char* ext;
    const char* type;
  } kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"},
      {"css", "text/css"},
      {"js", "application/javascript"},
      {"json", "application/json"},
      {"xml", "application/xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},
      {"pdf", "application/pdf"},
  };
  const char* slash = strrchr(path, '/');
  const char* dot = strrchr(path, '.');
  if (dot != NULL && (slash == NULL || dot > slash)) {
    for (size_t i = 0; i < sizeof kTypes / sizeof kTypes[0]; i++)
      if (strcasecmp(dot + 1, kTypes[i].ext) == 0) return kTypes[i].type;
  }
  return "application/octet-stream";
}

// Writes the status line and headers into buf; returns their length, or 0 if
// they do not fit.
static size_t format_head(char* buf, size_t len, int status, const char* type,
                          unsigned long long length, const time_t* mtime,
                          int keep_alive, int minor, int allow) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  char modified[96] = "";
  if (mtime != NULL) {
    char m[64];
    gmtime_r(mtime, &tm);
    strftime(m, sizeof m, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(modified, sizeof modified, "Last-Modified: %s\r\n", m);
  }
  const char* conn = !keep_alive ? "Connection: close\r\n"
                     : minor == 0 ? "Connection: keep-alive\r\n"
                                  : "";
  int n = snprintf(buf, len,
                   "HTTP/1.1 %d %s\r\n"
                   "Server: unblock-demo\r\n"
                   "Date: %s\r\n"
                   "%s"
                   "Content-Type: %s\r\n"
                   "Content-Length: %llu\r\n"
                   "%s%s"
                   "\r\n",
                   status, reason(status), date, modified, type, length,
                   allow ? "Allow: GET, HEAD\r\n" : "", conn);
  if (n < 0 || (size_t)n >= len) return 0;
  return (size_t)n;
}

// Sends a small error response. Returns 0, or -1 if the connection failed.
static int send_error(struct Conn* c, const char* log_line, int status,
                      int head_only, int keep_alive, int minor) {
  char body[128];
  int body_len = snprintf(body, sizeof body,
                          "<html><body><h1>%d %s</h1></body></html>\n", status,
                          reason(status));
  size_t n = format_head(c->out, sizeof c->out, status,
                         "text/html; charset=utf-8", (unsigned long long)body_len,
                         NULL, keep_alive, minor, status == 405);
  if (!head_only) {
    memcpy(c->out + n, body, (size_t)body_len);
    n += (size_t)body_len;
  }
  int rc = write_all(c->fd, c->out, n);
  access_log(c, log_line, status, head_only ? 0 : (unsigned long long)body_len);
  return rc;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Turns a request target into a file system path under ROOT. Returns 0 or the
// HTTP status to answer with.
static int target_to_path(const char* target, char* path, size_t path_len) {
  if (strlen(target) > kMaxTarget) return 414;
  // absolute-form: http://host[:port]/path
  if (strncasecmp(target, "http://", 7) == 0) {
    target = strchr(target + 7, '/');
    if (target == NULL) target = "/";
  }
  if (target[0] != '/') return 400;

  char decoded[kMaxTarget + 1];
  size_t d = 0;
  for (const char* s = target; *s != '\0' && *s != '?' && *s != '#'; s++) {
    char ch = *s;
    if (ch == '%') {
      int hi = hex_value(s[1]);
      int lo = hi < 0 ? -1 : hex_value(s[2]);
      if (lo < 0) return 400;
      ch = (char)(hi * 16 + lo);
      if (ch == '\0') return 400;
      s += 2;
    }
    decoded[d++] = ch;
  }
  decoded[d] = '\0';

  // Reject any ".." segment of the decoded path; "%2e%2e" and "..%2f" land
  // here too.
  for (const char* seg = decoded; seg != NULL;) {
    const char* end = strchr(seg, '/');
    size_t seg_len = end != NULL ? (size_t)(end - seg) : strlen(seg);
    if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') return 400;
    seg = end != NULL ? end + 1 : NULL;
  }

  int n = snprintf(path, path_len, "%s%s", root, decoded);
  if (n < 0 || (size_t)n >= path_len) return 414;
  return 0;
}

// Answers a GET or HEAD for a file. Returns 0 to keep going with the
// connection, or -1 to close it.
static int serve_file(struct Conn* c, const struct Request* rq, int head_only) {
  char path[kMaxPath];
  int status = target_to_path(rq->target, path, sizeof path);
  if (status != 0) {
    send_error(c, rq->log_line, status, head_only, 0, rq->minor);
    return -1;
  }

  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t len = strlen(path);
    const char* sep = len > 0 && path[len - 1] == '/' ? "" : "/";
    if (len + strlen(sep) + strlen("index.html") >= sizeof path) {
      send_error(c, rq->log_line, 414, head_only, 0, rq->minor);
      return -1;
    }
    strcat(path, sep);
    strcat(path, "index.html");
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
  size_t n = format_head(c->out, sizeof c->out, 200, content_type(path), size,
                         &st.st_mtime, rq->keep_alive, rq->minor, 0);
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

static int is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_token(const char* s) {
  if (*s == '\0') return 0;
  for (; *s != '\0'; s++)
    if (!is_tchar((unsigned char)*s)) return 0;
  return 1;
}

// Returns the length of the request head at the start of buf, up to and
// including the empty line that ends it, or 0 if it is not complete yet.
static size_t find_head_end(const char* buf, size_t len) {
  size_t line = 0;
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != '\n') continue;
    size_t line_len = i - line;
    if (line_len == 0 || (line_len == 1 && buf[line] == '\r')) return i + 1;
    line = i + 1;
  }
  return 0;
}

// Cuts the next line out of [*p, end): NUL-terminates it (dropping a CR) and
// advances *p. The head always ends in '\n', so a line is always found.
static char* next_line(char** p, char* end) {
  char* start = *p;
  char* nl = memchr(start, '\n', (size_t)(end - start));
  *p = nl + 1;
  if (nl > start && nl[-1] == '\r') nl--;
  *nl = '\0';
  return start;
}

static char* trim(char* s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) s[--len] = '\0';
  return s;
}

// Parses the request head in c->in[0, head_len) and answers it. Returns 0 to
// read the next request on this connection, or -1 to close it.
static int handle_request(struct Conn* c, size_t head_len) {
  struct Request rq;
  memset(&rq, 0, sizeof rq);
  char* p = c->in;
  char* end = c->in + head_len;

  char* line = next_line(&p, end);
  log_escape(rq.log_line, sizeof rq.log_line, line);

  // request-line = method SP request-target SP HTTP-version
  char* sp1 = strchr(line, ' ');
  char* sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
  if (sp2 == NULL || strchr(sp2 + 1, ' ') != NULL) {
    send_error(c, rq.log_line, 400, 0, 0, 1);
    return -1;
  }
  *sp1 = '\0';
  *sp2 = '\0';
  rq.method = line;
  rq.target = sp1 + 1;
  const char* version = sp2 + 1;
  if (!is_token(rq.method) || rq.target[0] == '\0' ||
      strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
      version[7] > '9' || version[8] != '\0') {
    send_error(c, rq.log_line, 400, 0, 0, 1);
    return -1;
  }
  rq.minor = version[7] - '0';
  for (const char* s = rq.target; *s != '\0'; s++) {
    if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
      send_error(c, rq.log_line, 400, 0, 0, rq.minor);
      return -1;
    }
  }

  int conn_close = 0;
  int conn_keep_alive = 0;
  int have_length = 0;
  unsigned long long length = 0;
  int bad = 0;
  while (p < end && !bad) {
    line = next_line(&p, end);
    if (line[0] == '\0') break;  // the empty line that ends the head
    char* colon = strchr(line, ':');
    if (line[0] == ' ' || line[0] == '\t' || colon == NULL) {
      bad = 1;  // obsolete line folding or no field name
      break;
    }
    *colon = '\0';
    if (!is_token(line)) {
      bad = 1;
      break;
    }
    char* value = trim(colon + 1);
    if (strcasecmp(line, "Connection") == 0) {
      char* save;
      for (char* tok = strtok_r(value, ",", &save); tok != NULL;
           tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (strcasecmp(tok, "close") == 0) conn_close = 1;
        if (strcasecmp(tok, "keep-alive") == 0) conn_keep_alive = 1;
      }
    } else if (strcasecmp(line, "Content-Length") == 0) {
      unsigned long long v = 0;
      if (value[0] == '\0') bad = 1;
      for (const char* s = value; *s != '\0' && !bad; s++) {
        if (*s < '0' || *s > '9') {
          bad = 1;
        } else if (v > (ULLONG_MAX - 9) / 10) {
          bad = 1;
        } else {
          v = v * 10 + (unsigned long long)(*s - '0');
        }
      }
      if (have_length && v != length) bad = 1;
      have_length = 1;
      length = v;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
      bad = 1;  // chunked request bodies are not supported: cannot frame
    }
  }
  if (bad) {
    send_error(c, rq.log_line, 400, 0, 0, rq.minor);
    return -1;
  }

  rq.keep_alive = rq.minor >= 1 ? !conn_close : conn_keep_alive && !conn_close;
  c->discard = length;

  int is_get = strcmp(rq.method, "GET") == 0;
  int is_head = strcmp(rq.method, "HEAD") == 0;
  if (!is_get && !is_head) {
    if (send_error(c, rq.log_line, 405, 0, rq.keep_alive, rq.minor) < 0)
      return -1;
    return rq.keep_alive ? 0 : -1;
  }
  return serve_file(c, &rq, is_head);
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
    // Skip the body of the previous request, if it had one.
    if (c->discard > 0 && c->in_len > 0) {
      size_t n = c->in_len;
      if (n > c->discard) n = (size_t)c->discard;
      memmove(c->in, c->in + n, c->in_len - n);
      c->in_len -= n;
      c->discard -= n;
    }
    // Empty lines before a request line are ignored (RFC 9112, 2.2).
    size_t skip = 0;
    while (c->discard == 0 && skip < c->in_len &&
           (c->in[skip] == '\r' || c->in[skip] == '\n'))
      skip++;
    if (skip > 0) {
      memmove(c->in, c->in + skip, c->in_len - skip);
      c->in_len -= skip;
    }

    size_t head_len = c->discard == 0 ? find_head_end(c->in, c->in_len) : 0;
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
      int status = memchr(c->in, '\n', c->in_len) == NULL ? 414 : 400;
      send_error(c, "-", status, 0, 0, 1);
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
