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
// The protocol logic (head parsing, target to path, response heads, error
// responses, the access log line) is demo/http_proto.c, shared with the demo;
// this file holds only the epoll I/O model.
// tests/integration/epoll_http_same.sh checks the two answer alike.
//
// Not kept from the demo: -t (idle timeout), SIGHUP's log reopening, IPv6
// peer formatting beyond getnameinfo's.
//
// Usage: epoll_http [-a ADDR] [-p PORT] [-r ROOT] [-l ACCESS_LOG] [-b BACKLOG]
// stdout: "listening on ADDR:PORT", and "requests N" on SIGTERM/SIGINT (exit 0).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "http_proto.h"

namespace {

constexpr size_t kInSize = 8192;        // request line plus headers must fit
constexpr size_t kOutChunk = 16384;     // file data read per read()
constexpr size_t kOutHigh = 65536;      // stop answering pipelined requests above this
constexpr size_t kMaxPath = 4096;       // ROOT plus decoded target
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
  char file_log_line[kHttpMaxLogRequest];
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
  char line[kHttpMaxLogLine];
  http_format_log_line(line, sizeof line, c->peer, request, status, body_bytes);
  fputs(line, g_log);
  fflush(g_log);
}

void queue_error(Conn* c, const char* log_line, int status, int head_only, int keep_alive, int minor) {
  char buf[1024];
  unsigned long long log_bytes;
  size_t n = http_format_error(buf, sizeof buf, status, head_only, keep_alive, minor, &log_bytes);
  c->out.append(buf, n);
  access_log(c, log_line, status, log_bytes);
}

// Queues the answer to a GET or HEAD for a file: the head now, the body by
// pump() as the output drains. Sets server_closes when the connection ends.
void serve_file(Conn* c, const HttpRequest* rq) {
  int head_only = rq->head_only;
  char path[kMaxPath];
  int status = http_target_to_path(g_root, rq->target, path, sizeof path);
  if (status != 0) {
    queue_error(c, rq->log_line, status, head_only, 0, rq->minor);
    c->server_closes = true;
    return;
  }
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && http_append_index(path, sizeof path) != 0) {
    queue_error(c, rq->log_line, 414, head_only, 0, rq->minor);
    c->server_closes = true;
    return;
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
  char head[1024];
  c->out.append(head, http_format_head(head, sizeof head, 200, http_content_type(path), size, &st.st_mtime,
                                       rq->keep_alive, rq->minor, 0));
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

// Parses the head in c->in[0, head_len) and queues its answer.
void handle_request(Conn* c, size_t head_len) {
  HttpRequest rq;
  int status = http_parse_request(c->in, head_len, &rq);
  c->discard = rq.body_length;
  if (status != 0) {
    queue_error(c, rq.log_line, status, 0, rq.keep_alive, rq.minor);
    if (!rq.keep_alive) c->server_closes = true;
    return;
  }
  serve_file(c, &rq);
}

// Takes the next request out of c->in and queues its answer. Returns false
// when no complete request is buffered.
bool next_request(Conn* c) {
  size_t head_len = http_next_head(c->in, &c->in_len, &c->discard);
  if (head_len > 0) {
    handle_request(c, head_len);
    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;
    return true;
  }
  if (c->in_len == sizeof c->in) {
    queue_error(c, "-", http_overflow_status(c->in, c->in_len), 0, 0, 1);
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
