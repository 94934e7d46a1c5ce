// Baseline for bench/tapio_bench.ts: a plain blocking read/write loop on a TAP device, in C.
// Usage: tap_loop NAME FRAME_FILE ROUNDS BATCH. Creates TAP NAME (blocking fd), prints
// "ready" and waits for a line on stdin (the harness moves the TAP into a namespace that
// answers pings and writes FRAME_FILE), then ROUNDS times: writes BATCH copies of the frame (an echo request),
// and reads until BATCH echo replies came back. Prints
// "frames N seconds S" (requests + replies).
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) return 2;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  struct ifreq req = {0};
  strncpy(req.ifr_name, argv[1], IFNAMSIZ - 1);
  req.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (fd < 0 || ioctl(fd, TUNSETIFF, &req) < 0) { perror("tap"); return 1; }
  long rounds = atol(argv[3]), batch = atol(argv[4]);
  printf("ready\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  unsigned char frame[2048];
  FILE *f = fopen(argv[2], "rb");
  size_t len = f ? fread(frame, 1, sizeof frame, f) : 0;
  if (len < 42) { fprintf(stderr, "bad frame file\n"); return 1; }
  unsigned char buf[2048];
  double t0 = now_s();
  long frames = 0;
  for (long r = 0; r < rounds; r++) {
    for (long i = 0; i < batch; i++) {
      if (write(fd, frame, len) != (ssize_t)len) { perror("write"); return 1; }
      frames++;
    }
    for (long got = 0; got < batch;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0) { perror("read"); return 1; }
      if (n >= 35 && buf[12] == 8 && buf[13] == 0 && buf[23] == 1 && buf[34] == 0) got++;
      frames++;
    }
  }
  printf("frames %ld seconds %.6f\n", frames, now_s() - t0);
  return 0;
}
