/* Minimal notification reader: the kernel's limit for notifications with
 * paths. Counts FAN_OPEN events under DIR, resolving each path with
 * readlink, and kernel overflows. usage: reader DIR; prints "ready",
 * exits on SIGTERM with counts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/fanotify.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);
  int fd = fanotify_init(FAN_CLOEXEC | FAN_CLASS_NOTIF, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[1]) < 0) {
    perror("fanotify");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static char buf[262144] __attribute__((aligned(8)));
  char link[64], path[PATH_MAX];
  long events = 0, overflows = 0, resolved = 0;
  while (!stop) {
    ssize_t len = read(fd, buf, sizeof buf);
    if (len < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
      if (m->mask & FAN_Q_OVERFLOW) overflows++;
      if (m->fd >= 0) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
        if (readlink(link, path, sizeof path) > 0) resolved++;
        close(m->fd);
        events++;
      }
    }
  }
  printf("{\"events\":%ld,\"resolved\":%ld,\"overflows\":%ld}\n", events, resolved, overflows);
  return 0;
}
