// Parallel slices on VMs (issue #12 item 1): wall time per virtual second of busy clusters,
// one slice at a time against lock-step grant sets (RunConfig.parallel: every VM whose slice
// is safe at once gets RUN before any DONE is awaited) and against the pipelined schedule
// (RunConfig.pipelined, what `tapsim run --parallel` does: sets planned one ahead, slices
// collected as they finish, a VM's next slice begun as soon as no unrecorded slice can send
// into it), with lookahead-long slices ("pipelined-long", the CLI's choice) and with
// half-lookahead ones ("pipelined"). VMs start from the snapshot (the boot is not measured).
//
// These machines are noisy at the scale of seconds (a VM's two vCPUs are sometimes one
// core's worth), so the modes are measured side by side: a cluster per mode, all alive in
// one process, taking turns at windows of virtual time (a waiting cluster's QEMUs sit at
// their gates and use no CPU; a pipelined one may have a slice or two in flight while the
// next lane starts, a few ms of wall time against seconds per window).
//
//   node dist/bench/vm_parallel.js           3 VMs ping-flooding both peers; 8 VMs each
//                                            flooding its successor (busy guests)
//   BENCH_WINDOWS=10 node dist/bench/...     fewer, longer windows (default 20 over 4 s, at most 20)
//   BENCH_MODES=sets,pipelined-long ...      only these modes besides one at a time
//   BENCH_CASES=8 node dist/bench/...        only the cases with these VM counts (3, 8)
//   BENCH_GATES=default,loud-monitor ...     every mode with each build of the gate plugin
//   node dist/bench/vm_parallel.js quick     the 3-VM case, 5 windows
//
// Beside wall time it reports CPU time per virtual second (QEMUs and the engine's process, from
// /proc) and cpu/wall (how many of the cores the run kept busy), and before every round of
// windows it probes what the machine gives two threads right now (bench/cpu_capacity.ts), so
// a speed-up is also given as a share of that. idle/wall: the CPUs' idle time (all of them,
// /proc/stat) per wall second; run delay/wall: time the QEMUs' and the engine's threads were
// runnable but waited for a CPU (schedstat). Both high at once: the kernel placed threads
// badly; idle without delay: nothing was runnable, the schedule left the core idle.
//
// Expected on N cores with k equally busy VMs: lock-step sets wait for their busiest core,
// about k / ceil(k / N); pipelined, no set waits for the whole one before it, up to min(N, k),
// less the engine's serial work per switch (routing, records) and what the host's scheduler
// loses to context switches between the QEMUs' threads. One at a time also pays every RUN/DONE
// wake-up in series, so on a quiet machine the measured speed-up can exceed these bounds.
// "in flight" measures what the schedule itself offers: the mean, over the lane's wall time,
// of min(slices begun and not yet collected, N) for N = 2, 4, 8 and unbounded; on N cores the
// speed-up cannot pass it (minus the QEMUs' extra CPU time when they share a machine).

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { NodeBackend, SliceCollector } from "../engine/backend.js";
import type { Engine } from "../engine/engine.js";
import { createEngine, makeRunConfig, pipelinedSliceLenMaxNs } from "../engine/run.js";
import { GATE_PLUGIN_PATH, gateVariantPath } from "../qmp/launcher.js";
import type { Snapshot } from "../qmp/snapshot.js";
import type { VmCluster } from "../qmp/vm_cluster.js";
import { awsLikeTopology, median, note, printTable, progress, QUICK } from "./common.js";
import { machineIdleS, ownCpuS, processCpuS, processRunDelayS, twoThreadSpeedup } from "./cpu_capacity.js";
import { benchSnapshot, NULL_SINK, startBenchCluster } from "./vm_common.js";

const WARMUP_NS = 1_000_000_000;
/** Virtual time measured per mode, cut into WINDOWS windows that the modes take in turns. */
const MEASURED_NS = 4_000_000_000;
const WINDOWS = Number(process.env["BENCH_WINDOWS"] ?? (QUICK ? 5 : 20));
/** A window must outlast the longest slice (the AWS-like lookahead, 125 ms), or a lane may pass it without a step. */
const WINDOW_NS_MIN = 200_000_000;
if (!(Number.isInteger(WINDOWS) && WINDOWS >= 1 && MEASURED_NS / WINDOWS >= WINDOW_NS_MIN)) {
  throw new Error(`BENCH_WINDOWS: ${process.env["BENCH_WINDOWS"]} (1..${MEASURED_NS / WINDOW_NS_MIN}: windows of at least ${WINDOW_NS_MIN / 1e6} ms of ${MEASURED_NS / 1e9} s)`);
}

/**
 * How many VM slices were in flight (begun, not yet collected), weighted by wall time: the
 * parallelism the schedule offers, whatever the machine gives it. On N cores the speed-up is
 * bounded by the mean of min(in flight, N). Time is counted only while `counting` is set (in
 * the lane's windows, not while other lanes run).
 */
class InFlightProfile {
  private count = 0;
  private last_ns = process.hrtime.bigint();
  counting = false;
  /** Wall seconds spent with k slices in flight, k = 0..vms. */
  readonly wall_s_by_count: number[];

  constructor(vms: number) {
    this.wall_s_by_count = new Array<number>(vms + 1).fill(0);
  }

  /** Wraps the backend's beginSlice so that each begun and collected slice moves the count. */
  watch(backend: NodeBackend): void {
    const begin = backend.beginSlice?.bind(backend);
    if (begin === undefined) throw new Error("vm_parallel: a VM backend without beginSlice");
    backend.beginSlice = (request) => {
      const collect = begin(request);
      this.step(+1);
      const collected: SliceCollector = Object.assign(() => {
        const result = collect();
        if (result instanceof Promise) return result.finally(() => this.step(-1));
        this.step(-1);
        return result;
      }, collect.finish === undefined ? {} : { finish: collect.finish });
      return collected;
    };
  }

  private step(delta: number): void {
    const now_ns = process.hrtime.bigint();
    if (this.counting) this.wall_s_by_count[this.count]! += Number(now_ns - this.last_ns) / 1e9;
    this.last_ns = now_ns;
    this.count += delta;
    if (this.count < 0 || this.count >= this.wall_s_by_count.length) throw new Error(`vm_parallel: ${this.count} slices in flight`);
  }

  /** Starts or stops counting time (at a window's edges). */
  setCounting(on: boolean): void {
    this.step(0);
    this.counting = on;
  }

  /** Mean of min(in flight, cores) over the counted time. */
  meanCapped(cores: number): number {
    const total_s = this.wall_s_by_count.reduce((a, b) => a + b, 0);
    return this.wall_s_by_count.reduce((sum, s, k) => sum + s * Math.min(k, cores), 0) / total_s;
  }
}

/** Core counts at which the in-flight profile is read: the speed-up's bound on a machine with that many. */
const IN_FLIGHT_CORES = [2, 4, 8, Infinity] as const;

interface ParallelCase {
  readonly label: string;
  readonly vms: number;
  /** Boot command; {peers}: every other node's IP, {next}: the successor's. */
  readonly command: string;
}

/**
 * How slices are scheduled: one at a time, lock-step grant sets, pipelined grant sets with
 * slices of half the smallest lookahead, or pipelined with slices as long as each VM's
 * lookahead allows (fewer switches, fewer early begins; what `tapsim run --parallel` does).
 */
type Mode = "sequential" | "sets" | "pipelined" | "pipelined-long";
const MODES: readonly Mode[] = ["sequential", "sets", "pipelined", "pipelined-long"];

/** One mode's cluster and engine, alive for the whole case, and what its windows added up to. */
interface Lane {
  readonly mode: Mode;
  readonly gate: GateBuild;
  readonly cluster: VmCluster;
  readonly engine: Engine;
  readonly pids: readonly number[];
  readonly in_flight: InFlightProfile;
  /** Per window: wall seconds per virtual second. */
  readonly window_wall_per_virtual: number[];
  wall_s: number;
  virtual_s: number;
  qemu_cpu_s: number;
  engine_cpu_s: number;
  /** Seconds the QEMUs' and the engine's threads were runnable but waited for a CPU. */
  run_delay_s: number;
  /** Seconds the machine's CPUs were idle, all together. */
  idle_s: number;
  slices: number;
  early: number;
}

async function startLane(c: ParallelCase, mode: Mode, snapshot: Snapshot, gate: GateBuild): Promise<Lane> {
  const topology = awsLikeTopology(c.vms);
  const pipelined = mode === "pipelined" || mode === "pipelined-long";
  const slice_len_max_ns = mode === "pipelined" ? pipelinedSliceLenMaxNs(topology) : undefined;
  const config = makeRunConfig({ topology, workload: null, seed: 1, until_ns: WARMUP_NS + MEASURED_NS, backend: "vm", parallel: mode !== "sequential", pipelined, slice_len_max_ns });
  const ips = config.nodes.map((n) => n.ip);
  const boot_commands = config.nodes.map((n) => c.command.replace(/\{peers\}/g, ips.filter((_, i) => i !== n.id).join(" ")).replace(/\{next\}/g, ips[(n.id + 1) % c.vms]!));
  const cluster = await startBenchCluster(config, boot_commands, snapshot, GATE_BUILDS[gate]);
  const in_flight = new InFlightProfile(c.vms);
  for (const backend of cluster.backends) in_flight.watch(backend);
  const engine = createEngine(config, cluster.backends, NULL_SINK);
  const pids = cluster.backends.map((b) => b.vm.pid);
  return { mode, gate, cluster, engine, pids, in_flight, window_wall_per_virtual: [], wall_s: 0, virtual_s: 0, qemu_cpu_s: 0, engine_cpu_s: 0, run_delay_s: 0, idle_s: 0, slices: 0, early: 0 };
}

/** Runs the lane's engine until its clock reaches `until_ns`, adding wall, virtual and CPU time to its sums. */
async function runWindow(lane: Lane, until_ns: number): Promise<void> {
  const { engine } = lane;
  // Read while the QEMUs live: an exited one has no /proc entry.
  const qemuCpuS = () => lane.pids.reduce((sum, pid) => sum + processCpuS(pid), 0);
  const runDelayS = () => lane.pids.reduce((sum, pid) => sum + processRunDelayS(pid), processRunDelayS(process.pid));
  const before = { virtual_ns: engine.now_ns, slices: engine.stats.slices, early: engine.slices_begun_early, qemu_cpu_s: qemuCpuS(), engine_cpu_s: ownCpuS(), run_delay_s: runDelayS(), idle_s: machineIdleS() };
  const t0 = process.hrtime.bigint();
  lane.in_flight.setCounting(true);
  for (let steps = 0; engine.now_ns < until_ns && (await engine.step()); steps++) {
    if (steps > 100_000_000) throw new Error(`${lane.mode}: window did not end`);
  }
  lane.in_flight.setCounting(false);
  const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
  const virtual_s = (engine.now_ns - before.virtual_ns) / 1e9;
  if (!(virtual_s > 0)) throw new Error(`${lane.mode}: no virtual time passed in a window (end: ${engine.end_reason})`);
  lane.window_wall_per_virtual.push(wall_s / virtual_s);
  lane.wall_s += wall_s;
  lane.virtual_s += virtual_s;
  lane.qemu_cpu_s += qemuCpuS() - before.qemu_cpu_s;
  lane.engine_cpu_s += ownCpuS() - before.engine_cpu_s;
  lane.run_delay_s += runDelayS() - before.run_delay_s;
  lane.idle_s += machineIdleS() - before.idle_s;
  lane.slices += engine.stats.slices - before.slices;
  lane.early += engine.slices_begun_early - before.early;
}

/**
 * The entries of `all` named in the comma-separated env variable `name` (absent: `absent`), in
 * `all`'s order; a name that matches none is an error naming the choices.
 */
function envSelection<T>(name: string, all: readonly T[], key: (x: T) => string, absent: readonly T[] = all): readonly T[] {
  const names = process.env[name]?.split(",");
  if (names === undefined) return absent;
  for (const n of names) if (!all.some((x) => key(x) === n)) throw new Error(`${name}: unknown "${n}" (choices: ${all.map(key).join(", ")})`);
  return all.filter((x) => names.includes(key(x)));
}

/** BENCH_MODES=sequential,pipelined-long runs only those modes (sequential is always run: it is the baseline). */
function selectedModes(): readonly Mode[] {
  const named = envSelection("BENCH_MODES", MODES, (m) => m);
  return MODES.filter((m) => m === "sequential" || named.includes(m));
}

/**
 * Builds of the gate plugin (scripts/build_gate.sh) to compare side by side: BENCH_GATES=
 * default,loud-monitor runs every mode with each. loud-monitor: QMP's I/O thread woken by
 * every virtual-timer event, as QEMU does (the default build silences it).
 */
const GATE_BUILDS = {
  default: GATE_PLUGIN_PATH,
  "loud-monitor": gateVariantPath("loud-monitor"),
} as const;
type GateBuild = keyof typeof GATE_BUILDS;

function selectedGates(): readonly GateBuild[] {
  const builds = Object.keys(GATE_BUILDS) as GateBuild[];
  return envSelection("BENCH_GATES", builds, (g) => g, ["default"]);
}

/** BENCH_CASES=8 runs only the cases with these VM counts. */
function selectedCases(cases: readonly ParallelCase[]): readonly ParallelCase[] {
  return envSelection("BENCH_CASES", cases, (c) => String(c.vms));
}

/** The mode, and the gate build where it is not the default one. */
function laneLabel(lane: Lane): string {
  return lane.gate === "default" ? lane.mode : `${lane.mode} (${lane.gate})`;
}

/** One mode's row; speed-ups against the sequential lane, overall (sums) and the median of the windows' own. */
function laneRow(lane: Lane, sequential: Lane, capacity_median: { alu: number; memory: number }): string[] {
  const wall_per_virtual = lane.wall_s / lane.virtual_s;
  const speedup = sequential.wall_s / sequential.virtual_s / wall_per_virtual;
  const per_window = lane.window_wall_per_virtual.map((w, k) => sequential.window_wall_per_virtual[k]! / w);
  const cpu_s = lane.qemu_cpu_s + lane.engine_cpu_s;
  const first = lane === sequential;
  const x = (v: number) => `${v.toFixed(2)}x`;
  return [
    laneLabel(lane),
    wall_per_virtual.toFixed(2),
    first ? "" : x(speedup),
    first ? "" : `${x(median(per_window))} (${Math.min(...per_window).toFixed(2)}–${Math.max(...per_window).toFixed(2)})`,
    first ? "" : `${((100 * speedup) / capacity_median.alu).toFixed(0)} % / ${((100 * speedup) / capacity_median.memory).toFixed(0)} %`,
    (lane.qemu_cpu_s / lane.virtual_s).toFixed(2),
    (lane.engine_cpu_s / lane.virtual_s).toFixed(2),
    (cpu_s / lane.wall_s).toFixed(2),
    (lane.idle_s / lane.wall_s).toFixed(2),
    (lane.run_delay_s / lane.wall_s).toFixed(2),
    lane.mode === "sequential" ? "1 (one at a time)" : IN_FLIGHT_CORES.map((n) => lane.in_flight.meanCapped(n).toFixed(2)).join(" / "),
    `${lane.slices} / ${lane.early}`,
  ];
}

/**
 * One case: a cluster per mode, all alive at once (a lane's QEMUs wait at their gates while
 * another lane runs), warmed up, then WINDOWS rounds in which every lane runs its next window
 * of virtual time, the lanes' order rotating per round; the machine's two-thread speed-up is
 * probed before each round. So every mode meets the same machine, seconds apart.
 */
async function runCase(c: ParallelCase, modes: readonly Mode[], gates: readonly GateBuild[], snapshot: Snapshot): Promise<void> {
  const lanes: Lane[] = [];
  try {
    for (const gate of gates) for (const mode of modes) lanes.push(await startLane(c, mode, snapshot, gate));
    for (const lane of lanes) while (lane.engine.now_ns < WARMUP_NS && (await lane.engine.step()));
    const capacity = { alu: [] as number[], memory: [] as number[] };
    for (let w = 0; w < WINDOWS; w++) {
      capacity.alu.push(await twoThreadSpeedup("alu"));
      capacity.memory.push(await twoThreadSpeedup("memory"));
      const until_ns = WARMUP_NS + ((w + 1) * MEASURED_NS) / WINDOWS;
      for (let k = 0; k < lanes.length; k++) await runWindow(lanes[(w + k) % lanes.length]!, until_ns);
      progress(`${c.label}: window ${w + 1}/${WINDOWS}: machine ${capacity.alu[w]!.toFixed(2)}x / ${capacity.memory[w]!.toFixed(2)}x, ${lanes.map((l) => `${laneLabel(l)} ${l.window_wall_per_virtual[w]!.toFixed(2)}`).join(", ")}`);
    }
    const capacity_median = { alu: median(capacity.alu), memory: median(capacity.memory) };
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
    note(`\n${c.label}: machine two-thread speed-up, median over ${WINDOWS} probes: alu ${capacity_median.alu.toFixed(2)}x (${range(capacity.alu)}), memory ${capacity_median.memory.toFixed(2)}x (${range(capacity.memory)})`);
    // Each lane against the sequential lane of its own gate build.
    const rows = lanes.map((lane) => laneRow(lane, lanes.find((l) => l.mode === "sequential" && l.gate === lane.gate)!, capacity_median));
    printTable(["mode", "wall/virtual", "speed-up", "per window: median (range)", "of machine (alu / memory)", "QEMU cpu/virtual", "engine cpu/virtual", "cpu/wall", "idle/wall", "run delay/wall", `in flight (${IN_FLIGHT_CORES.map((n) => (n === Infinity ? "all" : `≤${n}`)).join(" / ")})`, "slices / begun early"], rows, 1);
  } finally {
    for (const lane of lanes) await lane.cluster.stop();
  }
}

async function main(): Promise<void> {
  const { snapshot } = await benchSnapshot(progress);
  const cases: ParallelCase[] = [
    { label: "3 VMs, ping floods (1 ms, both peers)", vms: 3, command: "sleep 0.5; for p in {peers}; do ping -q -i 0.001 $p > /dev/null & done" },
    ...(QUICK ? [] : [{ label: "8 busy VMs (each floods its successor, 1 ms)", vms: 8, command: "sleep 0.5; ping -q -i 0.001 {next} > /dev/null" }]),
  ];
  const modes = selectedModes();
  const gates = selectedGates();
  for (const c of selectedCases(cases)) await runCase(c, modes, gates, snapshot);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  note(
    `\n${MEASURED_NS / 1e9} s of virtual time per mode after ${WARMUP_NS / 1e9} s, in ${WINDOWS} windows the modes take in turns (order rotating); ` +
      `speed-up: one at a time's wall/virtual over the mode's, over all windows; per window: each window's own; of machine: the speed-up over the median two-thread speed-up of each probe; in flight: slices running at once, capped at 2, 4, 8 cores and not; load average at the end ${load}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
