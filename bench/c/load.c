/* Load generator: opens and closes files in a directory, round-robin, N
 * times, as fast as possible or at a fixed rate, and reports ops/s and
 * open() latency percentiles as one JSON line.
 * usage: load DIR NFILES N [RATE_PER_S] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Paced runs sleep in steps of about this much (5,000 wake-ups/s). */
#define QUANTUM_S 200e-6

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s DIR NFILES N [RATE]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  long nfiles = atol(argv[2]), n = atol(argv[3]);
  double rate = argc > 4 ? atof(argv[4]) : 0;
  char **paths = calloc(nfiles, sizeof *paths);
  for (long i = 0; i < nfiles; i++) {
    if (asprintf(&paths[i], "%s/f%ld", dir, i) < 0) return 1;
  }
  float *lat = malloc(sizeof(float) * n);
  long errors = 0;
  prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us, not the default 50 us */
  double start = now_s();
  for (long i = 0; i < n; i++) {
    if (rate > 0) {
      /* Ahead of schedule: sleep QUANTUM past the due time, so pacing does
       * not hold a CPU the daemon could use; the opens that fell due
       * meanwhile then run back to back. */
      double due = start + i / rate, ahead = due - now_s();
      if (ahead > 0) {
        ahead += QUANTUM_S;
        struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
    double t0 = now_s();
    int fd = open(paths[i % nfiles], O_RDONLY);
    double t1 = now_s();
    lat[i] = (float)((t1 - t0) * 1e6);
    if (fd < 0) errors++;
    else close(fd);
  }
  double secs = now_s() - start;
  qsort(lat, n, sizeof(float), cmp);
  printf("{\"ops\":%ld,\"errors\":%ld,\"secs\":%.6f,\"ops_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f}\n",
         n, errors, secs, n / secs, lat[n / 2], lat[(long)(n * 0.99)], lat[(long)(n * 0.999)]);
  return 0;
}
