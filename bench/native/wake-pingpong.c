// wake-pingpong.c - how long a cross-thread wake-up takes on this machine.
// Two threads hand a token back and forth through two eventfds (the way
// whirlwind's I/O and JS threads wake each other); prints the mean round
// trip.  Not part of the build (bench/README.md, "Reading the time split"):
//
//   cc -O2 -pthread bench/native/wake-pingpong.c -o /tmp/wake-pingpong
//   /tmp/wake-pingpong                  # threads on whichever cores
//   taskset -c 0 /tmp/wake-pingpong     # both threads on one core
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { ROUND_TRIPS = 20000 };
static int to_peer, to_main;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void *peer(void *arg) {
  (void)arg;
  uint64_t v;
  for (int i = 0; i < ROUND_TRIPS; i++) {
    if (read(to_peer, &v, sizeof v) != sizeof v) return NULL;
    v = 1;
    if (write(to_main, &v, sizeof v) != sizeof v) return NULL;
  }
  return NULL;
}

int main(void) {
  to_peer = eventfd(0, 0);
  to_main = eventfd(0, 0);
  if (to_peer < 0 || to_main < 0) {
    perror("eventfd");
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, peer, NULL) != 0) return 1;
  double t0 = now_us();
  for (int i = 0; i < ROUND_TRIPS; i++) {
    uint64_t v = 1;
    if (write(to_peer, &v, sizeof v) != sizeof v || read(to_main, &v, sizeof v) != sizeof v) return 1;
  }
  double t1 = now_us();
  pthread_join(t, NULL);
  printf("eventfd ping-pong: %d round trips, %.1f us each\n", ROUND_TRIPS, (t1 - t0) / ROUND_TRIPS);
  return 0;
}
