// A Java program in the thread-per-connection style, run plain and under
// unblock by tests/integration/thirdparty.sh: a ServerSocket with a thread
// per connection, a fixed pool of client threads checking every echo,
// System.gc() while they run (safepoints stop every Java thread), monitors
// (synchronized), a bounded blocking queue, and Thread.interrupt() of a
// sleeping thread. The JVM protects guard zones in every thread stack and
// handles SIGSEGV itself, which a fiber runtime must survive.
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

public class ThreadsEcho {
  static void serve(Socket s) {
    try (s) {
      InputStream in = s.getInputStream();
      OutputStream out = s.getOutputStream();
      byte[] b = new byte[4096];
      int n;
      while ((n = in.read(b)) > 0) out.write(b, 0, n);
    } catch (IOException e) {
      // the client went away
    }
  }

  public static void main(String[] args) throws Exception {
    ServerSocket ss = new ServerSocket(0, 200, InetAddress.getByName("127.0.0.1"));
    int port = ss.getLocalPort();
    Thread acceptor = new Thread(() -> {
      try {
        while (true) {
          Socket s = ss.accept();
          new Thread(() -> serve(s)).start();
        }
      } catch (IOException e) {
        // closed at exit
      }
    });
    acceptor.setDaemon(true);
    acceptor.start();

    ExecutorService clients = Executors.newFixedThreadPool(16);
    AtomicLong total = new AtomicLong();
    List<Future<?>> done = new ArrayList<>();
    for (int c = 0; c < 50; c++) {
      final int id = c;
      done.add(clients.submit(() -> {
        try (Socket s = new Socket("127.0.0.1", port)) {
          s.setSoTimeout(20000);
          DataInputStream in = new DataInputStream(s.getInputStream());
          OutputStream out = s.getOutputStream();
          for (int i = 0; i < 200; i++) {
            byte[] m = ("msg " + id + " " + i + " ").repeat(10).getBytes();
            out.write(m);
            byte[] r = new byte[m.length];
            in.readFully(r);
            if (!Arrays.equals(m, r)) throw new IllegalStateException("echo mismatch");
            total.addAndGet(r.length);
            if (i % 50 == 0) System.gc();
          }
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
        return null;
      }));
    }
    for (Future<?> f : done) f.get();
    clients.shutdown();
    System.out.println("echoed bytes " + total.get());

    Object lock = new Object();
    int[] count = {0};
    Thread[] ts = new Thread[8];
    for (int i = 0; i < 8; i++) {
      ts[i] = new Thread(() -> {
        for (int j = 0; j < 100000; j++) {
          synchronized (lock) {
            count[0]++;
          }
        }
      });
      ts[i].start();
    }
    for (Thread t : ts) t.join();
    System.out.println("monitor count " + count[0]);

    BlockingQueue<Integer> q = new ArrayBlockingQueue<>(4);
    Thread producer = new Thread(() -> {
      try {
        for (int i = 0; i < 10000; i++) q.put(i);
        q.put(-1);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    producer.start();
    long sum = 0;
    for (int x; (x = q.take()) >= 0;) sum += x;
    System.out.println("queue sum " + sum);

    Thread sleeper = new Thread(() -> {
      try {
        Thread.sleep(100000);
        System.out.println("slept through");
      } catch (InterruptedException e) {
        System.out.println("sleep interrupted");
      }
    });
    sleeper.start();
    Thread.sleep(50);
    sleeper.interrupt();
    sleeper.join();
    ss.close();
  }
}
