/* Minimal permission responder: the kernel's limit for a permission round
 * trip. Answers FAN_ALLOW to every FAN_OPEN_PERM under DIR at once.
 * usage: responder DIR; prints "ready", exits on SIGTERM with a count. */
#include <errno.h>
#include <fcntl.h>
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
  int fd = fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[1]) < 0) {
    perror("fanotify");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static char buf[65536] __attribute__((aligned(8)));
  long count = 0;
  while (!stop) {
    ssize_t len = read(fd, buf, sizeof buf);
    if (len < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
      if (m->fd >= 0) {
        struct fanotify_response r = {.fd = m->fd, .response = FAN_ALLOW};
        if (write(fd, &r, sizeof r) < 0) perror("write");
        close(m->fd);
        count++;
      }
    }
  }
  printf("{\"answered\":%ld}\n", count);
  return 0;
}
