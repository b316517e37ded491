// C++ exceptions in flight in interleaved threads do not corrupt each other,
// and thread_local objects get their destructors at thread exit.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

static std::atomic<int> destroyed{0};
struct Tracker {
  int id = -1;
  ~Tracker() {
    if (id >= 0) destroyed.fetch_add(1);
  }
};
thread_local Tracker tracker;

static void* worker(void* arg) {
  long id = reinterpret_cast<long>(arg);
  tracker.id = static_cast<int>(id);
  int ok = 0;
  for (int round = 0; round < 50; ++round) {
    try {
      throw std::runtime_error("thread " + std::to_string(id) + " round " + std::to_string(round));
    } catch (const std::exception& e) {
      // Park while this exception is being handled; others throw meanwhile.
      usleep(100);
      if (std::uncaught_exceptions() != 0) return reinterpret_cast<void*>(-1);
      try {
        throw;
      } catch (const std::runtime_error& again) {
        std::string want = "thread " + std::to_string(id) + " round " + std::to_string(round);
        if (want == again.what() && std::current_exception()) ++ok;
      }
    }
  }
  return reinterpret_cast<void*>(static_cast<long>(ok));
}

int main() {
  pthread_t t[16];
  for (long i = 0; i < 16; ++i) pthread_create(&t[i], nullptr, worker, reinterpret_cast<void*>(i));
  long total = 0;
  for (auto& th : t) {
    void* r;
    pthread_join(th, &r);
    total += reinterpret_cast<long>(r);
  }
  std::printf("exceptions handled correctly: %ld of 800\n", total);
  std::printf("thread_local destructors: %d of 16\n", destroyed.load());
  return 0;
}
