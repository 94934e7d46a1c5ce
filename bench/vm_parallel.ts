// Parallel slices on VMs (issue #12 item 1): wall time per virtual second of busy clusters,
// one slice at a time against lock-step grant sets (RunConfig.parallel: every VM whose slice
// is safe at once gets RUN before any DONE is awaited) and against the pipelined schedule
// (RunConfig.pipelined, what `tapsim run --parallel` does: sets planned one ahead, a VM's
// next slice begun as soon as no running peer can send into it), with lookahead-long slices
// ("pipelined-long", the CLI's choice) and with half-lookahead ones ("pipelined"). All in one
// process, the modes alternating so that machine load hits them alike. VMs start from the
// snapshot (the boot is not what is measured); the window starts WARMUP_NS after the start.
//
//   node dist/bench/vm_parallel.js           3 VMs ping-flooding both peers; 8 VMs each
//                                            flooding its successor (busy guests)
//   BENCH_REPEATS=4 node dist/bench/...      more repetitions (median), default 2
//   BENCH_MODES=sets,pipelined-long ...      only these modes besides one at a time
//   node dist/bench/vm_parallel.js quick     the 3-VM case, one repetition
//
// Beside wall time it reports CPU time per virtual second (QEMUs and the engine's process, from
// /proc) and cpu/wall (how many of the cores the run kept busy), and before every measurement it
// probes what the machine gives two threads right now (bench/cpu_capacity.ts): these VMs' two
// vCPUs are sometimes one core's worth, so a speed-up is also given as a share of that.
//
// Expected on N cores with k equally busy VMs: lock-step sets wait for their busiest core,
// about k / ceil(k / N); pipelined, no set waits for the whole one before it, up to min(N, k),
// less the engine's serial work per switch (routing, records) and what the host's scheduler
// loses to context switches between the QEMUs' threads. One at a time also pays every RUN/DONE
// wake-up in series, so on a quiet machine the measured speed-up can exceed these bounds.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { createEngine, makeRunConfig, pipelinedSliceLenMaxNs } from "../engine/run.js";
import type { Snapshot } from "../qmp/snapshot.js";
import { awsLikeTopology, median, note, printTable, progress, QUICK } from "./common.js";
import { ownCpuS, processCpuS, twoThreadSpeedup } from "./cpu_capacity.js";
import { benchSnapshot, NULL_SINK, startBenchCluster } from "./vm_common.js";

const WARMUP_NS = 1_000_000_000;
const WINDOW_NS = 2_000_000_000;
const REPEATS = Number(process.env["BENCH_REPEATS"] ?? (QUICK ? 1 : 2));

interface ParallelCase {
  readonly label: string;
  readonly vms: number;
  /** Boot command; {peers}: every other node's IP, {next}: the successor's. */
  readonly command: string;
}

/**
 * How slices are scheduled: one at a time, lock-step grant sets, pipelined grant sets with
 * slices of half the smallest lookahead (what `tapsim run --parallel` does), or pipelined
 * with slices as long as each VM's lookahead allows (fewer switches, fewer early begins).
 */
type Mode = "sequential" | "sets" | "pipelined" | "pipelined-long";
const MODES: readonly Mode[] = ["sequential", "sets", "pipelined", "pipelined-long"];

interface Measured {
  /** Wall seconds per virtual second over the window. */
  readonly wall_per_virtual: number;
  /** CPU seconds per virtual second over the window: the QEMUs (all threads) and the engine's process. */
  readonly qemu_cpu_per_virtual: number;
  readonly engine_cpu_per_virtual: number;
  readonly frames: number;
  readonly slices: number;
  readonly early: number;
}

/** Wall and CPU time per virtual second over the window, and frames sent in it. */
async function measure(c: ParallelCase, mode: Mode, snapshot: Snapshot): Promise<Measured> {
  const topology = awsLikeTopology(c.vms);
  const pipelined = mode === "pipelined" || mode === "pipelined-long";
  const slice_len_max_ns = mode === "pipelined" ? pipelinedSliceLenMaxNs(topology) : undefined;
  const config = makeRunConfig({ topology, workload: null, seed: 1, until_ns: WARMUP_NS + WINDOW_NS, backend: "vm", parallel: mode !== "sequential", pipelined, slice_len_max_ns });
  const ips = config.nodes.map((n) => n.ip);
  const boot_commands = config.nodes.map((n) => c.command.replace(/\{peers\}/g, ips.filter((_, i) => i !== n.id).join(" ")).replace(/\{next\}/g, ips[(n.id + 1) % c.vms]!));
  const cluster = await startBenchCluster(config, boot_commands, snapshot);
  try {
    const engine = createEngine(config, cluster.backends, NULL_SINK);
    while (engine.now_ns < WARMUP_NS && (await engine.step()));
    const pids = cluster.backends.map((b) => b.vm.pid);
    const qemuCpuS = () => pids.reduce((sum, pid) => sum + processCpuS(pid), 0);
    const before = { frames: engine.stats.frames_emitted, slices: engine.stats.slices, virtual_ns: engine.now_ns, early: engine.slices_begun_early, qemu_cpu_s: qemuCpuS(), engine_cpu_s: ownCpuS() };
    const t0 = process.hrtime.bigint();
    while (await engine.step());
    const wall_ns = Number(process.hrtime.bigint() - t0);
    // Read before stop: a QEMU that has exited has no /proc entry.
    const qemu_cpu_s = qemuCpuS() - before.qemu_cpu_s;
    const engine_cpu_s = ownCpuS() - before.engine_cpu_s;
    const virtual_s = (engine.now_ns - before.virtual_ns) / 1e9;
    return {
      wall_per_virtual: wall_ns / 1e9 / virtual_s,
      qemu_cpu_per_virtual: qemu_cpu_s / virtual_s,
      engine_cpu_per_virtual: engine_cpu_s / virtual_s,
      frames: engine.stats.frames_emitted - before.frames,
      slices: engine.stats.slices - before.slices,
      early: engine.slices_begun_early - before.early,
    };
  } finally {
    await cluster.stop();
  }
}

/** BENCH_MODES=sequential,pipelined-long runs only those modes (sequential is always run: it is the baseline). */
function selectedModes(): readonly Mode[] {
  const names = process.env["BENCH_MODES"]?.split(",") ?? MODES;
  for (const n of names) if (!MODES.includes(n as Mode)) throw new Error(`BENCH_MODES: unknown mode "${n}" (modes: ${MODES.join(", ")})`);
  return MODES.filter((m) => m === "sequential" || names.includes(m));
}

/** One mode's figures over the repetitions, each repetition's speed-up taken against that repetition's own sequential run. */
function modeRow(mode: Mode, runs: readonly Measured[], sequential: readonly Measured[], capacity: readonly number[]): string[] {
  const speedups = runs.map((m, r) => sequential[r]!.wall_per_virtual / m.wall_per_virtual);
  const cpu = runs.map((m) => m.qemu_cpu_per_virtual + m.engine_cpu_per_virtual);
  const utilisation = runs.map((m, r) => cpu[r]! / m.wall_per_virtual);
  const x = (v: number) => `${v.toFixed(2)}x`;
  const last = runs[runs.length - 1]!;
  return [
    mode,
    median(runs.map((m) => m.wall_per_virtual)).toFixed(2),
    mode === "sequential" ? "" : x(median(speedups)),
    mode === "sequential" ? "" : speedups.map((v) => v.toFixed(2)).join(" "),
    mode === "sequential" ? "" : `${((100 * median(speedups)) / median(capacity)).toFixed(0)} %`,
    median(runs.map((m) => m.qemu_cpu_per_virtual)).toFixed(2),
    median(runs.map((m) => m.engine_cpu_per_virtual)).toFixed(2),
    median(utilisation).toFixed(2),
    `${last.slices} / ${last.early}`,
  ];
}

async function main(): Promise<void> {
  const { snapshot } = await benchSnapshot(progress);
  const cases: ParallelCase[] = [
    { label: "3 VMs, ping floods (1 ms, both peers)", vms: 3, command: "sleep 0.5; for p in {peers}; do ping -q -i 0.001 $p > /dev/null & done" },
    ...(QUICK ? [] : [{ label: "8 busy VMs (each floods its successor, 1 ms)", vms: 8, command: "sleep 0.5; ping -q -i 0.001 {next} > /dev/null" }]),
  ];
  const modes = selectedModes();
  for (const c of cases) {
    const runs = new Map<Mode, Measured[]>(modes.map((m) => [m, []]));
    // The machine's own two-thread speed-up, probed right before every measurement.
    const capacity: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      for (const mode of modes) {
        capacity.push(await twoThreadSpeedup());
        progress(`${c.label}: repetition ${r + 1}, ${mode} (machine two-thread speed-up ${capacity[capacity.length - 1]!.toFixed(2)}x)`);
        runs.get(mode)!.push(await measure(c, mode, snapshot));
      }
    }
    note(`\n${c.label}: machine two-thread speed-up (median of ${capacity.length} probes) ${median(capacity).toFixed(2)}x, probes ${capacity.map((v) => v.toFixed(2)).join(" ")}`);
    const sequential = runs.get("sequential")!;
    const rows = modes.map((mode) => modeRow(mode, runs.get(mode)!, sequential, capacity));
    printTable(["mode", "wall/virtual", "speed-up", "per repetition", "of machine", "QEMU cpu/virtual", "engine cpu/virtual", "cpu/wall", "slices / begun early"], rows, 1);
  }
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  note(`\nwindow ${WINDOW_NS / 1e9} s of virtual time after ${WARMUP_NS / 1e9} s; median of ${REPEATS} repetitions, modes alternating; speed-up: median of each repetition's against its own sequential run; of machine: that speed-up over the machine's two-thread speed-up; load average at the end ${load}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
