// A program that drives io_uring itself (as some databases do) keeps
// working: the library never touches rings it did not create.
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void* run(void* arg) {
  long id = (long)arg;
  struct io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) < 0) return (void*)-1;
  int p[2];
  if (pipe(p)) return (void*)-2;
  char msg[32], buf[32] = {0};
  snprintf(msg, sizeof msg, "ring %ld", id);
  struct io_uring_sqe* s = io_uring_get_sqe(&ring);
  io_uring_prep_read(s, p[0], buf, sizeof buf, 0);
  io_uring_sqe_set_data64(s, 7);
  io_uring_submit(&ring);
  usleep(1000);  // the read is pending in this program's own ring
  if (write(p[1], msg, strlen(msg)) < 0) return (void*)-3;
  struct io_uring_cqe* cqe;
  if (io_uring_wait_cqe(&ring, &cqe) < 0) return (void*)-4;
  long ok = cqe->user_data == 7 && cqe->res == (int)strlen(msg) && strcmp(buf, msg) == 0;
  io_uring_cqe_seen(&ring, cqe);
  io_uring_queue_exit(&ring);
  close(p[0]);
  close(p[1]);
  return (void*)ok;
}

int main(void) {
  pthread_t t[8];
  for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, run, (void*)i);
  long ok = 0;
  for (int i = 0; i < 8; i++) {
    void* r;
    pthread_join(t[i], &r);
    ok += (long)r;
  }
  printf("rings that worked: %ld of 8\n", ok);
  return 0;
}
