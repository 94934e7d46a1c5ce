// Test probe, run inside a guest: sends COUNT UDP datagrams to IP:PORT, each carrying (as
// decimal text) the TSC read right before its sendto. Under -icount the TSC is QEMU's
// virtual clock in ns, so the trace's send time of each frame minus the stamp it carries
// is what the send path costs in virtual time. Sleeps 100 ms (virtual) between datagrams.
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return ((uint64_t)hi << 32) | lo;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: udp_stamp IP PORT COUNT\n");
    return 2;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return perror("socket"), 1;
  int count = atoi(argv[3]);
  for (int i = 0; i < count; i++) {
    char msg[64];
    uint64_t t = rdtsc();
    int n = snprintf(msg, sizeof msg, "tsc=%020" PRIu64, t);
    if (sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&to, sizeof to) < 0) return perror("sendto"), 1;
    printf("%" PRIu64 "\n", t);
    struct timespec pause = {0, 100000000};
    nanosleep(&pause, NULL);
  }
  return 0;
}
