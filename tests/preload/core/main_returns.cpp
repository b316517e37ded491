// main returning while other threads are parked ends the process with
// main's status; static destructors and atexit handlers run.
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

struct Global {
  ~Global() { std::printf("static destructor ran\n"); }
} global;

static void* sleeper(void*) {
  sleep(100);
  return nullptr;
}

int main() {
  std::atexit([] { std::printf("atexit ran\n"); });
  pthread_t t[20];
  for (auto& th : t) pthread_create(&th, nullptr, sleeper, nullptr);
  usleep(20000);
  std::printf("main returns 5\n");
  return 5;
}
