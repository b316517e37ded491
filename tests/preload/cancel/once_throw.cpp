// A pthread_once routine that throws: the exception crosses unblock's own
// frame (its reset guard's destructor runs), the control stays re-runnable,
// and the next call runs the routine again. Regression: the library's
// private libgcc personality aborted when another unwinder was the first to
// cross its frames. Threads make the preloaded run use fibers.
#include <pthread.h>

#include <cstdio>
#include <stdexcept>

namespace {
pthread_once_t once = PTHREAD_ONCE_INIT;
int runs;
void init() {
  if (++runs == 1) throw std::runtime_error("first run fails");
}
void* caller(void*) {
  try {
    pthread_once(&once, init);
  } catch (const std::exception& e) {
    std::printf("caught: %s\n", e.what());
  }
  return nullptr;
}
}  // namespace

int main() {
  pthread_t t;
  pthread_create(&t, nullptr, caller, nullptr);
  pthread_join(t, nullptr);
  pthread_once(&once, init);
  pthread_once(&once, init);
  std::printf("runs %d\n", runs);
  return 0;
}
