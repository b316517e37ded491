// Rust's std locks on raw futexes (library/std/src/sys/pal/unix/futex.rs:
// syscall(SYS_futex, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, ...) with an
// absolute CLOCK_MONOTONIC timeout, FUTEX_WAKE_PRIVATE): Mutex, Condvar
// (also timed), RwLock, thread::park/unpark, Barrier and mpsc channels,
// with many threads.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    // 64 threads on 16 mutexes, yielding while holding one.
    let locks: Arc<Vec<Mutex<u64>>> = Arc::new((0..16).map(|_| Mutex::new(0)).collect());
    let handles: Vec<_> = (0..64u64)
        .map(|id| {
            let locks = Arc::clone(&locks);
            thread::spawn(move || {
                let mut seed = id * 7919 + 1;
                for _ in 0..200 {
                    seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
                    let m = ((seed >> 8) % 16) as usize;
                    let mut g = locks[m].lock().unwrap();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total: u64 = locks.iter().map(|m| *m.lock().unwrap()).sum();
    println!("mutex: total {}", total);

    // A bounded queue on a Mutex and two Condvars.
    let q = Arc::new((Mutex::new(Vec::<u64>::new()), Condvar::new(), Condvar::new()));
    let mut workers = Vec::new();
    for p in 0..8u64 {
        let q = Arc::clone(&q);
        workers.push(thread::spawn(move || {
            for i in 0..300 {
                let (m, not_empty, not_full) = &*q;
                let mut v = m.lock().unwrap();
                while v.len() >= 4 {
                    v = not_full.wait(v).unwrap();
                }
                v.push(p * 300 + i);
                not_empty.notify_one();
            }
            0u64
        }));
    }
    for _ in 0..8 {
        let q = Arc::clone(&q);
        workers.push(thread::spawn(move || {
            let mut sum = 0;
            for _ in 0..300 {
                let (m, not_empty, not_full) = &*q;
                let mut v = m.lock().unwrap();
                while v.is_empty() {
                    v = not_empty.wait(v).unwrap();
                }
                sum += v.remove(0);
                not_full.notify_all();
            }
            sum
        }));
    }
    let sum: u64 = workers.into_iter().map(|h| h.join().unwrap()).sum();
    let n = 8 * 300u64;
    println!("condvar queue: sum {} (expected {})", sum, n * (n - 1) / 2);

    // A timed Condvar wait nobody signals.
    let pair = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let (_g, res) = pair.1.wait_timeout(pair.0.lock().unwrap(), Duration::from_millis(30)).unwrap();
    println!("wait_timeout: timed out {}, late enough {}", res.timed_out(), start.elapsed() >= Duration::from_millis(30));

    // RwLock: readers and writers.
    let rw = Arc::new(RwLock::new(0u64));
    let hs: Vec<_> = (0..32)
        .map(|i| {
            let rw = Arc::clone(&rw);
            thread::spawn(move || {
                for _ in 0..100 {
                    if i % 4 == 0 {
                        let mut w = rw.write().unwrap();
                        let v = *w;
                        thread::yield_now();
                        *w = v + 1;
                    } else {
                        let r = rw.read().unwrap();
                        let _ = *r;
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    println!("rwlock: {}", *rw.read().unwrap());

    // park/unpark ping-pong.
    let rounds = Arc::new(AtomicUsize::new(0));
    let main_thread = thread::current();
    let r2 = Arc::clone(&rounds);
    let partner = thread::spawn(move || {
        for i in 0..2000 {
            while r2.load(Ordering::Acquire) != 2 * i + 1 {
                thread::park();
            }
            r2.store(2 * i + 2, Ordering::Release);
            main_thread.unpark();
        }
    });
    for i in 0..2000 {
        rounds.store(2 * i + 1, Ordering::Release);
        partner.thread().unpark();
        while rounds.load(Ordering::Acquire) != 2 * i + 2 {
            thread::park();
        }
    }
    partner.join().unwrap();
    println!("park/unpark ping-pong: {}", rounds.load(Ordering::Relaxed) / 2);

    // Barrier and channels.
    let barrier = Arc::new(Barrier::new(40));
    let (tx, rx) = mpsc::channel();
    let hs: Vec<_> = (0..40u64)
        .map(|i| {
            let b = Arc::clone(&barrier);
            let tx = tx.clone();
            thread::spawn(move || {
                b.wait();
                tx.send(i).unwrap();
            })
        })
        .collect();
    drop(tx);
    let got: u64 = rx.iter().sum();
    for h in hs {
        h.join().unwrap();
    }
    println!("barrier + channel: {}", got);
}
