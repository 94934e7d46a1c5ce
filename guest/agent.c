// tapsim-agent: runs scenario commands in the guest and hands files back, driven only by
// UDP datagrams the host injects into the management NIC through the slice gate (so every
// message enters at a virtual time the engine chose). Everything it reports goes to the
// console (the engine reads it after each slice), one write() per line so lines of other
// writers never split one of ours. Nothing here reads randomness or the wall clock; times
// are the TSC, which under -icount is QEMU's virtual clock in ns (see vclock.c).
//
// Messages (one datagram each, at most MESSAGE_BYTES_MAX bytes, on eth0 only, port 5999):
//   run <id>\n<command>   sh -c <command>: cwd /root, own session, stdin /dev/null,
//                         stdout+stderr into a pipe whose lines are printed "[<id>] <line>"
//   kill <id>\n           SIGKILL the command's process group
//   collect <path>\n      print the file as base64 between "file" and "end" markers
// Console lines:
//   tapsim-agent: listening <addr>:5999
//   tapsim-agent: start <id> t=<ns>
//   [<id>] <output line>             (lines longer than LINE_BYTES_MAX are split)
//   tapsim-agent: exit <id> code=<n> t=<ns>   or   ... signal=<n> t=<ns>
//   tapsim-agent: file <path> size=<n>
//   tapsim-agent: data <base64>      (DATA_RAW_BYTES per line)
//   tapsim-agent: end <path> sha256=<hex>
//   tapsim-agent: nofile <path> <reason>
//   tapsim-agent: error <reason>     (the message is ignored)
//
// `tapsim-agent --identity DIR` (a snapshot template's init, parked): waits for a clone's
// identity, the first thing the host injects after the restore (qmp/snapshot.ts):
//   identity <archive bytes> <archive sha256>\n<sim.* words, as on a kernel command line>
//   chunk <index>\n<archive bytes from index * CHUNK_BYTES>   (binary; in order)
// writes DIR/cmdline and DIR/extra.cpio.gz (the node's extra archive, checked against its
// size and sha256), prints "tapsim-agent: identity ...", and forks: the parent exits 0 (init
// goes on), the child stays on as the node's agent on the same socket (exit 1 on a bad message).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
  AGENT_PORT = 5999,
  MESSAGE_BYTES_MAX = 1472,  // one Ethernet frame's UDP payload: no fragments
  COMMANDS_MAX = 256,
  ID_CHARS_MAX = 64,
  LINE_BYTES_MAX = 1024,   // output lines are split here: a console line stays < 2 KiB
  PATH_BYTES_MAX = 1024,
  DATA_RAW_BYTES = 765,    // 1020 base64 characters per data line
  CONSOLE_LINE_BYTES_MAX = 2048,
  CHUNK_BYTES = 1400,       // identity: archive bytes per chunk datagram
};
static const int64_t ARCHIVE_BYTES_MAX = 256 << 20;
static const int IDENTITY_RCVBUF_BYTES = 64 << 20;  // chunks come back to back: no drops
static const int64_t FILE_BYTES_MAX = 16 << 20;

struct command {
  bool used;
  char id[ID_CHARS_MAX + 1];
  pid_t pid;
  int fd;  // read end of its output pipe, -1 once at EOF
  size_t len;
  char line[LINE_BYTES_MAX];
};

static struct command commands[COMMANDS_MAX];

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return ((uint64_t)hi << 32) | lo;
}

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // the console is gone: nothing else to tell
    p += w;
    n -= (size_t)w;
  }
}

/** One console line, one write(). */
static void say(const char *fmt, ...) {
  char buf[CONSOLE_LINE_BYTES_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n] = '\n';
  write_all(buf, (size_t)n + 1);
}

static void print_output_line(struct command *c) {
  char buf[CONSOLE_LINE_BYTES_MAX];
  int head = snprintf(buf, sizeof buf, "[%s] ", c->id);
  memcpy(buf + head, c->line, c->len);
  buf[head + c->len] = '\n';
  write_all(buf, (size_t)head + c->len + 1);
  c->len = 0;
}

static void take_output(struct command *c, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') {
      print_output_line(c);
      continue;
    }
    if (c->len == LINE_BYTES_MAX) print_output_line(c);
    c->line[c->len++] = p[i];
  }
}

/** Reads what the pipe holds now (all of it once the command has exited); false at EOF. */
static bool drain(struct command *c) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
      take_output(c, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return !(n == 0 || (n < 0 && errno != EAGAIN));
  }
}

static void close_pipe(struct command *c) {
  if (c->fd < 0) return;
  if (c->len > 0) print_output_line(c);
  close(c->fd);
  c->fd = -1;
}

static bool valid_id(const char *id, size_t n) {
  if (n < 1 || n > ID_CHARS_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

static struct command *find(const char *id) {
  for (int i = 0; i < COMMANDS_MAX; i++)
    if (commands[i].used && strcmp(commands[i].id, id) == 0) return &commands[i];
  return NULL;
}

static struct command *free_slot(void) {
  for (int i = 0; i < COMMANDS_MAX; i++)
    if (!commands[i].used) return &commands[i];
  return NULL;
}

static void exec_child(int out_fd, const char *text) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();  // own session and process group: kill reaches everything it started
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  if (chdir("/root") != 0 && chdir("/") != 0) _exit(126);
  setenv("HOME", "/root", 1);
  setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
  execl("/bin/sh", "sh", "-c", text, (char *)NULL);
  _exit(127);
}

static void run_command(const char *id, const char *text) {
  if (find(id)) return say("tapsim-agent: error run %s: a command with this id is running", id);
  struct command *c = free_slot();
  if (!c) return say("tapsim-agent: error run %s: %d commands are running already", id, COMMANDS_MAX);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return say("tapsim-agent: error run %s: pipe: %s", id, strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return say("tapsim-agent: error run %s: fork: %s", id, strerror(errno));
  }
  if (pid == 0) exec_child(fds[1], text);
  uint64_t t = rdtsc();
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  *c = (struct command){.used = true, .pid = pid, .fd = fds[0]};
  strcpy(c->id, id);
  say("tapsim-agent: start %s t=%" PRIu64, id, t);
}

static void kill_command(const char *id) {
  struct command *c = find(id);
  if (!c) return say("tapsim-agent: error kill %s: no such command running", id);
  // Before its setsid() the child is still in our group: then it alone is killed.
  if (kill(-c->pid, SIGKILL) != 0) kill(c->pid, SIGKILL);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    uint64_t t = rdtsc();
    struct command *c = NULL;
    for (int i = 0; i < COMMANDS_MAX; i++)
      if (commands[i].used && commands[i].pid == pid) c = &commands[i];
    if (!c) continue;
    // Output written before the exit is in the pipe: print it first. A background child
    // still holding the pipe loses what it writes later.
    if (c->fd >= 0) drain(c);
    close_pipe(c);
    if (WIFSIGNALED(status)) say("tapsim-agent: exit %s signal=%d t=%" PRIu64, c->id, WTERMSIG(status), t);
    else say("tapsim-agent: exit %s code=%d t=%" PRIu64, c->id, WEXITSTATUS(status), t);
    c->used = false;
  }
}

// ---- SHA-256 (FIPS 180-4), for the collected file's checksum ----

struct sha256 {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t fill;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(struct sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->bytes = 0;
  s->fill = 0;
}

static void sha256_update(struct sha256 *s, const uint8_t *p, size_t n) {
  s->bytes += n;
  while (n > 0) {
    size_t take = 64 - s->fill < n ? 64 - s->fill : n;
    memcpy(s->block + s->fill, p, take);
    s->fill += take, p += take, n -= take;
    if (s->fill == 64) sha256_block(s, s->block), s->fill = 0;
  }
}

static void sha256_hex(struct sha256 *s, char out[65]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad = 0x80, zero = 0, len[8];
  sha256_update(s, &pad, 1);
  while (s->fill != 56) sha256_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(s, len, 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}

// ---- collect ----

static void base64(const uint8_t *p, size_t n, char *out) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? abc[v & 63] : '=';
  }
  out[o] = 0;
}

static bool valid_path(const char *p) {
  size_t n = strlen(p);
  if (n < 2 || n > PATH_BYTES_MAX || p[0] != '/') return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f) return false;  // the markers split on spaces
  return true;
}

static void collect(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return say("tapsim-agent: nofile %s %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return say("tapsim-agent: nofile %s not a regular file", path);
  }
  if (st.st_size > FILE_BYTES_MAX) {
    close(fd);
    return say("tapsim-agent: nofile %s larger than %" PRId64 " bytes", path, FILE_BYTES_MAX);
  }
  say("tapsim-agent: file %s size=%" PRId64, path, (int64_t)st.st_size);
  struct sha256 sha;
  sha256_init(&sha);
  uint8_t raw[DATA_RAW_BYTES];
  char text[DATA_RAW_BYTES / 3 * 4 + 1];
  int64_t left = st.st_size;
  while (left > 0) {
    size_t want = left < DATA_RAW_BYTES ? (size_t)left : DATA_RAW_BYTES, got = 0;
    while (got < want) {
      ssize_t n = read(fd, raw + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got < want) {
      close(fd);
      return say("tapsim-agent: nofile %s shrank while being read", path);
    }
    sha256_update(&sha, raw, got);
    base64(raw, got, text);
    say("tapsim-agent: data %s", text);
    left -= (int64_t)got;
  }
  close(fd);
  char hex[65];
  sha256_hex(&sha, hex);
  say("tapsim-agent: end %s sha256=%s", path, hex);
}

// ---- messages ----

/** "<verb> <arg>\n<rest>": splits msg in place; false if it has no such shape. */
static bool split_message(char *msg, char **verb, char **arg, char **rest) {
  char *nl = strchr(msg, '\n');
  if (!nl) return false;
  *nl = 0;
  *rest = nl + 1;
  char *sp = strchr(msg, ' ');
  if (!sp) return false;
  *sp = 0;
  *verb = msg;
  *arg = sp + 1;
  return true;
}

static void handle(char *msg, size_t n) {
  if (memchr(msg, 0, n)) return say("tapsim-agent: error message holds a NUL byte");
  msg[n] = 0;
  char *verb, *arg, *rest;
  if (!split_message(msg, &verb, &arg, &rest)) return say("tapsim-agent: error malformed message (expected \"<verb> <arg>\\n...\")");
  bool is_run = strcmp(verb, "run") == 0, is_kill = strcmp(verb, "kill") == 0;
  if (is_run || is_kill) {
    if (!valid_id(arg, strlen(arg))) return say("tapsim-agent: error %s: bad id (expected 1-64 of A-Z a-z 0-9 . _ -)", verb);
    if (is_kill) return *rest ? say("tapsim-agent: error kill %s: unexpected text after the id", arg) : kill_command(arg);
    if (!*rest) return say("tapsim-agent: error run %s: empty command", arg);
    return run_command(arg, rest);
  }
  if (strcmp(verb, "collect") == 0) {
    if (*rest || !valid_path(arg)) return say("tapsim-agent: error collect: bad path (absolute, no spaces or control characters, at most %d bytes)", PATH_BYTES_MAX);
    return collect(arg);
  }
  say("tapsim-agent: error unknown verb (expected run, kill or collect)");
}

/**
 * This end of the management link: sim.mgmt=<addr>/<prefix> on the kernel command line, or
 * in a snapshot clone's identity (/run/tapsim/cmdline, which then replaces it).
 */
static struct in_addr mgmt_addr(void) {
  struct in_addr a = {htonl(INADDR_ANY)};
  FILE *f = fopen("/run/tapsim/cmdline", "r");
  if (!f) f = fopen("/proc/cmdline", "r");
  if (!f) return a;
  char line[4096];
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  for (char *p = line; (p = strstr(p, "sim.mgmt=")) != NULL; p++) {
    if (p != line && p[-1] != ' ') continue;
    char addr[32];
    size_t len = strcspn(p + 9, "/ \n");
    if (len >= sizeof addr) break;
    memcpy(addr, p + 9, len);
    addr[len] = 0;
    inet_pton(AF_INET, addr, &a);
    break;
  }
  return a;
}

static int open_socket(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  // eth0 only: a datagram from the simulated network must never start a command.
  if (setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "eth0", 5) != 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(AGENT_PORT), .sin_addr = mgmt_addr()};
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;
  char text[INET_ADDRSTRLEN];
  say("tapsim-agent: listening %s:%d", inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text), AGENT_PORT);
  return s;
}

static int open_sigchld(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int serve(int sock);

// ---- identity (snapshot clones) ----

static bool write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[PATH_BYTES_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) return close(fd), false;
    c += w, n -= (size_t)w;
  }
  return close(fd) == 0;
}

struct identity {
  int64_t archive_bytes;
  char archive_sha[65];
  uint8_t *archive;
  int64_t chunks_got;
};

/** The identity datagram: its header, then the cmdline text, written to DIR/cmdline. */
static bool take_identity(struct identity *id, const char *dir, char *msg, size_t n) {
  msg[n] = 0;
  char *nl = memchr(msg, '\n', n);
  if (!nl || memchr(msg, 0, n)) return false;
  *nl = 0;
  if (sscanf(msg, "identity %" SCNd64 " %64[0-9a-f]", &id->archive_bytes, id->archive_sha) != 2) return false;
  if (id->archive_bytes < 0 || id->archive_bytes > ARCHIVE_BYTES_MAX || strlen(id->archive_sha) != 64) return false;
  id->archive = malloc((size_t)id->archive_bytes + 1);
  if (!id->archive) return false;
  return write_file(dir, "cmdline", nl + 1, strlen(nl + 1));
}

/** One chunk, in order: its bytes go to their place in the archive. */
static bool take_chunk(struct identity *id, const char *msg, size_t n) {
  const char *nl = memchr(msg, '\n', n);
  int64_t index;
  if (!nl || sscanf(msg, "chunk %" SCNd64, &index) != 1 || index != id->chunks_got) return false;
  size_t len = n - (size_t)(nl + 1 - msg);
  int64_t at = index * CHUNK_BYTES;
  if (at + (int64_t)len > id->archive_bytes || (len != CHUNK_BYTES && at + (int64_t)len != id->archive_bytes)) return false;
  memcpy(id->archive + at, nl + 1, len);
  id->chunks_got += 1;
  return true;
}

static int identity_main(const char *dir) {
  int sock = open_socket();
  if (sock < 0) return say("tapsim-agent: error cannot listen on eth0 port %d: %s", AGENT_PORT, strerror(errno)), 1;
  setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &IDENTITY_RCVBUF_BYTES, sizeof IDENTITY_RCVBUF_BYTES);
  static char msg[MESSAGE_BYTES_MAX + 1];
  struct identity id = {.archive_bytes = -1};
  int64_t chunks_max = ARCHIVE_BYTES_MAX / CHUNK_BYTES + 2;
  for (int64_t i = 0; i <= chunks_max; i++) {
    ssize_t got = recv(sock, msg, MESSAGE_BYTES_MAX + 1, MSG_TRUNC);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0 || got > MESSAGE_BYTES_MAX) return say("tapsim-agent: error identity: bad datagram (%zd bytes)", got), 1;
    bool ok = id.archive_bytes < 0 ? take_identity(&id, dir, msg, (size_t)got) : take_chunk(&id, msg, (size_t)got);
    if (!ok) return say("tapsim-agent: error identity: malformed or out-of-order message %" PRId64, i), 1;
    if (id.chunks_got * CHUNK_BYTES >= id.archive_bytes) break;
  }
  struct sha256 h;
  char hex[65];
  sha256_init(&h);
  sha256_update(&h, id.archive, (size_t)id.archive_bytes);
  sha256_hex(&h, hex);
  if (strcmp(hex, id.archive_sha) != 0) return say("tapsim-agent: error identity: archive sha256 %s, expected %s", hex, id.archive_sha), 1;
  if (!write_file(dir, "extra.cpio.gz", id.archive, (size_t)id.archive_bytes)) return say("tapsim-agent: error identity: cannot write %s/extra.cpio.gz", dir), 1;
  say("tapsim-agent: identity archive=%" PRId64 " t=%" PRIu64, id.archive_bytes, rdtsc());
  free(id.archive);
  // A clone's first seconds are TCG translating code for the first time: going on as the
  // agent saves an exec and the wait for it to listen (bound to eth0, any address on it).
  pid_t pid = fork();
  if (pid < 0) return say("tapsim-agent: error identity: fork: %s", strerror(errno)), 1;
  if (pid > 0) _exit(0);
  setsid();
  return serve(sock);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--identity") == 0) return identity_main(argv[2]);
  int sock = open_socket();
  if (sock < 0) {
    say("tapsim-agent: error cannot listen on eth0 port %d: %s", AGENT_PORT, strerror(errno));
    return 1;
  }
  return serve(sock);
}

/** The agent's loop: messages from the socket, command output, reaped children. Never returns but on error. */
static int serve(int sock) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int sigfd = open_sigchld();
  if (sigfd < 0) {
    say("tapsim-agent: error signalfd: %s", strerror(errno));
    return 1;
  }
  static char msg[MESSAGE_BYTES_MAX + 1];
  for (;;) {
    struct pollfd fds[2 + COMMANDS_MAX];
    struct command *owner[2 + COMMANDS_MAX];
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = sock, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    for (int i = 0; i < COMMANDS_MAX; i++) {
      if (!commands[i].used || commands[i].fd < 0) continue;
      owner[n] = &commands[i];
      fds[n++] = (struct pollfd){.fd = commands[i].fd, .events = POLLIN};
    }
    if (poll(fds, n, -1) < 0) continue;  // EINTR
    for (nfds_t i = 2; i < n; i++) {
      if (fds[i].revents && !drain(owner[i])) close_pipe(owner[i]);
    }
    if (fds[1].revents) {
      struct signalfd_siginfo info;
      while (read(sigfd, &info, sizeof info) > 0) {}
      reap();
    }
    if (fds[0].revents) {
      ssize_t got = recv(sock, msg, sizeof msg, MSG_TRUNC | MSG_DONTWAIT);
      if (got > MESSAGE_BYTES_MAX) say("tapsim-agent: error message of %zd bytes (at most %d)", got, MESSAGE_BYTES_MAX);
      else if (got > 0) handle(msg, (size_t)got);
    }
  }
}
