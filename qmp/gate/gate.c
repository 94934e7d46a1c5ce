// tapsim slice gate: a QEMU 7.2 TCG plugin that runs the guest in slices of exact virtual
// time, injects frames into the simulated NIC at their exact delivery times, and stamps every
// frame the guest transmits with the virtual time at which it left the NIC.
//
// Why a plugin: Debian's QEMU exports its internal symbols, so code loaded with -plugin can
// arm QEMU_CLOCK_VIRTUAL timers and hook the netdev backend without rebuilding QEMU. Under
// `-icount shift=0,sleep=off -smp 1` the virtual clock advances only with executed
// instructions, and a timer callback that blocks (holding the iothread lock) freezes the
// guest at exactly the timer's deadline. That blocking point is the gate.
//
// Channel: one unix stream socket (path in the `sock=` argument) to the engine. Every message
// starts with a 24-byte header {u32 type, u32 count, u64 t_ns, u64 payload_bytes} followed by
// `count` frames of {u64 t_ns, u32 len, u32 iface, len bytes} (iface 0: the simulated NIC, 1: the management NIC). Little endian.
//   gate -> engine: HELLO (clock at the first gate), DONE (clock at the deadline + frames the
//                   guest sent during the slice), TX (frames, when the buffer fills mid-slice),
//                   ERROR (text payload).
//   engine -> gate: RUN (deadline + frames to inject at their due times). EOF: exit QEMU.
//                   PARK: stop the VM right here and answer PARKED (clock); the gate then
//                   lets QEMU's main loop run (QMP: save the state for snapshots, quit).
// Internal struct layouts (NetClientState, NetClientInfo, QEMUTimer) are QEMU 7.2's: the
// install function refuses any other version, and checks the layout on the netdev it hooks.

#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

// ---- QEMU 7.2 declarations (no header is packaged; these match the 7.2.x sources) ----

typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char *target_name;
  struct { int min; int cur; } version;
  bool system_emulation;
} qemu_info_t;

enum { QEMU_CLOCK_VIRTUAL = 1, SCALE_NS = 1 };
typedef void QEMUTimerCB(void *opaque);
typedef struct {  // struct QEMUTimer, 48 bytes in 7.2; only QEMU touches the fields.
  int64_t expire_time;
  void *timer_list;
  QEMUTimerCB *cb;
  void *opaque;
  void *next;
  int attributes;
  int scale;
} QEMUTimer;
_Static_assert(sizeof(QEMUTimer) == 48, "QEMUTimer is 48 bytes in QEMU 7.2");

typedef struct NetClientState NetClientState;
typedef ssize_t NetReceive(NetClientState *, const uint8_t *, size_t);
typedef ssize_t NetReceiveIOV(NetClientState *, const struct iovec *, int);
typedef int NetCanReceive(NetClientState *);
typedef struct {  // struct NetClientInfo in 7.2: 24 members, 192 bytes.
  int type;
  size_t size;
  NetReceive *receive;
  NetReceive *receive_raw;
  NetReceiveIOV *receive_iov;
  NetCanReceive *can_receive;
  void *rest[18];
} NetClientInfo;
_Static_assert(sizeof(NetClientInfo) == 192, "NetClientInfo is 192 bytes in QEMU 7.2");
_Static_assert(offsetof(NetClientInfo, can_receive) == 40, "can_receive at 40 in QEMU 7.2");
struct NetClientState {  // leading members of struct NetClientState in 7.2
  NetClientInfo *info;
  int link_down;
  void *next[2];
  NetClientState *peer;
  void *incoming_queue;
  char *model;
  char *name;
};
_Static_assert(offsetof(NetClientState, peer) == 32, "peer at 32 in QEMU 7.2");
_Static_assert(offsetof(NetClientState, name) == 56, "name at 56 in QEMU 7.2");

typedef struct { int64_t major, minor, micro; } VersionTriple;
typedef struct { VersionTriple *qemu; char *package; } VersionInfo;
typedef struct QDict QDict;
typedef struct QObject QObject;
typedef struct Error Error;

typedef struct {  // struct QEMUTimerListGroup in 7.2: one list per clock type (QEMU_CLOCK_MAX = 4).
  void *tl[4];
} QEMUTimerListGroup;
typedef void QEMUTimerListNotifyCB(void *opaque, int type);
typedef struct CPUState CPUState;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum { QEMU_PLUGIN_CB_NO_REGS = 0 };

// struct QEMUTimerList in 7.2 (util/qemu-timer.c), leading members: the clock, a QemuMutex
// (pthread_mutex_t and a bool: 48 bytes), the active timers, the clock's list links, then the
// notify callback and its opaque. Checked at run time against the gate's own list.
typedef struct QEMUTimerList QEMUTimerList;
struct QEMUTimerList {
  void *clock;
  uint8_t active_timers_lock[48];
  void *active_timers;
  struct { QEMUTimerList *le_next; QEMUTimerList **le_prev; } list;
  QEMUTimerListNotifyCB *notify_cb;
  void *notify_opaque;
};
typedef struct {  // struct QEMUClock in 7.2: the QLIST_HEAD of every timer list of the clock first.
  QEMUTimerList *timerlists;
} QEMUClock;
typedef struct IOThread IOThread;
typedef struct AioContext AioContext;
extern IOThread *mon_iothread;
extern AioContext *iothread_get_aio_context(IOThread *iothread);
extern QEMUTimerListGroup main_loop_tlg;
extern int64_t qemu_clock_get_ns(int type);
extern void timerlistgroup_init(QEMUTimerListGroup *tlg, QEMUTimerListNotifyCB *cb, void *opaque);
extern bool timerlist_run_timers(void *timer_list);
extern void timer_init_full(QEMUTimer *ts, QEMUTimerListGroup *tlg, int type, int scale, int attributes, QEMUTimerCB *cb, void *opaque);
extern bool qemu_in_vcpu_thread(void);
extern CPUState *qemu_get_cpu(int index);
extern void icount_update(CPUState *cpu);
extern bool all_cpu_threads_idle(void);
extern bool runstate_is_running(void);
extern int64_t qemu_clock_deadline_ns_all(int type, int attr_mask);
enum { QEMU_TIMER_ATTR_ALL = -1 };
typedef struct {  // struct TimersState in 7.2 (softmmu/timers-state.h): 96 bytes, `nm -S timers_state`.
  int64_t cpu_ticks_prev;
  int64_t cpu_ticks_offset;
  unsigned vm_clock_seqlock;  // QemuSeqLock: odd while a writer is inside
  int vm_clock_lock;          // QemuSpin: serialises writers
  int16_t cpu_ticks_enabled;
  int16_t icount_time_shift;
  int64_t last_delta;
  int64_t qemu_icount_bias;   // virtual clock = bias + (qemu_icount << icount_time_shift)
  int64_t vm_clock_warp_start;
  int64_t cpu_clock_offset;
  int64_t qemu_icount;
  void *icount_rt_timer;
  void *icount_vm_timer;
  void *icount_warp_timer;
} TimersState;
_Static_assert(sizeof(TimersState) == 96, "TimersState is 96 bytes in QEMU 7.2");
_Static_assert(offsetof(TimersState, qemu_icount_bias) == 40, "qemu_icount_bias at 40 in QEMU 7.2");
_Static_assert(offsetof(TimersState, qemu_icount) == 64, "qemu_icount at 64 in QEMU 7.2");
extern TimersState timers_state;
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, void (*cb)(unsigned int vcpu_index, void *userdata), int flags, void *userdata);
extern void timer_mod_ns(QEMUTimer *ts, int64_t expire_time);
extern NetClientState *qemu_find_netdev(const char *id);
extern void qemu_send_packet(NetClientState *nc, const uint8_t *buf, int size);
extern VersionInfo *qmp_query_version(Error **errp);
extern void qmp_register_command(void *cmds, const char *name, void (*fn)(QDict *, QObject **, Error **), unsigned options, unsigned special_features);
extern char qmp_commands[];
extern void *qnum_from_int(int64_t value);
extern void qmp_stop(void **errp);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

// ---- protocol ----

enum { MSG_HELLO = 1, MSG_DONE = 2, MSG_TX = 3, MSG_ERROR = 4, MSG_PARKED = 5 };
enum { MSG_RUN = 1, MSG_PARK = 2 };
enum { GATE_PROTOCOL_VERSION = 2 };  // 2: frames carry their interface (0 simulated, 1 management)
enum { HEADER_BYTES = 24, FRAME_HEADER_BYTES = 16 };
enum { FRAME_BYTES_MAX = 65536 + 64 };
#define PAYLOAD_BYTES_MAX (64u << 20)   // one RUN message; bounds a corrupt length
#define TX_FLUSH_BYTES (4u << 20)       // buffered guest frames before a mid-slice TX message
#define INJECT_PENDING_MAX 1000000       // frames armed and not yet injected
// Consecutive slices answered in place (see end_idle_slice_in_place) before one goes through
// QEMU's timers again, which lets the main loop take the BQL (QMP clients, signals).
#define IN_PLACE_SLICES_MAX 64
#define TIMER_LISTS_MAX 64  // timer lists on one clock: one per AioContext and group; a handful in practice
#define CLOCK_LOCK_SPINS_MAX 1000000

typedef struct {
  uint32_t type;
  uint32_t count;
  uint64_t t_ns;
  uint64_t payload_bytes;
} MsgHeader;
_Static_assert(sizeof(MsgHeader) == HEADER_BYTES, "header layout");

enum { IFACES_MAX = 2 };

typedef struct Injection {
  QEMUTimer timer;
  uint32_t iface;
  uint32_t len;
  uint8_t bytes[];
} Injection;

static struct {
  int fd;
  char sock_path[512];  // PREFIX.gate: PREFIX.* are removed when the engine goes away (leave)
  // Interface 0 is the simulated NIC's netdev, 1 the management NIC's (optional): both are
  // hub ports fed only by this gate, so the guest's whole network is a closed world.
  char netdev_id[IFACES_MAX][64];
  NetClientState *nc[IFACES_MAX];
  NetClientInfo hooked_info[IFACES_MAX];
  uint32_t ifaces;
  QEMUTimerListGroup timers;  // private: only the vCPU thread runs them (see timers_notify)
  bool timers_running;
  QEMUTimer gate_timer;
  // Armed (expired) by PARK on a group nobody runs: keeps every later instruction budget at
  // 0 and stops the main loop's idle warp (a pending expired timer means no warp).
  QEMUTimerListGroup park_timers;
  QEMUTimer park_guard;
  bool started;
  int64_t deadline_ns;
  uint8_t *tx;
  size_t tx_len, tx_cap;
  uint32_t tx_count;
  uint8_t *rx;
  size_t rx_cap;
  uint64_t inject_pending;
  uint64_t slices;
  CPUState *cpu;
  uint32_t in_place_run;     // consecutive slices ended in place
  bool slice_ended_in_place; // the slice read last is over already (gate_cb answers it)
  uint64_t in_place_slices;  // all slices ended in place, for the curious (gdb)
  QEMUTimerList *monitor_list;            // the monitor I/O thread's virtual-clock list, once quieted (NULL: not found)
  QEMUTimerListNotifyCB *monitor_notify;  // and its own notify callback
} g = { .fd = -1 };

// A deliberately broken build for the tests (scripts/build_gate.sh --fault): from slice
// TAPSIM_GATE_FAULT_AFTER on, every deadline is armed TAPSIM_GATE_FAULT_NS late, so the
// engine's per-slice check must catch it. Never defined in the real plugin.
static int64_t fault_overshoot_ns(void) {
#ifdef TAPSIM_GATE_FAULT_NS
  if (g.slices >= TAPSIM_GATE_FAULT_AFTER) return TAPSIM_GATE_FAULT_NS;
#endif
  return 0;
}

static void die(const char *fmt, const char *detail) __attribute__((noreturn));
static void leave(int code) __attribute__((noreturn));

static void write_all(const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(g.fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) leave(0);  // engine gone: nobody is left to run this VM for
    p += n;
    len -= (size_t)n;
  }
}

// Returns false on EOF before the first byte (the engine closed the channel).
static bool read_all(void *buf, size_t len) {
  uint8_t *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(g.fd, p + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && got == 0) return false;
    if (n <= 0) die("engine channel closed mid-message%s", "");
    got += (size_t)n;
  }
  return true;
}

static void send_error(const char *text) {
  if (g.fd < 0) return;
  MsgHeader h = { MSG_ERROR, 0, 0, strlen(text) };
  write_all(&h, sizeof h);
  write_all(text, h.payload_bytes);
}

static void die(const char *fmt, const char *detail) {
  char text[512];
  snprintf(text, sizeof text, fmt, detail);
  fprintf(stderr, "tapsim-gate: %s\n", text);
  send_error(text);
  leave(3);
}

// The run directory's files of this VM (its sockets, console log, overlay) are the engine's
// to remove; when the engine is gone (it closed the channel, or was SIGKILLed) QEMU removes
// them itself and then the directory if it is empty, so a killed run leaves nothing behind.
// Only files named after this VM's gate socket (PREFIX.gate) are touched.
static const char *const OWN_SUFFIXES[] = { ".gate", ".qmp", ".console.log", ".overlay.qcow2" };

static void remove_own_files(void) {
  size_t n = strlen(g.sock_path);
  if (n < 6 || strcmp(g.sock_path + n - 5, ".gate") != 0) return;
  char path[sizeof g.sock_path + 32];
  for (size_t i = 0; i < sizeof OWN_SUFFIXES / sizeof OWN_SUFFIXES[0]; i++) {
    snprintf(path, sizeof path, "%.*s%s", (int)(n - 5), g.sock_path, OWN_SUFFIXES[i]);
    unlink(path);
  }
  snprintf(path, sizeof path, "%s", g.sock_path);
  char *dir = dirname(path);
  // Only a run dir of tapsim's (mkdtemp "tapsim-run-XXXXXX"), and only once empty: rmdir
  // fails while another VM's files are still there, and that VM removes it.
  const char *base = strrchr(dir, '/');
  if (base && strncmp(base + 1, "tapsim-run-", 11) == 0) rmdir(dir);
}

static void leave(int code) {
  remove_own_files();
  _exit(code);
}

static void tx_reserve(size_t more) {
  if (g.tx_len + more <= g.tx_cap) return;
  size_t cap = g.tx_cap ? g.tx_cap : 65536;
  while (cap < g.tx_len + more) cap *= 2;
  g.tx = realloc(g.tx, cap);
  if (!g.tx) die("out of memory buffering %s", "guest frames");
  g.tx_cap = cap;
}

static void send_frames(uint32_t type, int64_t t_ns) {
  MsgHeader h = { type, g.tx_count, (uint64_t)t_ns, g.tx_len };
  write_all(&h, sizeof h);
  if (g.tx_len) write_all(g.tx, g.tx_len);
  g.tx_len = 0;
  g.tx_count = 0;
}

// ---- guest transmit: the hooked netdev receives what the guest NIC sends ----

static void tx_append(uint32_t iface, const struct iovec *iov, int iovcnt, size_t len) {
  if (len > FRAME_BYTES_MAX) return;  // cannot be an Ethernet frame of ours; never expected
  int64_t now_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
  tx_reserve(FRAME_HEADER_BYTES + len);
  uint8_t *p = g.tx + g.tx_len;
  uint64_t t = (uint64_t)now_ns;
  uint32_t l = (uint32_t)len;
  memcpy(p, &t, 8);
  memcpy(p + 8, &l, 4);
  memcpy(p + 12, &iface, 4);
  p += FRAME_HEADER_BYTES;
  for (int i = 0; i < iovcnt; i++) {
    memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  g.tx_len += FRAME_HEADER_BYTES + len;
  g.tx_count += 1;
  if (g.tx_len >= TX_FLUSH_BYTES) send_frames(MSG_TX, now_ns);
}

static ssize_t hook_receive_iov(NetClientState *nc, const struct iovec *iov, int iovcnt) {
  uint32_t iface = nc == g.nc[1] ? 1 : 0;
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) len += iov[i].iov_len;
  tx_append(iface, iov, iovcnt, len);
  return (ssize_t)len;
}

static ssize_t hook_receive(NetClientState *nc, const uint8_t *buf, size_t len) {
  struct iovec iov = { (void *)buf, len };
  return hook_receive_iov(nc, &iov, 1);
}

// The hub port alone on its hub would refuse frames (no other port can take them).
static int hook_can_receive(NetClientState *nc) {
  (void)nc;
  return 1;
}

static void hook_netdev(uint32_t iface) {
  const char *id = g.netdev_id[iface];
  NetClientState *nc = qemu_find_netdev(id);
  if (!nc) die("no netdev with id \"%s\" (the launcher must create it)", id);
  // Layout checks: if these fail, the struct offsets are not the ones this plugin assumes.
  if (!nc->name || strcmp(nc->name, id) != 0) die("netdev \"%s\": unexpected NetClientState layout", id);
  if (!nc->info || !nc->info->receive || nc->info->size < sizeof(void *) || nc->info->size > (1u << 20)) {
    die("netdev \"%s\": unexpected NetClientInfo layout", id);
  }
  if (!nc->peer) die("netdev \"%s\" has no NIC attached", id);
  NetClientInfo *info = &g.hooked_info[iface];
  memcpy(info, nc->info, sizeof *info);
  info->receive = hook_receive;
  info->receive_raw = hook_receive;
  info->receive_iov = hook_receive_iov;
  info->can_receive = hook_can_receive;
  nc->info = info;
  g.nc[iface] = nc;
}

// ---- injection: each frame is a virtual-clock timer that fires at its due time ----

static void inject_cb(void *opaque) {
  Injection *inj = opaque;  // QEMU unlinks a timer before calling it, so freeing here is safe
  qemu_send_packet(g.nc[inj->iface], inj->bytes, (int)inj->len);
  g.inject_pending -= 1;
  free(inj);
}

static void arm_injection(int64_t due_ns, uint32_t iface, const uint8_t *bytes, uint32_t len) {
  Injection *inj = malloc(sizeof *inj + len);
  if (!inj) die("out of memory arming %s", "frame injections");
  inj->iface = iface;
  inj->len = len;
  memcpy(inj->bytes, bytes, len);
  timer_init_full(&inj->timer, &g.timers, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0, inject_cb, inj);
  timer_mod_ns(&inj->timer, due_ns);
  g.inject_pending += 1;
}

// ---- the gate's own timers: run only in the vCPU thread ----
//
// Under -icount, QEMU's *main loop* also runs expired QEMU_CLOCK_VIRTUAL timers of the
// default timer list group, reading the virtual clock from the instruction count the vCPU
// last flushed (issue #8; the overruns themselves came from the idle warp below, but a gate
// or injection run by the main loop could meet the same stale clock). Timers of a private
// group are never run by the main loop; QEMU only calls the group's notify callback, from
// any thread, whenever a virtual timer may be due (the vCPU thread calls it at exactly the
// deadline its instruction budget stopped at, via icount_handle_deadline ->
// icount_notify_aio_contexts). So the gate and every injection run in the vCPU thread,
// with the BQL held and the guest stopped at exactly their time, never in the main loop
// while the guest executes. qemu_clock_deadline_ns_all() still sees these timers, so
// instruction budgets and idle warps stop at them as before.
static void timers_notify(void *opaque, int type) {
  (void)opaque;
  if (type != QEMU_CLOCK_VIRTUAL || !qemu_in_vcpu_thread() || g.timers_running) return;
  g.timers_running = true;  // timer_mod_ns from inside a callback notifies again
  timerlist_run_timers(g.timers.tl[QEMU_CLOCK_VIRTUAL]);
  g.timers_running = false;
}

// The root cause of deadlines overrun by 107-812 ns (issue #8; compiling this flush out makes
// bench/soak.ts fail again within seconds): an idle guest's clock is advanced ("warped") by
// the main loop when every vCPU is halted, by the distance from the clock it reads to the
// next timer. HLT sets cpu->halted in the vCPU thread *before* the vCPU flushes the
// instructions of its current execution into the clock (icount_process_data, after
// cpu_exec returns). A main loop that wakes in that window (a slirp socket, a QMP client,
// a host under load) sees a halted CPU and a clock that is short by those instructions,
// warps too far, and the gate then finds the clock past its deadline: +143 ns was the
// idle loop's path from its last flush to HLT. Flushing the count right before HLT/MWAIT
// (what any device read of the clock does mid-execution) closes the window: once halted is
// visible, the clock is exact.
static void flush_icount_before_halt(unsigned int vcpu_index, void *userdata) {
  (void)vcpu_index;
  (void)userdata;
#ifndef TAPSIM_GATE_NO_HALT_FLUSH  // the old behaviour, for measuring the race (soak bench)
  icount_update(g.cpu);
#endif
}

// HLT (F4) or MWAIT (0F 01 C9), after any legacy prefixes.
static bool is_halt_insn(const uint8_t *bytes, size_t len) {
  size_t i = 0;
  static const uint8_t prefixes[] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3 };
  while (i < len && memchr(prefixes, bytes[i], sizeof prefixes)) i++;
  if (len - i == 1) return bytes[i] == 0xf4;
  return len - i == 3 && bytes[i] == 0x0f && bytes[i + 1] == 0x01 && bytes[i + 2] == 0xc9;
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    if (is_halt_insn(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn))) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, flush_icount_before_halt, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
  }
}

// ---- the gate ----

// Snapshots (qmp/snapshot.ts): stop the VM at exactly now_ns, so the saved state is the
// guest at the end of the last slice. A stop requested from here completes in the main loop
// later (QMP is served from then on); until then the vCPU must run no instruction and the
// clock must not move. Measured without the guard: the main loop's idle warp moved the
// clock to the guest's next timer first (+11 ms). An expired timer pending on a group that
// no one runs keeps instruction budgets at 0 and makes the warp a no-op (deadline 0).
static void park_notify(void *opaque, int type) {
  (void)opaque;
  (void)type;
}

static void park_guard_cb(void *opaque) { (void)opaque; }

static void park(int64_t now_ns) {
  timerlistgroup_init(&g.park_timers, park_notify, NULL);
  timer_init_full(&g.park_guard, &g.park_timers, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0, park_guard_cb, NULL);
  timer_mod_ns(&g.park_guard, now_ns);
  qmp_stop(NULL);
  MsgHeader h = { MSG_PARKED, 0, (uint64_t)now_ns, 0 };
  write_all(&h, sizeof h);
}

// Idle slices in place (issue #12: cheaper switches). A slice of a halted guest with no
// virtual timer due before its end runs no instruction: QEMU would only warp the clock to the
// gate's deadline. Through QEMU that costs a tour of threads: arming the gate timer warps the
// clock here in the vCPU thread (timer_mod_ns -> icount_start_warp_timer) and notifies every
// AioContext (eventfd writes that wake the main loop and the monitor's I/O thread, which then
// wait for the BQL); the vCPU thread, its CPU idle, sleeps until the main loop sees the
// expired timer and queues work on it (qemu_timer_notify_cb -> async_run_on_cpu); only then
// does the vCPU thread run the gate (icount_handle_deadline). Measured: ~13 syscalls and 4
// thread wake-ups in QEMU per slice. Instead, when the slice is provably empty, the gate
// makes the same warp itself (the icount bias, under QEMU's seqlock, exactly as
// icount_start_warp_timer does with sleep=off) and answers DONE at once: one read and one
// write. Whether a slice is ended in place or through QEMU, the guest sees the same clock
// and the same events (none), so runs stay deterministic either way.
static bool slice_is_empty(int64_t now_ns, int64_t end_ns) {
  if (!runstate_is_running() || !all_cpu_threads_idle()) return false;  // halted, no work, no interrupt
  // Every virtual timer: the guest's, the main loop's, this slice's injections (the gate
  // timer itself is not armed). One due at the deadline itself would run after the gate.
  int64_t next_ns = qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, QEMU_TIMER_ATTR_ALL);
  return next_ns < 0 || now_ns + next_ns > end_ns;
}

// Adds `delta_ns` to the icount bias (a warp); false, touching nothing, if timers_state does
// not look like QEMU 7.2's (then the slice goes through QEMU's own warp).
static bool warp_clock(int64_t now_ns, int64_t delta_ns) {
  TimersState *ts = &timers_state;
  if (delta_ns <= 0 || ts->icount_time_shift != 0) return false;
  if (ts->qemu_icount_bias + ts->qemu_icount != now_ns) return false;  // layout check, every time
  if ((ts->vm_clock_seqlock & 1) != 0 || (ts->vm_clock_lock != 0 && ts->vm_clock_lock != 1)) return false;
  for (uint32_t spins = 0; __atomic_exchange_n(&ts->vm_clock_lock, 1, __ATOMIC_ACQUIRE); spins++) {
    if (spins >= CLOCK_LOCK_SPINS_MAX) return false;  // another writer holds it: never seen
    __builtin_ia32_pause();
  }
  // seqlock_write_begin / seqlock_write_end (readers retry while the count is odd)
  __atomic_store_n(&ts->vm_clock_seqlock, ts->vm_clock_seqlock + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&ts->qemu_icount_bias, ts->qemu_icount_bias + delta_ns, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&ts->vm_clock_seqlock, ts->vm_clock_seqlock + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&ts->vm_clock_lock, 0, __ATOMIC_RELEASE);
  return true;
}

static bool end_idle_slice_in_place(int64_t now_ns, int64_t end_ns) {
#ifdef TAPSIM_GATE_NO_IN_PLACE  // every slice through QEMU's timers, for the benchmark's comparison
  return false;
#endif
  if (!g.cpu || g.in_place_run >= IN_PLACE_SLICES_MAX || !slice_is_empty(now_ns, end_ns)) return false;
  if (!warp_clock(now_ns, end_ns - now_ns)) return false;
  int64_t clock_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
  if (clock_ns != end_ns) die("virtual clock not at the deadline after an in-place warp (QEMU layout?)%s", "");
  return true;
}

// The monitor's I/O thread, woken for nothing (issue #12, parallel VMs). Under -icount every
// virtual-timer event of the guest (a deadline reached, an idle warp) calls
// qemu_clock_notify(QEMU_CLOCK_VIRTUAL), which wakes every AioContext with a list on that
// clock: the main loop's, which the idle warp needs, and the QMP monitor's I/O thread's, which
// never holds a virtual timer (the monitor's timers are QEMU_CLOCK_REALTIME) and only runs its
// empty list and sleeps again. Measured with 8 busy VMs: 52,000 wake-ups of it per QEMU in a
// run, 5 % of the QEMU's CPU time besides the eventfd writes in the vCPU thread. On 2 cores
// with more VMs than cores that time is taken from the guests. Its virtual-clock list's
// notify callback is replaced by one that passes the call on only while that list holds a
// timer (never seen; but then the thread must wake, or the vCPU would spin at a deadline no
// one runs). Everything else about the thread (QMP) is unchanged. The list layout is checked
// against the gate's own list; on any mismatch nothing is touched.
static void notify_monitor_if_armed(void *opaque, int type) {
  if (__atomic_load_n(&g.monitor_list->active_timers, __ATOMIC_ACQUIRE) != NULL) g.monitor_notify(opaque, type);
}

static QEMUTimerList *virtual_list_of(QEMUTimerListGroup *tlg) { return (QEMUTimerList *)tlg->tl[QEMU_CLOCK_VIRTUAL]; }

static bool timer_list_layout_ok(void) {
  QEMUTimerList *own = virtual_list_of(&g.timers), *main_list = virtual_list_of(&main_loop_tlg);
  return own && main_list && own->notify_cb == timers_notify && own->notify_opaque == NULL && own->clock == main_list->clock &&
         own->list.le_prev && *own->list.le_prev == own;
}

static void quiet_monitor_thread(void) {
#ifdef TAPSIM_GATE_LOUD_MONITOR  // the old behaviour, for the benchmark's comparison
  return;
#endif
  if (!mon_iothread || !timer_list_layout_ok()) return;
  AioContext *mon_ctx = iothread_get_aio_context(mon_iothread);
  QEMUClock *clock = (QEMUClock *)virtual_list_of(&g.timers)->clock;
  uint32_t lists = 0;
  for (QEMUTimerList *tl = clock->timerlists; tl && lists < TIMER_LISTS_MAX; tl = tl->list.le_next, lists++) {
    if (tl->notify_opaque != mon_ctx) continue;
    g.monitor_list = tl;
    g.monitor_notify = tl->notify_cb;
    __atomic_store_n(&tl->notify_cb, notify_monitor_if_armed, __ATOMIC_RELEASE);
    return;
  }
}

// Ends the slice at `end_ns`: in place when it is empty, else with the gate timer.
static void arm_gate(int64_t now_ns, int64_t end_ns) {
  if (end_idle_slice_in_place(now_ns, end_ns)) {
    g.slice_ended_in_place = true;
    g.in_place_run += 1;
    g.in_place_slices += 1;
    return;
  }
  g.in_place_run = 0;
  timer_mod_ns(&g.gate_timer, end_ns);
}

static void read_run(int64_t now_ns) {
  MsgHeader h;
  if (!read_all(&h, sizeof h)) leave(0);  // engine closed the channel: the run is over
  if (h.type == MSG_PARK && h.payload_bytes == 0) {
    park(now_ns);
    return;
  }
  if (h.type != MSG_RUN) die("unexpected message type %s from the engine", h.type == 0 ? "0" : "?");
  if (h.payload_bytes > PAYLOAD_BYTES_MAX) die("RUN payload too large%s", "");
  if ((int64_t)h.t_ns <= now_ns) die("RUN deadline not after the current virtual time%s", "");
  if (h.payload_bytes > g.rx_cap) {
    g.rx = realloc(g.rx, h.payload_bytes);
    if (!g.rx) die("out of memory reading %s", "a RUN message");
    g.rx_cap = h.payload_bytes;
  }
  if (h.payload_bytes && !read_all(g.rx, h.payload_bytes)) die("engine channel closed mid-message%s", "");
  size_t off = 0;
  int64_t last_ns = now_ns;
  for (uint32_t i = 0; i < h.count; i++) {
    uint64_t due;
    uint32_t len, iface;
    if (off + FRAME_HEADER_BYTES > h.payload_bytes) die("RUN frame table overruns its payload%s", "");
    memcpy(&due, g.rx + off, 8);
    memcpy(&len, g.rx + off + 8, 4);
    memcpy(&iface, g.rx + off + 12, 4);
    if (iface >= g.ifaces) die("RUN frame for an interface this VM does not have%s", "");
    off += FRAME_HEADER_BYTES;
    if (len > FRAME_BYTES_MAX || off + len > h.payload_bytes) die("RUN frame length out of bounds%s", "");
    if ((int64_t)due < last_ns || due >= h.t_ns) die("RUN frame due time outside the slice or out of order%s", "");
    if (g.inject_pending >= INJECT_PENDING_MAX) die("too many frames pending injection%s", "");
    arm_injection((int64_t)due, iface, g.rx + off, len);
    last_ns = (int64_t)due;
    off += len;
  }
  g.deadline_ns = (int64_t)h.t_ns;
  g.slices += 1;
  arm_gate(now_ns, g.deadline_ns + fault_overshoot_ns());
}

// Runs at exactly the slice deadline (icount). Blocks until the engine grants the next slice.
static void gate_cb(void *opaque) {
  (void)opaque;
  int64_t now_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
  if (!g.started) {
    g.cpu = qemu_get_cpu(0);
    if (!g.cpu) die("no vCPU 0%s", "");
    for (uint32_t i = 0; i < g.ifaces; i++) hook_netdev(i);
    quiet_monitor_thread();
    g.started = true;
    MsgHeader h = { MSG_HELLO, GATE_PROTOCOL_VERSION, (uint64_t)now_ns, 0 };
    write_all(&h, sizeof h);
  } else {
    send_frames(MSG_DONE, now_ns);
  }
  read_run(now_ns);
  // Slices ended in place (arm_gate) are answered here; at most IN_PLACE_SLICES_MAX in a row.
  for (uint32_t k = 0; k <= IN_PLACE_SLICES_MAX && g.slice_ended_in_place; k++) {
    g.slice_ended_in_place = false;
    now_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    send_frames(MSG_DONE, now_ns);
    read_run(now_ns);
  }
  if (g.slice_ended_in_place) die("in-place slices not bounded by IN_PLACE_SLICES_MAX%s", "");
}

static void qmp_get_virtual_clock_ns(QDict *args, QObject **ret, Error **errp) {
  (void)args;
  (void)errp;
  *ret = qnum_from_int(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL));
}

static int connect_engine(const char *path) {
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool version_supported(void) {
  VersionInfo *v = qmp_query_version(NULL);
  return v && v->qemu && v->qemu->major == 7 && v->qemu->minor == 2;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  const char *sock = NULL;
  snprintf(g.netdev_id[0], sizeof g.netdev_id[0], "sim");
  g.ifaces = 1;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "sock=", 5) == 0) sock = argv[i] + 5;
    else if (strncmp(argv[i], "netdev=", 7) == 0) snprintf(g.netdev_id[0], sizeof g.netdev_id[0], "%s", argv[i] + 7);
    else if (strncmp(argv[i], "mgmt=", 5) == 0) {
      snprintf(g.netdev_id[1], sizeof g.netdev_id[1], "%s", argv[i] + 5);
      g.ifaces = 2;
    }
    else {
      fprintf(stderr, "tapsim-gate: unknown argument \"%s\" (expected sock=PATH, netdev=ID, mgmt=ID)\n", argv[i]);
      return -1;
    }
  }
  if (!sock) {
    fprintf(stderr, "tapsim-gate: missing sock=PATH argument\n");
    return -1;
  }
  if (!info->system_emulation) {
    fprintf(stderr, "tapsim-gate: needs system emulation\n");
    return -1;
  }
  // A SIGKILLed engine must not leave QEMUs running (and holding their ports): SIGTERM when
  // the parent dies. A QEMU frozen in the gate ignores it, but sees EOF on its channel.
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
    fprintf(stderr, "tapsim-gate: the engine is gone (or PR_SET_PDEATHSIG failed)\n");
    return -1;
  }
  snprintf(g.sock_path, sizeof g.sock_path, "%s", sock);
  atexit(remove_own_files);  // SIGTERM ends QEMU with exit()
  g.fd = connect_engine(sock);
  if (g.fd < 0) {
    fprintf(stderr, "tapsim-gate: cannot connect to %s: %s\n", sock, strerror(errno));
    return -1;
  }
  if (!version_supported()) die("QEMU %s is not supported: the gate's struct layouts are QEMU 7.2's", "version");
  qmp_register_command(qmp_commands, "get-virtual-clock-ns", qmp_get_virtual_clock_ns, 0, 0);
  // The first gate fires before the guest runs its first instruction (virtual time 0).
  timerlistgroup_init(&g.timers, timers_notify, NULL);
  timer_init_full(&g.gate_timer, &g.timers, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0, gate_cb, NULL);
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
  timer_mod_ns(&g.gate_timer, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL));
  return 0;
}
