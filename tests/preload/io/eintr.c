// EINTR for blocked calls, as signal(7) says for Linux. A thread blocks in a
// call; main sends it SIGUSR1 every 2 ms. With a handler installed without
// SA_RESTART every call below fails with EINTR; with SA_RESTART (argv[1] ==
// "restart") reads, writes, recv, send, accept and untimed sem_wait go on
// waiting, and main then supplies what they wait for; poll, select, epoll,
// socket calls with a timeout (SO_RCVTIMEO) and timed waits still fail with
// EINTR; a blocking connect goes on waiting for its connection. A condition wait never fails with EINTR.
// The handler clobbers errno, as careless handlers do: a call that fails
// reports EINTR, one that succeeds leaves the handler's value (as natively).
//
// Deterministic whatever the timing: kicks go on until the call returns; a
// call expected to restart is given its data after three handler runs (if
// all three landed before it blocked, it returns the same data anyway); a
// call still blocked after 1,000 kicks is released and reported as such.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static atomic_int handled;
static atomic_int in_call;  // the thread is in (or about to enter) the call

static void on_usr1(int sig) {
  (void)sig;
  if (atomic_load(&in_call)) atomic_fetch_add(&handled, 1);
  errno = ENOENT;
}

struct Case {
  const char* name;
  long (*call)(struct Case*);
  void (*release)(struct Case*);  // makes the call complete
  int restarts;                   // 1: with SA_RESTART the call goes on waiting; 2: always
  int fd[4];
  sem_t sem;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready;
  atomic_int done;
  long ret;
  int err;
};

static const char* errname(int e) {
  switch (e) {
    case 0: return "0";
    case EINTR: return "EINTR";
    case ENOENT: return "ENOENT (the handler's)";
    case EAGAIN: return "EAGAIN";
    case EALREADY: return "EALREADY";
    case EINPROGRESS: return "EINPROGRESS";
    case EISCONN: return "EISCONN";
    case EINVAL: return "EINVAL";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return strerror(e);
  }
}

static void* runner(void* arg) {
  struct Case* c = arg;
  errno = 0;
  atomic_store(&in_call, 1);
  c->ret = c->call(c);
  c->err = errno;
  atomic_store(&in_call, 0);
  atomic_store(&c->done, 1);
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void run(struct Case* c, int restart_mode) {
  pthread_t t;
  atomic_store(&handled, 0);
  atomic_store(&c->done, 0);
  pthread_create(&t, NULL, runner, c);
  sleep_ms(10);  // very likely blocked by now; correct either way
  int kicks = 0, released = 0;
  while (!atomic_load(&c->done)) {
    if (!released && ((((restart_mode && c->restarts) || c->restarts == 2) && atomic_load(&handled) >= 3) || kicks >= 1000)) {
      if (kicks >= 1000) printf("  %s: still blocked after 1000 signals\n", c->name);
      c->release(c);
      released = 1;
    }
    if (!released) {
      pthread_kill(t, SIGUSR1);
      ++kicks;
    }
    sleep_ms(2);
  }
  pthread_join(t, NULL);
  if (!released) c->release(c);  // unblock nothing; keeps fds tidy
  printf("%-34s ret %ld errno %s%s\n", c->name, c->ret, c->ret < 0 ? errname(c->err) : errname(c->err),
         atomic_load(&handled) > 0 ? "" : " (no handler ran during the call)");
}

// ---- the calls -----------------------------------------------------------------

static char buf[1 << 16];
static char big[1 << 20];

static long c_read_pipe(struct Case* c) { return read(c->fd[0], buf, sizeof buf); }
static long c_readv_pipe(struct Case* c) {
  struct iovec v[2] = {{buf, 10}, {buf + 10, 100}};
  return readv(c->fd[0], v, 2);
}
static long c_recv(struct Case* c) { return recv(c->fd[0], buf, sizeof buf, 0); }
static long c_read_socket(struct Case* c) { return read(c->fd[0], buf, sizeof buf); }
static long c_recvfrom_udp(struct Case* c) { return recvfrom(c->fd[0], buf, sizeof buf, 0, NULL, NULL); }
static long c_recvmsg(struct Case* c) {
  struct iovec v = {buf, sizeof buf};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  return recvmsg(c->fd[0], &m, 0);
}
static long c_accept(struct Case* c) {
  int fd = accept(c->fd[0], NULL, NULL);
  if (fd >= 0) close(fd);
  return fd >= 0 ? 0 : -1;
}
static long c_send_full(struct Case* c) { return send(c->fd[0], big, sizeof big, 0); }
static long c_write_full(struct Case* c) { return write(c->fd[0], big, sizeof big); }
static long c_poll(struct Case* c) {
  struct pollfd p = {c->fd[0], POLLIN, 0};
  return poll(&p, 1, -1);
}
static long c_ppoll(struct Case* c) {
  struct pollfd p = {c->fd[0], POLLIN, 0};
  return ppoll(&p, 1, NULL, NULL);
}
static long c_select(struct Case* c) {
  fd_set r;
  FD_ZERO(&r);
  FD_SET(c->fd[0], &r);
  return select(c->fd[0] + 1, &r, NULL, NULL, NULL);
}
static long c_epoll(struct Case* c) {
  struct epoll_event ev;
  return epoll_wait(c->fd[2], &ev, 1, -1);
}
static long c_sem_wait(struct Case* c) { return sem_wait(&c->sem); }
static long c_sem_timedwait(struct Case* c) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 60;
  return sem_timedwait(&c->sem, &ts);
}
static long c_cond_wait(struct Case* c) {
  pthread_mutex_lock(&c->mu);
  while (!c->ready) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  return 0;
}
static long c_connect(struct Case* c) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(c->fd[1], (struct sockaddr*)&a, &len);
  return connect(c->fd[0], (struct sockaddr*)&a, sizeof a);
}

// ---- releases --------------------------------------------------------------------

static void rel_write1(struct Case* c) {
  if (write(c->fd[1], "hello", 5) != 5) abort();
}
static void rel_send_udp(struct Case* c) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(c->fd[0], (struct sockaddr*)&a, &len);
  sendto(c->fd[1], "dgram", 5, 0, (struct sockaddr*)&a, sizeof a);
}
static void rel_connect_to_listener(struct Case* c) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(c->fd[0], (struct sockaddr*)&a, &len);
  c->fd[1] = socket(AF_INET, SOCK_STREAM, 0);
  connect(c->fd[1], (struct sockaddr*)&a, sizeof a);
}
static void rel_drain(struct Case* c) {
  // Reads whatever the writer queues until its call has returned; never
  // blocks, so a writer that finished early cannot leave main waiting.
  while (!atomic_load(&c->done)) {
    if (recv(c->fd[1], buf, sizeof buf, MSG_DONTWAIT) <= 0) sleep_ms(1);
  }
}
static void rel_sem(struct Case* c) { sem_post(&c->sem); }
static void rel_cond(struct Case* c) {
  pthread_mutex_lock(&c->mu);
  c->ready = 1;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}
static void rel_accept_queue(struct Case* c) {
  // Closes the other connectors (their SYN retries would compete for the
  // slot) and empties the listener's queue; the connect's next SYN retry
  // gets through.
  for (int i = 2; i < 4; ++i) {
    close(c->fd[i]);
    c->fd[i] = -1;
  }
  int fd;
  while ((fd = accept4(c->fd[1], NULL, NULL, SOCK_NONBLOCK)) >= 0) close(fd);
}

// ---- set-up ------------------------------------------------------------------------

static void fill(int fd) {
  // Fill the socket's buffers so that the next blocking send waits.
  while (send(fd, big, sizeof big, MSG_DONTWAIT) > 0) {
  }
}

static int tcp_listener(int backlog) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(l, (struct sockaddr*)&a, sizeof a);
  listen(l, backlog);
  return l;
}

static void close_all(struct Case* c) {
  for (int i = 0; i < 4; ++i) {
    if (c->fd[i] >= 0) close(c->fd[i]);
    c->fd[i] = -1;
  }
}

int main(int argc, char** argv) {
  int restart_mode = argc > 1 && strcmp(argv[1], "restart") == 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart_mode ? SA_RESTART : 0;
  sigaction(SIGUSR1, &sa, NULL);
  printf("handler %s SA_RESTART\n", restart_mode ? "with" : "without");
  setvbuf(stdout, NULL, _IOLBF, 0);

  struct Case c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < 4; ++i) c.fd[i] = -1;

#define CASE(NAME, CALL, RELEASE, RESTARTS) \
  c.name = NAME;                            \
  c.call = CALL;                            \
  c.release = RELEASE;                      \
  c.restarts = RESTARTS;                    \
  run(&c, restart_mode);                    \
  close_all(&c)

  if (pipe(c.fd) != 0) return 1;
  CASE("read, pipe", c_read_pipe, rel_write1, 1);
  if (pipe(c.fd) != 0) return 1;
  CASE("readv, pipe", c_readv_pipe, rel_write1, 1);
  socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
  CASE("recv, unix stream", c_recv, rel_write1, 1);
  socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
  CASE("read, unix stream", c_read_socket, rel_write1, 1);
  socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
  CASE("recvmsg, unix stream", c_recvmsg, rel_write1, 1);
  {
    c.fd[0] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(c.fd[0], (struct sockaddr*)&a, sizeof a);
    c.fd[1] = socket(AF_INET, SOCK_DGRAM, 0);
    CASE("recvfrom, udp", c_recvfrom_udp, rel_send_udp, 1);
  }
  c.fd[0] = tcp_listener(16);
  CASE("accept, tcp", c_accept, rel_connect_to_listener, 1);
  socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
  fill(c.fd[0]);
  CASE("send 1 MiB, full unix stream", c_send_full, rel_drain, 1);
  socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
  fill(c.fd[0]);
  CASE("write 1 MiB, full unix stream", c_write_full, rel_drain, 1);
  {
    // Timeouts make socket calls fail with EINTR even with SA_RESTART.
    struct timeval tv = {60, 0};
    socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd);
    setsockopt(c.fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CASE("recv with SO_RCVTIMEO", c_recv, rel_write1, 0);
    c.fd[0] = tcp_listener(16);
    setsockopt(c.fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CASE("accept with SO_RCVTIMEO", c_accept, rel_connect_to_listener, 0);
  }
  if (pipe(c.fd) != 0) return 1;
  CASE("poll, pipe, no timeout", c_poll, rel_write1, 0);
  if (pipe(c.fd) != 0) return 1;
  CASE("ppoll, pipe, no timeout", c_ppoll, rel_write1, 0);
  if (pipe(c.fd) != 0) return 1;
  CASE("select, pipe, no timeout", c_select, rel_write1, 0);
  {
    if (pipe(c.fd) != 0) return 1;
    c.fd[2] = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c.fd[0]};
    epoll_ctl(c.fd[2], EPOLL_CTL_ADD, c.fd[0], &ev);
    CASE("epoll_wait, pipe, no timeout", c_epoll, rel_write1, 0);
  }
  sem_init(&c.sem, 0, 0);
  CASE("sem_wait", c_sem_wait, rel_sem, 1);
  sem_destroy(&c.sem);
  sem_init(&c.sem, 0, 0);
  CASE("sem_timedwait", c_sem_timedwait, rel_sem, 0);
  sem_destroy(&c.sem);
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  c.ready = 0;
  CASE("pthread_cond_wait", c_cond_wait, rel_cond, 2);
  {
    // A blocking connect to a listener whose queue is full waits for a SYN
    // retry to get through. With SA_RESTART it goes on waiting (and then
    // succeeds once the queue is emptied), without it fails with EINTR.
    int l = tcp_listener(0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr*)&a, &len);
    for (int i = 2; i < 4; ++i) {
      c.fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(c.fd[i], (struct sockaddr*)&a, sizeof a);
    }
    sleep_ms(20);
    c.fd[0] = socket(AF_INET, SOCK_STREAM, 0);
    c.fd[1] = l;
    fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK);
    CASE("connect, full listen queue", c_connect, rel_accept_queue, 1);
  }
  return 0;
}
