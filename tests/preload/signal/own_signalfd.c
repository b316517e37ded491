// The program's own signalfd: SIGUSR1 and SIGUSR2 are blocked in every
// thread (main blocks them before creating any), one thread reads them from
// a signalfd with a blocking read, another sends them with kill() and
// sigqueue(). Each read returns the signal that was sent, with its details.
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum { kSignals = 4 };

static int sfd;
static sem_t consumed;

static void* reader(void* arg) {
  (void)arg;
  for (int i = 0; i < kSignals; i++) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof si);
    if (n != (ssize_t)sizeof si) {
      printf("read %zd\n", n);
      return NULL;
    }
    printf("read %s, code %s, from this process: %s, value %d\n", si.ssi_signo == SIGUSR1 ? "SIGUSR1" : "SIGUSR2",
           si.ssi_code == SI_USER ? "SI_USER" : si.ssi_code == SI_QUEUE ? "SI_QUEUE" : "other",
           (pid_t)si.ssi_pid == getpid() ? "yes" : "no", si.ssi_code == SI_QUEUE ? si.ssi_int : 0);
    sem_post(&consumed);
  }
  return NULL;
}

static int first_to_send;  // "early": main sent the first one before any thread

static void* sender(void* arg) {
  (void)arg;
  usleep(20000);  // the reader very likely waits in read() by now
  if (first_to_send > 0) {
    while (sem_wait(&consumed) != 0) {
    }
  }
  for (int i = first_to_send; i < kSignals; i++) {
    int sig = i % 2 ? SIGUSR2 : SIGUSR1;
    if (i < 2) {
      kill(getpid(), sig);
    } else {
      union sigval v;
      v.sival_int = 100 + i;
      sigqueue(getpid(), sig, v);
    }
    // One at a time: two pending instances of a standard signal merge.
    while (sem_wait(&consumed) != 0) {
    }
  }
  return NULL;
}

static int make_signalfd(const sigset_t* set) {
  sfd = signalfd(-1, set, SFD_CLOEXEC);
  if (sfd < 0) perror("signalfd");
  return sfd;
}

// "early": the signalfd exists before the first thread (before the runtime
// starts under the preload), and the first signal is already pending when
// the first thread starts; "late": the signalfd is made after, as a program
// that sets up its signal handling once its threads run.
int main(int argc, char** argv) {
  int late = argc > 1 && strcmp(argv[1], "late") == 0;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  sem_init(&consumed, 0, 0);
  pthread_t r, s;
  if (!late) {
    if (make_signalfd(&set) < 0) return 1;
    kill(getpid(), SIGUSR1);
    first_to_send = 1;
  }
  pthread_create(&s, NULL, sender, NULL);
  if (late && make_signalfd(&set) < 0) return 1;
  pthread_create(&r, NULL, reader, NULL);
  pthread_join(s, NULL);
  pthread_join(r, NULL);
  sigset_t pending;
  sigpending(&pending);
  printf("nothing left pending: %s\n",
         !sigismember(&pending, SIGUSR1) && !sigismember(&pending, SIGUSR2) ? "yes" : "no");
  return 0;
}
