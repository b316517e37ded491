// epoll_http: the reference event-loop HTTP/1.1 server (one thread, epoll,
// non-blocking sockets, level-triggered). The ceiling the demo
// thread-per-connection HTTP server (demo/http_server.c) is compared against,
// plain and under unblock; not part of the library.
//
// It answers exactly as demo/http_server.c does, byte for byte (only the Date
// header follows the clock), and does the same work per request: stat(),
// open(), fstat(), read() of the file, close(), and an access log line
// written and flushed per response when -l is given. Same HTTP semantics:
// GET and HEAD, 405 for other methods, persistent connections (HTTP/1.1
// unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"),
// pipelined requests, request bodies announced by Content-Length skipped, 400
// for malformed requests and ".." segments, 414 for over-long targets, 404 for
// anything that is not a regular file under ROOT (a directory serves its
// index.html), and a lingering close (shutdown, then input drained for up to
// a second or 256 KiB) whenever the server ends the connection.
// tests/integration/epoll_http_same.sh checks the two answer alike.
//
// Not kept from the demo: -t (idle timeout), SIGHUP's log reopening, IPv6
// peer formatting beyond getnameinfo's.
//
// Usage: epoll_http [-a ADDR] [-p PORT] [-r ROOT] [-l ACCESS_LOG] [-b BACKLOG]
// stdout: "listening on ADDR:PORT", and "requests N" on SIGTERM/SIGINT (exit 0).
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kInSize = 8192;        // request line plus headers must fit
constexpr size_t kOutChunk = 16384;     // file data read per read()
constexpr size_t kOutHigh = 65536;      // stop answering pipelined requests above this
constexpr size_t kMaxTarget = 2048;     // longer request targets get 414
constexpr size_t kMaxPath = 4096;       // ROOT plus decoded target
constexpr size_t kMaxLogRequest = 512;  // request line as written to the access log
constexpr size_t kLingerBytes = 256 * 1024;

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

const char* g_root = ".";
FILE* g_log = nullptr;
unsigned long long g_requests = 0;
int g_ep = -1;

// A connection's state, in order: reading and answering requests; then,
// once the server decided to end it and the output is out, lingering
// (shut down for writing, input drained until EOF, the deadline or
// kLingerBytes); then closed.
struct Conn {
  int fd = -1;
  unsigned long long discard = 0;  // request body bytes still to skip
  size_t in_len = 0;
  char in[kInSize];
  std::string out;                 // response bytes not yet written
  size_t out_off = 0;
  int file_fd = -1;                // file whose body is still being queued
  unsigned long long file_left = 0;
  unsigned long long file_size = 0;
  int file_head_only = 0;
  char file_log_line[kMaxLogRequest];
  bool file_keep_alive = true;
  bool server_closes = false;      // end the connection once the output is out
  bool peer_eof = false;
  bool lingering = false;
  size_t lingered = 0;
  timespec linger_until{};
  char peer[INET6_ADDRSTRLEN];
  unsigned interest = 0;
};

std::vector<Conn*> g_conns;
std::vector<int> g_lingering;  // fds that started lingering (stale entries are dropped when seen)

void access_log(const Conn* c, const char* request, int status, unsigned long long body_bytes) {
  ++g_requests;
  if (!g_log) return;
  char when[64];
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
  if (body_bytes != 0)
    fprintf(g_log, "%s - - [%s] \"%s\" %d %llu\n", c->peer, when, request, status, body_bytes);
  else
    fprintf(g_log, "%s - - [%s] \"%s\" %d -\n", c->peer, when, request, status);
  fflush(g_log);
}

void log_escape(char* dst, size_t dst_len, const char* src) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (const unsigned char* s = reinterpret_cast<const unsigned char*>(src); *s != '\0'; s++) {
    if (*s == '"' || *s == '\\') {
      if (o + 2 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = static_cast<char>(*s);
    } else if (*s < 0x20 || *s >= 0x7f) {
      if (o + 4 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[*s >> 4];
      dst[o++] = hex[*s & 15];
    } else {
      if (o + 1 >= dst_len) break;
      dst[o++] = static_cast<char>(*s);
    }
  }
  dst[o] = '\0';
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    default: return "Internal Server Error";
  }
}

const char* content_type(const char* path) {
  static const struct {
    const char* ext;
    const char* type;
  } kTypes[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
      {"js", "application/javascript"},     {"json", "application/json"},
      {"xml", "application/xml"},           {"png", "image/png"},
      {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                 {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},              {"pdf", "application/pdf"},
  };
  const char* slash = strrchr(path, '/');
  const char* dot = strrchr(path, '.');
  if (dot != nullptr && (slash == nullptr || dot > slash)) {
    for (const auto& t : kTypes)
      if (strcasecmp(dot + 1, t.ext) == 0) return t.type;
  }
  return "application/octet-stream";
}

// Appends the status line and headers to out (demo/http_server.c's
// format_head, the same bytes).
void format_head(std::string* out, int status, const char* type, unsigned long long length,
                 const time_t* mtime, int keep_alive, int minor, int allow) {
  char date[64];
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  char modified[96] = "";
  if (mtime != nullptr) {
    char m[64];
    gmtime_r(mtime, &tm);
    strftime(m, sizeof m, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(modified, sizeof modified, "Last-Modified: %s\r\n", m);
  }
  const char* conn = !keep_alive ? "Connection: close\r\n" : minor == 0 ? "Connection: keep-alive\r\n" : "";
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\n"
                   "Server: unblock-demo\r\n"
                   "Date: %s\r\n"
                   "%s"
                   "Content-Type: %s\r\n"
                   "Content-Length: %llu\r\n"
                   "%s%s"
                   "\r\n",
                   status, reason(status), date, modified, type, length, allow ? "Allow: GET, HEAD\r\n" : "",
                   conn);
  if (n > 0 && static_cast<size_t>(n) < sizeof buf) out->append(buf, static_cast<size_t>(n));
}

void queue_error(Conn* c, const char* log_line, int status, int head_only, int keep_alive, int minor) {
  char body[128];
  int body_len = snprintf(body, sizeof body, "<html><body><h1>%d %s</h1></body></html>\n", status, reason(status));
  format_head(&c->out, status, "text/html; charset=utf-8", static_cast<unsigned long long>(body_len), nullptr,
              keep_alive, minor, status == 405);
  if (!head_only) c->out.append(body, static_cast<size_t>(body_len));
  access_log(c, log_line, status, head_only ? 0 : static_cast<unsigned long long>(body_len));
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Turns a request target into a path under ROOT. Returns 0 or the status to answer with.
int target_to_path(const char* target, char* path, size_t path_len) {
  if (strlen(target) > kMaxTarget) return 414;
  if (strncasecmp(target, "http://", 7) == 0) {
    target = strchr(target + 7, '/');
    if (target == nullptr) target = "/";
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
      ch = static_cast<char>(hi * 16 + lo);
      if (ch == '\0') return 400;
      s += 2;
    }
    decoded[d++] = ch;
  }
  decoded[d] = '\0';
  for (const char* seg = decoded; seg != nullptr;) {
    const char* end = strchr(seg, '/');
    size_t seg_len = end != nullptr ? static_cast<size_t>(end - seg) : strlen(seg);
    if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') return 400;
    seg = end != nullptr ? end + 1 : nullptr;
  }
  int n = snprintf(path, path_len, "%s%s", g_root, decoded);
  if (n < 0 || static_cast<size_t>(n) >= path_len) return 414;
  return 0;
}

struct Request {
  const char* method;
  const char* target;
  int minor;
  int keep_alive;
  char log_line[kMaxLogRequest];
};

// Queues the answer to a GET or HEAD for a file: the head now, the body by
// pump() as the output drains. Sets server_closes when the connection ends.
void serve_file(Conn* c, const Request* rq, int head_only) {
  char path[kMaxPath];
  int status = target_to_path(rq->target, path, sizeof path);
  if (status != 0) {
    queue_error(c, rq->log_line, status, head_only, 0, rq->minor);
    c->server_closes = true;
    return;
  }
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t len = strlen(path);
    const char* sep = len > 0 && path[len - 1] == '/' ? "" : "/";
    if (len + strlen(sep) + strlen("index.html") >= sizeof path) {
      queue_error(c, rq->log_line, 414, head_only, 0, rq->minor);
      c->server_closes = true;
      return;
    }
    strcat(path, sep);
    strcat(path, "index.html");
  }
  int fd = -1;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    fd = -1;
  }
  if (fd < 0) {
    queue_error(c, rq->log_line, 404, head_only, rq->keep_alive, rq->minor);
    if (!rq->keep_alive) c->server_closes = true;
    return;
  }
  unsigned long long size = static_cast<unsigned long long>(st.st_size);
  format_head(&c->out, 200, content_type(path), size, &st.st_mtime, rq->keep_alive, rq->minor, 0);
  c->file_fd = fd;
  c->file_size = size;
  c->file_left = head_only ? 0 : size;
  c->file_head_only = head_only;
  c->file_keep_alive = rq->keep_alive;
  memcpy(c->file_log_line, rq->log_line, sizeof c->file_log_line);
}

// Reads the next part of the file being served into the output; logs and
// closes it at its end. Returns false if the file fell short of its size.
bool queue_file_part(Conn* c) {
  bool ok = true;
  if (c->file_left > 0) {
    size_t want = kOutChunk;
    if (want > c->file_left) want = static_cast<size_t>(c->file_left);
    size_t at = c->out.size();
    c->out.resize(at + want);
    ssize_t r;
    do r = read(c->file_fd, &c->out[at], want);
    while (r < 0 && errno == EINTR);
    c->out.resize(at + (r > 0 ? static_cast<size_t>(r) : 0));
    if (r <= 0) ok = false;  // shrunk or unreadable under us: Content-Length cannot be met
    else c->file_left -= static_cast<unsigned long long>(r);
  }
  if (!ok || c->file_left == 0) {
    close(c->file_fd);
    c->file_fd = -1;
    access_log(c, c->file_log_line, 200, c->file_head_only ? 0 : c->file_size);
    if (!ok || !c->file_keep_alive) c->server_closes = true;
  }
  return ok;
}

bool is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != nullptr);
}

bool is_token(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; s++)
    if (!is_tchar(static_cast<unsigned char>(*s))) return false;
  return true;
}

size_t find_head_end(const char* buf, size_t len) {
  size_t line = 0;
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != '\n') continue;
    size_t line_len = i - line;
    if (line_len == 0 || (line_len == 1 && buf[line] == '\r')) return i + 1;
    line = i + 1;
  }
  return 0;
}

char* next_line(char** p, char* end) {
  char* start = *p;
  char* nl = static_cast<char*>(memchr(start, '\n', static_cast<size_t>(end - start)));
  *p = nl + 1;
  if (nl > start && nl[-1] == '\r') nl--;
  *nl = '\0';
  return start;
}

char* trim(char* s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) s[--len] = '\0';
  return s;
}

// Parses the head in c->in[0, head_len) and queues its answer
// (demo/http_server.c's handle_request, the same decisions).
void handle_request(Conn* c, size_t head_len) {
  Request rq;
  memset(&rq, 0, sizeof rq);
  char* p = c->in;
  char* end = c->in + head_len;
  char* line = next_line(&p, end);
  log_escape(rq.log_line, sizeof rq.log_line, line);
  char* sp1 = strchr(line, ' ');
  char* sp2 = sp1 != nullptr ? strchr(sp1 + 1, ' ') : nullptr;
  if (sp2 == nullptr || strchr(sp2 + 1, ' ') != nullptr) {
    queue_error(c, rq.log_line, 400, 0, 0, 1);
    c->server_closes = true;
    return;
  }
  *sp1 = '\0';
  *sp2 = '\0';
  rq.method = line;
  rq.target = sp1 + 1;
  const char* version = sp2 + 1;
  if (!is_token(rq.method) || rq.target[0] == '\0' || strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
      version[7] > '9' || version[8] != '\0') {
    queue_error(c, rq.log_line, 400, 0, 0, 1);
    c->server_closes = true;
    return;
  }
  rq.minor = version[7] - '0';
  for (const char* s = rq.target; *s != '\0'; s++) {
    if (static_cast<unsigned char>(*s) <= 0x20 || *s == 0x7f) {
      queue_error(c, rq.log_line, 400, 0, 0, rq.minor);
      c->server_closes = true;
      return;
    }
  }
  int conn_close = 0, conn_keep_alive = 0, have_length = 0, bad = 0;
  unsigned long long length = 0;
  while (p < end && !bad) {
    line = next_line(&p, end);
    if (line[0] == '\0') break;
    char* colon = strchr(line, ':');
    if (line[0] == ' ' || line[0] == '\t' || colon == nullptr) {
      bad = 1;
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
      for (char* tok = strtok_r(value, ",", &save); tok != nullptr; tok = strtok_r(nullptr, ",", &save)) {
        tok = trim(tok);
        if (strcasecmp(tok, "close") == 0) conn_close = 1;
        if (strcasecmp(tok, "keep-alive") == 0) conn_keep_alive = 1;
      }
    } else if (strcasecmp(line, "Content-Length") == 0) {
      unsigned long long v = 0;
      if (value[0] == '\0') bad = 1;
      for (const char* s = value; *s != '\0' && !bad; s++) {
        if (*s < '0' || *s > '9') bad = 1;
        else if (v > (ULLONG_MAX - 9) / 10) bad = 1;
        else v = v * 10 + static_cast<unsigned long long>(*s - '0');
      }
      if (have_length && v != length) bad = 1;
      have_length = 1;
      length = v;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
      bad = 1;
    }
  }
  if (bad) {
    queue_error(c, rq.log_line, 400, 0, 0, rq.minor);
    c->server_closes = true;
    return;
  }
  rq.keep_alive = rq.minor >= 1 ? !conn_close : conn_keep_alive && !conn_close;
  c->discard = length;
  int is_get = strcmp(rq.method, "GET") == 0;
  int is_head = strcmp(rq.method, "HEAD") == 0;
  if (!is_get && !is_head) {
    queue_error(c, rq.log_line, 405, 0, rq.keep_alive, rq.minor);
    if (!rq.keep_alive) c->server_closes = true;
    return;
  }
  serve_file(c, &rq, is_head);
}

// Takes the next request out of c->in and queues its answer. Returns false
// when no complete request is buffered.
bool next_request(Conn* c) {
  if (c->discard > 0 && c->in_len > 0) {
    size_t n = c->in_len;
    if (n > c->discard) n = static_cast<size_t>(c->discard);
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    c->discard -= n;
  }
  size_t skip = 0;  // empty lines before a request line are ignored (RFC 9112, 2.2)
  while (c->discard == 0 && skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n')) skip++;
  if (skip > 0) {
    memmove(c->in, c->in + skip, c->in_len - skip);
    c->in_len -= skip;
  }
  size_t head_len = c->discard == 0 ? find_head_end(c->in, c->in_len) : 0;
  if (head_len > 0) {
    handle_request(c, head_len);
    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;
    return true;
  }
  if (c->in_len == sizeof c->in) {
    int status = memchr(c->in, '\n', c->in_len) == nullptr ? 414 : 400;
    queue_error(c, "-", status, 0, 0, 1);
    c->server_closes = true;
    return true;
  }
  return false;
}

void finish(Conn* c) {
  if (c->file_fd >= 0) close(c->file_fd);
  close(c->fd);
  g_conns[c->fd] = nullptr;
  delete c;
}

void set_interest(Conn* c, unsigned want) {
  if (want == c->interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c->fd;
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->interest = want;
}

void start_lingering(Conn* c) {
  c->lingering = true;
  shutdown(c->fd, SHUT_WR);
  clock_gettime(CLOCK_MONOTONIC, &c->linger_until);
  c->linger_until.tv_sec += 1;
  g_lingering.push_back(c->fd);
}

// Moves a connection as far as it can go without blocking: answers the
// buffered requests, writes, and decides what to wait for next. Returns
// false if the connection was closed.
bool pump(Conn* c) {
  for (;;) {
    while (!c->server_closes && c->file_fd < 0 && c->out.size() - c->out_off < kOutHigh && next_request(c)) {
    }
    if (c->file_fd >= 0 && c->out.size() - c->out_off < kOutChunk) {
      if (!queue_file_part(c)) c->server_closes = true;
      continue;
    }
    if (c->out_off < c->out.size()) {
      ssize_t w = write(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) break;
      if (w < 0) {
        finish(c);
        return false;
      }
      c->out_off += static_cast<size_t>(w);
      if (c->out_off == c->out.size()) {
        c->out.clear();
        c->out_off = 0;
      }
      continue;
    }
    if (c->server_closes) {
      if (!c->lingering) start_lingering(c);
      break;
    }
    if (c->peer_eof) {  // every buffered request answered
      finish(c);
      return false;
    }
    break;
  }
  unsigned want = 0;
  bool out_pending = c->out_off < c->out.size();
  if (out_pending) want |= EPOLLOUT;
  if (c->lingering || (!c->peer_eof && c->in_len < sizeof c->in)) want |= EPOLLIN;
  set_interest(c, want);
  return true;
}

void on_readable(Conn* c) {
  if (c->lingering && c->out_off == c->out.size()) {
    char sink[4096];
    ssize_t r = read(c->fd, sink, sizeof sink);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0 || (c->lingered += static_cast<size_t>(r)) >= kLingerBytes) finish(c);
    return;
  }
  if (c->lingering) {
    pump(c);
    return;
  }
  if (c->in_len < sizeof c->in && !c->peer_eof) {
    ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (r == 0) {
      c->peer_eof = true;
    } else if (r < 0) {
      if (errno != EINTR && errno != EAGAIN) {  // ECONNRESET
        finish(c);
        return;
      }
    } else {
      c->in_len += static_cast<size_t>(r);
    }
  }
  pump(c);
}

// Ends lingering connections whose second is up.
void expire_lingering() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  size_t keep = 0;
  for (int fd : g_lingering) {
    Conn* c = g_conns[fd];
    if (!c || !c->lingering) continue;
    if (now.tv_sec > c->linger_until.tv_sec ||
        (now.tv_sec == c->linger_until.tv_sec && now.tv_nsec >= c->linger_until.tv_nsec))
      finish(c);
    else
      g_lingering[keep++] = fd;
  }
  g_lingering.resize(keep);
}

int open_listener(const char* addr, const char* port, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res;
  int rc = getaddrinfo(addr, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "epoll_http: %s: %s\n", addr, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) perror("epoll_http: listen");
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const char* addr = "127.0.0.1";
  const char* port = "8080";
  const char* log_path = nullptr;
  int backlog = 4096;
  int opt;
  while ((opt = getopt(argc, argv, "a:p:r:l:b:")) != -1) {
    switch (opt) {
      case 'a': addr = optarg; break;
      case 'p': port = optarg; break;
      case 'r': g_root = optarg; break;
      case 'l': log_path = optarg; break;
      case 'b': backlog = atoi(optarg); break;
      default:
        fprintf(stderr, "usage: epoll_http [-a ADDR] [-p PORT] [-r ROOT] [-l ACCESS_LOG] [-b BACKLOG]\n");
        return 2;
    }
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  struct stat st;
  if (stat(g_root, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "epoll_http: %s: not a directory\n", g_root);
    return 1;
  }
  if (log_path) {
    g_log = strcmp(log_path, "-") == 0 ? stdout : fopen(log_path, "a");
    if (!g_log) {
      perror(log_path);
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  g_conns.assign(rl.rlim_cur, nullptr);

  int ls = open_listener(addr, port, backlog);
  if (ls < 0) return 1;
  sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  getsockname(ls, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  char host[INET6_ADDRSTRLEN], serv[16];
  getnameinfo(reinterpret_cast<sockaddr*>(&bound), bound_len, host, sizeof host, serv, sizeof serv,
              NI_NUMERICHOST | NI_NUMERICSERV);
  if (bound.ss_family == AF_INET6) printf("listening on [%s]:%s\n", host, serv);
  else printf("listening on %s:%s\n", host, serv);

  g_ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, ls, &ev);
  std::vector<epoll_event> events(1024);
  int one = 1;
  int lingering_check = 0;
  while (!g_stop) {
    int n = epoll_wait(g_ep, events.data(), static_cast<int>(events.size()), 200);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        for (;;) {
          sockaddr_storage peer;
          socklen_t peer_len = sizeof peer;
          int cfd = accept4(ls, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          if (static_cast<size_t>(cfd) >= g_conns.size()) {
            close(cfd);
            continue;
          }
          Conn* c = new Conn;
          c->fd = cfd;
          if (getnameinfo(reinterpret_cast<sockaddr*>(&peer), peer_len, c->peer, sizeof c->peer, nullptr, 0,
                          NI_NUMERICHOST) != 0)
            snprintf(c->peer, sizeof c->peer, "-");
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c->interest = EPOLLIN;
          epoll_event ce{};
          ce.events = EPOLLIN;
          ce.data.fd = cfd;
          epoll_ctl(g_ep, EPOLL_CTL_ADD, cfd, &ce);
          g_conns[cfd] = c;
        }
        continue;
      }
      Conn* c = g_conns[fd];
      if (!c) continue;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
      else pump(c);
    }
    if (!g_lingering.empty() && (n <= 0 || ++lingering_check >= 64)) {
      lingering_check = 0;
      expire_lingering();
    }
  }
  printf("requests %llu\n", g_requests);
  return 0;
}
