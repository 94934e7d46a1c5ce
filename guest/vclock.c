// vclock: the guest's window on virtual time. Under QEMU's -icount (shift=0) the TSC that
// rdtsc reads is QEMU's virtual clock in nanoseconds (TCG's rdtsc returns icount_get()),
// which is the trace's time axis: engine time 0 is QEMU's virtual clock 0. Measured on
// tapsim: a datagram sent right after rdtsc leaves the NIC a few µs later in the trace,
// the same few µs every time (guest/README.md).
//
//   vclock           virtual ns (= trace time): the TSC plus sim.t0
//   vclock -r        CLOCK_REALTIME as seconds.nanoseconds (busybox's date has no %N)
//   vclock -s BASE   set CLOCK_REALTIME to BASE (epoch seconds) + virtual time
//   vclock -c BASE   print how far CLOCK_REALTIME is from BASE + virtual time
//
// BASE defaults to sim.rtc_base= on the kernel command line (the run's --rtc-base). A
// snapshot clone's settings arrive after the restore in /run/tapsim/cmdline, which then
// replaces the kernel command line (the template's).
// sim.t0=NS (default 0) is the engine time at which this QEMU started: a node restarted at
// engine time t0 boots a fresh QEMU whose TSC starts at 0 again, and its clock must read
// RTC base + t0 + TSC, to the nanosecond, like a node that never went down. A snapshot
// clone's TSC starts where its template parked, so its sim.t0 is negative.
// -s applies an offset (clock_adjtime ADJ_SETOFFSET) measured between two reads taken
// back to back in user space, so the syscall's own latency does not enter the result.
#define _GNU_SOURCE  // clock_adjtime
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>

enum { NS_PER_S = 1000000000 };

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  // lfence: the read is not hoisted above earlier instructions (a no-op under TCG, right
  // on hardware).
  __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return ((uint64_t)hi << 32) | lo;
}

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/** The value of `key` (e.g. "sim.rtc_base=") on the kernel command line, into *out; false when absent. */
static bool cmdline_value(const char *key, int64_t *out) {
  FILE *f = fopen("/run/tapsim/cmdline", "r");
  if (!f) f = fopen("/proc/cmdline", "r");
  if (!f) return false;
  char line[4096];
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  for (char *p = line; (p = strstr(p, key)) != NULL; p++) {
    if (p == line || p[-1] == ' ') {
      *out = strtoll(p + strlen(key), NULL, 10);
      return true;
    }
  }
  return false;
}

static int64_t base_from_cmdline(void) {
  int64_t v;
  return cmdline_value("sim.rtc_base=", &v) ? v : -1;
}

/** Engine time at this QEMU's start (sim.t0), 0 for a node's first boot. */
static int64_t t0_ns(void) {
  static bool known = false;
  static int64_t t0 = 0;
  if (!known) {
    if (!cmdline_value("sim.t0=", &t0)) t0 = 0;
    known = true;
  }
  return t0;
}

/** One paired read: CLOCK_REALTIME and the virtual clock at (about) the same instant. */
struct pair {
  int64_t real_ns;
  int64_t virtual_ns; /* midpoint of the two rdtsc around the clock read */
  int64_t window_ns;  /* the two rdtsc apart: the pair's uncertainty is half of it */
};

static struct pair read_pair(void) {
  struct pair best = {0, 0, INT64_MAX};
  int64_t t0 = t0_ns();  // read before the pairs: the file read must not widen a window
  // The narrowest of a few tries: an interrupt between the reads widens the window.
  for (int i = 0; i < 5; i++) {
    uint64_t a = rdtsc();
    int64_t real = realtime_ns();
    uint64_t b = rdtsc();
    int64_t window = (int64_t)(b - a);
    if (window < best.window_ns) best = (struct pair){real, t0 + (int64_t)(a + (b - a) / 2), window};
  }
  return best;
}

static int64_t base_arg(int argc, char **argv) {
  if (argc >= 3) {
    char *end;
    errno = 0;
    long long v = strtoll(argv[2], &end, 10);
    if (errno == 0 && *end == 0 && end != argv[2] && v >= 0) return v;
    fprintf(stderr, "vclock: BASE %s: expected epoch seconds\n", argv[2]);
    exit(2);
  }
  int64_t v = base_from_cmdline();
  if (v < 0) {
    fprintf(stderr, "vclock: no BASE given and no sim.rtc_base= on the kernel command line\n");
    exit(2);
  }
  return v;
}

static int set_clock(int64_t base_s) {
  struct pair p = read_pair();
  int64_t offset = base_s * NS_PER_S + p.virtual_ns - p.real_ns;
  struct timex tx = {0};
  tx.modes = ADJ_SETOFFSET | ADJ_NANO;
  // The kernel wants tv_usec (ns with ADJ_NANO) in [0, 1e9), the sign in tv_sec.
  tx.time.tv_sec = offset / NS_PER_S;
  tx.time.tv_usec = offset % NS_PER_S;
  if (tx.time.tv_usec < 0) {
    tx.time.tv_sec -= 1;
    tx.time.tv_usec += NS_PER_S;
  }
  if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
    perror("vclock: clock_adjtime");
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 1) {
    int64_t t0 = t0_ns();
    printf("%" PRId64 "\n", t0 + (int64_t)rdtsc());
    return 0;
  }
  if (strcmp(argv[1], "-r") == 0 && argc == 2) {
    int64_t ns = realtime_ns();
    printf("%" PRId64 ".%09" PRId64 "\n", ns / NS_PER_S, ns % NS_PER_S);
    return 0;
  }
  if (strcmp(argv[1], "-s") == 0 && argc <= 3) return set_clock(base_arg(argc, argv));
  if (strcmp(argv[1], "-c") == 0 && argc <= 3) {
    int64_t base_s = base_arg(argc, argv);
    struct pair p = read_pair();
    printf("virtual_ns=%" PRId64 " realtime_ns=%" PRId64 " offset_ns=%" PRId64 " window_ns=%" PRId64 "\n", p.virtual_ns, p.real_ns,
           p.real_ns - (base_s * NS_PER_S + p.virtual_ns), p.window_ns);
    return 0;
  }
  fprintf(stderr, "usage: vclock [-r | -s [BASE] | -c [BASE]]\n");
  return 2;
}
