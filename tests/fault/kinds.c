// One check per fault kind, on loopback TCP.
//
// kinds KIND   (run by tests/fault/run_kind.sh with KIND's points enabled)
// Prints "KIND: PASS ..." and exits 0 when the fault had the effect it
// should, "KIND: FAIL ..." and exits 1 otherwise. The check runs in a thread
// (a fiber under unblock), and starts more where it needs them.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char* kind;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int verdict(int ok, const char* fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("%s: %s %s\n", kind, ok ? "PASS" : "FAIL", msg);
  return ok ? 0 : 1;
}

static void die(const char* what) {
  perror(what);
  exit(2);
}

static int listener(struct sockaddr_in* a) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *a;
  if (l < 0 || bind(l, (struct sockaddr*)a, sizeof *a) || listen(l, 1024) || getsockname(l, (struct sockaddr*)a, &len))
    die("listen");
  return l;
}

// sv[0]: client end, sv[1]: server end.
static void tcp_pair(int sv[2]) {
  struct sockaddr_in a;
  int l = listener(&a);
  sv[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (sv[0] < 0 || connect(sv[0], (struct sockaddr*)&a, sizeof a)) die("connect");
  sv[1] = accept(l, NULL, NULL);
  if (sv[1] < 0) die("accept");
  close(l);
}

static int write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

// ---- delay: many calls slowed at once, the worker keeps running others ------

#define DELAY_MAX 2000
static int delay_fd[DELAY_MAX];
static long delay_start[DELAY_MAX], delay_end[DELAY_MAX];
static atomic_int delay_done, delay_got;

static void* delay_reader(void* arg) {
  long i = (long)arg;
  char c;
  delay_start[i] = now_ms();
  if (recv(delay_fd[i], &c, 1, 0) == 1) atomic_fetch_add(&delay_got, 1);
  delay_end[i] = now_ms();
  atomic_fetch_add(&delay_done, 1);
  return NULL;
}

static int check_delay(void) {
  int n = getenv("DELAY_CONNS") ? atoi(getenv("DELAY_CONNS")) : 1000;
  long ms = getenv("DELAY_MS") ? atol(getenv("DELAY_MS")) : 300;
  if (n > DELAY_MAX) n = DELAY_MAX;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  struct sockaddr_in a;
  int l = listener(&a);
  int peers[DELAY_MAX];
  for (int i = 0; i < n; ++i) {
    delay_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (delay_fd[i] < 0 || connect(delay_fd[i], (struct sockaddr*)&a, sizeof a)) die("connect");
    peers[i] = accept(l, NULL, NULL);
    if (peers[i] < 0 || write(peers[i], "x", 1) != 1) die("accept");
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t* t = calloc((size_t)n, sizeof *t);
  for (long i = 0; i < n; ++i) {
    if (pthread_create(&t[i], &attr, delay_reader, (void*)i)) die("pthread_create");
  }
  // This thread keeps ticking while the readers are delayed.
  int ticks = 0;
  while (atomic_load(&delay_done) < n) {
    usleep(10000);
    ++ticks;
  }
  for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
  long first = delay_start[0], last = delay_end[0], shortest = delay_end[0] - delay_start[0];
  for (int i = 0; i < n; ++i) {
    if (delay_start[i] < first) first = delay_start[i];
    if (delay_end[i] > last) last = delay_end[i];
    if (delay_end[i] - delay_start[i] < shortest) shortest = delay_end[i] - delay_start[i];
  }
  long span = last - first;
  // Delays that blocked the worker would add up to n * ms (300 s for the
  // test's 1,000 x 300 ms) and stop the ticker meanwhile; the bounds leave
  // room for a loaded machine (a 10 ms sleep taking 50 ms) and still fail
  // that by far.
  return verdict(atomic_load(&delay_got) == n && shortest >= ms - 5 && span < ms + 20000 && ticks >= 3,
                 "%d recv() each delayed %ldms: shortest %ldms, all done within %ldms, %d ticks meanwhile", n, ms,
                 shortest, span, ticks);
}

// ---- short / reduce ------------------------------------------------------------

static int drain_fd;
static void* drain(void* arg) {
  char buf[65536];
  long total = 0;
  ssize_t r;
  while ((r = read(drain_fd, buf, sizeof buf)) > 0) total += r;
  return (void*)total;
}

static int check_short(void) {
  int sv[2];
  tcp_pair(sv);
  drain_fd = sv[1];
  pthread_t t;
  pthread_create(&t, NULL, drain, NULL);
  static char buf[65536];
  ssize_t w = write(sv[0], buf, sizeof buf);
  long want = getenv("SHORT_BYTES") ? atol(getenv("SHORT_BYTES")) : 0;
  close(sv[0]);
  void* got;
  pthread_join(t, &got);
  int ok = w > 0 && w < (ssize_t)sizeof buf && (long)got == w && (!want || w == want);
  return verdict(ok, "write(65536) returned %zd, the peer received %ld", w, (long)got);
}

static int check_reduce(void) {
  int sv[2];
  tcp_pair(sv);
  char buf[4096] = {0};
  if (write_all(sv[1], buf, sizeof buf)) die("write");
  usleep(20000);
  ssize_t r = read(sv[0], buf, sizeof buf);
  return verdict(r > 0 && r < (ssize_t)sizeof buf, "read(4096) with 4096 queued returned %zd", r);
}

// ---- reset -----------------------------------------------------------------------

static int check_reset(void) {
  int sv[2];
  tcp_pair(sv);
  ssize_t s = send(sv[0], "hello", 5, MSG_NOSIGNAL);
  int send_err = errno;
  char buf[16];
  ssize_t r = read(sv[1], buf, sizeof buf);  // read() is not a send point
  int read_err = errno;
  return verdict(s < 0 && send_err == ECONNRESET && r < 0 && read_err == ECONNRESET,
                 "send: %zd %s; the peer's read: %zd %s", s, s < 0 ? strerrorname_np(send_err) : "",
                 r, r < 0 ? strerrorname_np(read_err) : "");
}

// ---- eof_after --------------------------------------------------------------------

static int check_eof_after(void) {
  int sv[2];
  tcp_pair(sv);
  char buf[100];
  memset(buf, 'a', sizeof buf);
  if (write_all(sv[1], buf, sizeof buf)) die("write");
  long total = 0;
  ssize_t r;
  int calls = 0;
  while ((r = recv(sv[0], buf, 7, 0)) > 0 && calls < 100) {
    total += r;
    ++calls;
  }
  // The connection is still open: only the fault can end the stream.
  return verdict(r == 0 && total == 10, "received %ld bytes in %d calls, then %zd", total, calls, r);
}

// ---- hang --------------------------------------------------------------------------

static int (*fiu_disable_fn)(const char*);
static void* disable_later(void* arg) {
  usleep(300000);
  fiu_disable_fn((const char*)arg);
  return NULL;
}

// A thread hung in a faulted recv is a cancellation point like any blocked
// recv: pthread_cancel ends it, and its hang registration goes with it (the
// later fiu_disable wakes the remaining waiters and must not meet it).
static int g_hang_fd = -1;
static void* hung_reader(void* arg) {
  (void)arg;
  char b[16];
  recv(g_hang_fd, b, sizeof b, 0);
  return (void*)1;
}

static int check_hang(void) {
  int sv[2];
  tcp_pair(sv);
  if (write_all(sv[1], "data", 4)) die("write");
  char buf[16];
  // SO_RCVTIMEO bounds a hung recv as it bounds a silent peer.
  struct timeval tv = {0, 200000};
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  long t0 = now_ms();
  ssize_t r1 = recv(sv[0], buf, sizeof buf, 0);
  int e1 = errno;
  long waited1 = now_ms() - t0;
  // Non-blocking: a hung peer means nothing to read now.
  ssize_t r2 = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  int e2 = errno;
  // Without a timeout it hangs until the point is disabled (here by the
  // program's own fiu_disable - unblock's, under the preload).
  struct timeval none = {0, 0};
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  fiu_disable_fn = (int (*)(const char*))dlsym(RTLD_DEFAULT, "fiu_disable");
  if (!fiu_disable_fn) return verdict(0, "fiu_disable not found (not under unblock?)");
  g_hang_fd = sv[0];
  pthread_t hung;
  pthread_create(&hung, NULL, hung_reader, NULL);
  usleep(100000);
  pthread_cancel(hung);
  void* hung_ret = NULL;
  pthread_join(hung, &hung_ret);
  if (hung_ret != PTHREAD_CANCELED) return verdict(0, "a hung recv was not cancelled (returned %p)", hung_ret);
  pthread_t t;
  pthread_create(&t, NULL, disable_later, (void*)"unblock/hang/posix/io/net/recv");
  t0 = now_ms();
  ssize_t r3 = recv(sv[0], buf, sizeof buf, 0);
  long waited3 = now_ms() - t0;
  pthread_join(t, NULL);
  return verdict(r1 < 0 && e1 == EAGAIN && waited1 >= 190 && r2 < 0 && e2 == EAGAIN && r3 == 4 && waited3 >= 250,
                 "SO_RCVTIMEO: %zd %s after %ldms; MSG_DONTWAIT: %zd %s; until disabled: %zd after %ldms", r1,
                 r1 < 0 ? strerrorname_np(e1) : "", waited1, r2, r2 < 0 ? strerrorname_np(e2) : "", r3, waited3);
}

// ---- corrupt -------------------------------------------------------------------------

static int check_corrupt(void) {
  int sv[2];
  tcp_pair(sv);
  char sent[1000], got[1000];
  for (int i = 0; i < 1000; ++i) sent[i] = (char)(i % 251);
  if (write_all(sv[1], sent, sizeof sent)) die("write");
  size_t total = 0;
  int calls = 0;
  while (total < sizeof got) {
    ssize_t r = recv(sv[0], got + total, sizeof got - total, 0);
    if (r <= 0) break;
    total += (size_t)r;
    ++calls;
  }
  int differ = 0;
  for (size_t i = 0; i < total; ++i) differ += sent[i] != got[i];
  return verdict(total == sizeof got && differ >= 1 && differ <= calls * 3,
                 "received %zu bytes in %d calls, %d differ from what was sent", total, calls, differ);
}

// ---- connect refused / timeout --------------------------------------------------------

static int check_refused(void) {
  struct sockaddr_in a;
  int l = listener(&a);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(c, (struct sockaddr*)&a, sizeof a);
  int e = errno;
  close(l);
  return verdict(r < 0 && e == ECONNREFUSED, "connect to a listening port: %d %s", r, r < 0 ? strerrorname_np(e) : "");
}

static int check_timeout(void) {
  struct sockaddr_in a;
  int l = listener(&a);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  long t0 = now_ms();
  int r1 = connect(c, (struct sockaddr*)&a, sizeof a);
  int e1 = errno;
  long waited1 = now_ms() - t0;
  close(c);
  c = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {0, 100000};
  setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  t0 = now_ms();
  int r2 = connect(c, (struct sockaddr*)&a, sizeof a);
  int e2 = errno;
  long waited2 = now_ms() - t0;
  close(l);
  return verdict(r1 < 0 && e1 == ETIMEDOUT && waited1 >= 290 && r2 < 0 && e2 == EINPROGRESS && waited2 >= 90 &&
                     waited2 < 290,
                 "connect: %s after %ldms; with SO_SNDTIMEO=100ms: %s after %ldms", strerrorname_np(e1), waited1,
                 strerrorname_np(e2), waited2);
}

// ---- eintr -----------------------------------------------------------------------------

static int check_eintr(void) {
  int sv[2];
  tcp_pair(sv);
  if (write_all(sv[1], "abc", 3)) die("write");
  usleep(20000);
  char buf[8];
  ssize_t r1 = recv(sv[0], buf, sizeof buf, 0);
  int e1 = errno;
  // A call that cannot sleep cannot be interrupted: no EINTR for it.
  ssize_t r2 = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  return verdict(r1 < 0 && e1 == EINTR && r2 == 3, "blocking recv: %zd %s; MSG_DONTWAIT recv: %zd", r1,
                 r1 < 0 ? strerrorname_np(e1) : "", r2);
}

// ---- zero and one byte --------------------------------------------------------------------

static int check_tiny(void) {
  int sv[2];
  tcp_pair(sv);
  char c = 'z', buf[4];
  ssize_t w0 = write(sv[0], &c, 0);
  ssize_t w1 = write(sv[0], &c, 1);
  ssize_t s0 = send(sv[0], &c, 0, 0);
  if (write_all(sv[0], "yy", 2)) die("write");
  usleep(20000);
  // (A zero-length TCP receive waits for data like any other: keep some queued.)
  ssize_t r0 = read(sv[1], buf, 0);
  ssize_t r1 = read(sv[1], buf, 1);
  ssize_t q0 = recv(sv[1], buf, 0, 0);
  return verdict(w0 == 0 && w1 == 1 && s0 == 0 && r0 == 0 && r1 == 1 && q0 == 0,
                 "write 0:%zd 1:%zd send 0:%zd read 0:%zd 1:%zd recv 0:%zd", w0, w1, s0, r0, r1, q0);
}

// ---- realistic errno choice ------------------------------------------------------------------

static int check_errno(void) {
  int sv[2];
  tcp_pair(sv);
  char buf[8];
  int bad = 0, n = 0;
  char seen[256] = "";
  for (int i = 0; i < 60; ++i) {
    int nb = i % 2;
    ssize_t r = recv(sv[0], buf, sizeof buf, nb ? MSG_DONTWAIT : 0);
    if (r >= 0) continue;
    ++n;
    int e = errno;
    int ok = e == ECONNRESET || e == ETIMEDOUT || (nb ? e == EAGAIN : e == EINTR);
    if (!ok) ++bad;
    if (!strstr(seen, strerrorname_np(e))) {
      strcat(seen, " ");
      strcat(seen, strerrorname_np(e));
    }
  }
  return verdict(n == 60 && bad == 0, "%d failed recv() on a TCP socket, %d unrealistic; seen:%s", n, bad, seen);
}

static void* run_check(void* fn) { return (void*)(long)((int (*)(void))fn)(); }

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: kinds KIND\n");
    return 2;
  }
  kind = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  static const struct {
    const char* name;
    int (*fn)(void);
  } checks[] = {{"delay", check_delay},     {"short", check_short},     {"reduce", check_reduce},
                {"reset", check_reset},     {"eof_after", check_eof_after}, {"hang", check_hang},
                {"corrupt", check_corrupt}, {"refused", check_refused}, {"timeout", check_timeout},
                {"eintr", check_eintr},     {"tiny", check_tiny},       {"errno", check_errno}};
  for (size_t i = 0; i < sizeof checks / sizeof *checks; ++i) {
    if (strcmp(kind, checks[i].name)) continue;
    pthread_t t;
    void* rc;
    if (pthread_create(&t, NULL, run_check, (void*)checks[i].fn)) die("pthread_create");
    pthread_join(t, &rc);
    return (int)(long)rc;
  }
  fprintf(stderr, "unknown kind %s\n", kind);
  return 2;
}
