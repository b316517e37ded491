// C++ destructors run as the forced unwind of a cancelled thread passes
// their frames, innermost first; catch (...) sees the unwind and must
// rethrow it (abi::__forced_unwind); a catch of an ordinary exception type
// does not stop it; thread_local destructors run at the thread's exit.
#include <cxxabi.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>

namespace {

struct Noisy {
  std::string name;
  explicit Noisy(std::string n) : name(std::move(n)) {}
  ~Noisy() {
    std::printf("  ~%s\n", name.c_str());
    std::fflush(stdout);
  }
};

struct TlsGuard {
  ~TlsGuard() {
    std::printf("  thread_local destructor\n");
    std::fflush(stdout);
  }
};
thread_local TlsGuard tls_guard;

int pipefd[2];

void deepest() {
  Noisy d("deepest");
  char c;
  ssize_t n = read(pipefd[0], &c, 1);
  std::printf("read returned %zd\n", n);
}

void middle() {
  Noisy m("middle");
  try {
    deepest();
  } catch (const std::runtime_error&) {
    std::printf("not reached: runtime_error\n");
  }
}

void* worker(void*) {
  (void)tls_guard;  // constructed on first use in this thread
  Noisy outer("outer");
  try {
    middle();
  } catch (abi::__forced_unwind&) {
    std::printf("  caught the forced unwind, rethrowing\n");
    std::fflush(stdout);
    throw;
  } catch (...) {
    std::printf("not reached: catch (...)\n");
  }
  return nullptr;
}

void* catch_all(void*) {
  Noisy n("catch_all local");
  try {
    timespec ts{1000, 0};
    nanosleep(&ts, nullptr);
  } catch (...) {
    std::printf("  catch (...) saw it, rethrowing\n");
    std::fflush(stdout);
    throw;
  }
  return nullptr;
}

void settle() {
  timespec ts{0, 30 * 1000 * 1000};
  nanosleep(&ts, nullptr);
}

void run(const char* name, void* (*fn)(void*)) {
  pthread_t t;
  pthread_create(&t, nullptr, fn, nullptr);
  settle();
  pthread_cancel(t);
  void* r = nullptr;
  int e = pthread_join(t, &r);
  std::printf("%s: join %d, %s\n", name, e, r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "returned");
  std::fflush(stdout);
}

}  // namespace

int main() {
  if (pipe(pipefd) != 0) return 2;
  run("nested frames", worker);
  run("catch all", catch_all);
  return 0;
}
