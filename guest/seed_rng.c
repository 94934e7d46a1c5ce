// Credits the guest kernel's RNG with a seed taken from the kernel command line
// (sim.seed=N), so getrandom() never blocks and every boot of the same node with the same
// seed draws the same random numbers. Without it, the kernel gathers timer-jitter entropy,
// which under TCG costs ~4 s of virtual time (and far more of wall time) per boot, and dropbear
// waits for it. Deterministic guest randomness is what a replayable simulation needs; it is
// not a secure RNG, and the guests are test machines on a simulated network.
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/random.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { SEED_BYTES = 64 };

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// `seed-rng SEED reseed` (snapshot clones): the template's kernel RNG was already seeded, so
// the new seed would only be drawn at the next scheduled reseed (seconds later); clones of
// one template would meanwhile draw the same numbers (boot_id, TCP secrets). RNDRESEEDCRNG
// rekeys it from the pool, new seed included, at once.
int main(int argc, char **argv) {
  bool reseed = argc == 3 && strcmp(argv[2], "reseed") == 0;
  if (argc != 2 && !reseed) {
    fprintf(stderr, "usage: seed-rng SEED [reseed]\n");
    return 2;
  }
  uint64_t state = strtoull(argv[1], NULL, 0);
  struct {
    struct rand_pool_info info;
    uint8_t bytes[SEED_BYTES];
  } req;
  for (int i = 0; i < SEED_BYTES; i += 8) {
    uint64_t v = splitmix64(&state);
    memcpy(req.bytes + i, &v, 8);
  }
  req.info.entropy_count = SEED_BYTES * 8;
  req.info.buf_size = SEED_BYTES;
  int fd = open("/dev/urandom", O_WRONLY);
  if (fd < 0 || ioctl(fd, RNDADDENTROPY, &req.info) != 0) {
    perror("seed-rng");
    return 1;
  }
  // ENODATA: the RNG was not ready yet, and crediting the seed just now rekeyed it anyway.
  if (reseed && ioctl(fd, RNDRESEEDCRNG) != 0 && errno != ENODATA) {
    perror("seed-rng: reseed");
    return 1;
  }
  close(fd);
  return 0;
}
