// C++20's waiting primitives from libstdc++, which wait with raw futexes
// (syscall(SYS_futex, ...)): std::atomic<int>::wait/notify_one/notify_all,
// std::counting_semaphore (also timed), std::binary_semaphore ping-pong and
// std::latch, with many threads.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <latch>
#include <semaphore>
#include <thread>
#include <vector>

int main() {
  // A baton passed around a ring of 64 threads through one atomic, 20 times.
  constexpr int kRing = 64, kLaps = 20;
  std::atomic<int> baton{0};
  std::vector<std::thread> ring;
  for (int id = 0; id < kRing; ++id) {
    ring.emplace_back([&, id] {
      for (int lap = 0; lap < kLaps; ++lap) {
        int want = lap * kRing + id;
        for (int v = baton.load(); v != want; v = baton.load()) baton.wait(v);
        baton.store(want + 1);
        baton.notify_all();
      }
    });
  }
  for (auto& t : ring) t.join();
  std::printf("atomic wait/notify_all ring: %d\n", baton.load());

  // notify_one: 100 waiters released one at a time.
  std::atomic<int> tokens{0}, taken{0};
  std::vector<std::thread> takers;
  for (int i = 0; i < 100; ++i) {
    takers.emplace_back([&] {
      for (;;) {
        int v = tokens.load();
        if (v == 0) {
          tokens.wait(0);
          continue;
        }
        if (tokens.compare_exchange_weak(v, v - 1)) break;
      }
      taken.fetch_add(1);
    });
  }
  for (int i = 0; i < 100; ++i) {
    tokens.fetch_add(1);
    tokens.notify_one();
  }
  for (auto& t : takers) t.join();
  std::printf("atomic notify_one: %d taken\n", taken.load());

  // counting_semaphore: at most 3 of 50 threads inside at once.
  std::counting_semaphore<3> slots(3);
  std::atomic<int> inside{0}, most{0}, done{0};
  std::vector<std::thread> users;
  for (int i = 0; i < 50; ++i) {
    users.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        slots.acquire();
        int n = inside.fetch_add(1) + 1;
        for (int m = most.load(); n > m && !most.compare_exchange_weak(m, n);) {
        }
        std::this_thread::yield();
        inside.fetch_sub(1);
        slots.release();
      }
      done.fetch_add(1);
    });
  }
  for (auto& t : users) t.join();
  std::printf("counting_semaphore<3>: %d threads done, at most %d inside\n", done.load(), most.load());

  // Timed acquire that times out, and one that succeeds when released.
  std::counting_semaphore<1> empty(0);
  auto t0 = std::chrono::steady_clock::now();
  bool got = empty.try_acquire_for(std::chrono::milliseconds(30));
  bool late = std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(30);
  std::printf("try_acquire_for on an empty semaphore: %d, late enough %d\n", got, late);
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    empty.release();
  });
  got = empty.try_acquire_for(std::chrono::seconds(10));
  releaser.join();
  std::printf("try_acquire_for released by another thread: %d\n", got);

  // binary_semaphore ping-pong.
  std::binary_semaphore ping(0), pong(0);
  int rounds = 0;
  std::thread partner([&] {
    for (int i = 0; i < 3000; ++i) {
      ping.acquire();
      pong.release();
    }
  });
  for (int i = 0; i < 3000; ++i) {
    ping.release();
    pong.acquire();
    ++rounds;
  }
  partner.join();
  std::printf("binary_semaphore ping-pong: %d rounds\n", rounds);

  // latch: 80 threads arrive and wait; main waits too.
  std::latch gate(81);
  std::atomic<int> past{0};
  std::vector<std::thread> crowd;
  for (int i = 0; i < 80; ++i) {
    crowd.emplace_back([&] {
      gate.arrive_and_wait();
      past.fetch_add(1);
    });
  }
  gate.arrive_and_wait();
  for (auto& t : crowd) t.join();
  std::printf("latch: %d threads past\n", past.load());
  return 0;
}
