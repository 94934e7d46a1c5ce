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
//   node dist/bench/vm_parallel.js quick     the 3-VM case, one repetition
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
import { benchSnapshot, NULL_SINK, startBenchCluster } from "./vm_common.js";

const WARMUP_NS = 1_000_000_000;
const WINDOW_NS = 2_000_000_000;
const REPEATS = QUICK ? 1 : Number(process.env["BENCH_REPEATS"] ?? 2);

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

/** Wall seconds per virtual second over the window, and frames sent in it. */
async function measure(c: ParallelCase, mode: Mode, snapshot: Snapshot): Promise<{ wall_per_virtual: number; frames: number; slices: number; early: number }> {
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
    const before = { frames: engine.stats.frames_emitted, slices: engine.stats.slices, virtual_ns: engine.now_ns, early: engine.slices_begun_early };
    const t0 = process.hrtime.bigint();
    while (await engine.step());
    const wall_ns = Number(process.hrtime.bigint() - t0);
    return {
      wall_per_virtual: wall_ns / (engine.now_ns - before.virtual_ns),
      frames: engine.stats.frames_emitted - before.frames,
      slices: engine.stats.slices - before.slices,
      early: engine.slices_begun_early - before.early,
    };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const { snapshot } = await benchSnapshot(progress);
  const cases: ParallelCase[] = [
    { label: "3 VMs, ping floods (1 ms, both peers)", vms: 3, command: "sleep 0.5; for p in {peers}; do ping -q -i 0.001 $p > /dev/null & done" },
    ...(QUICK ? [] : [{ label: "8 busy VMs (each floods its successor, 1 ms)", vms: 8, command: "sleep 0.5; ping -q -i 0.001 {next} > /dev/null" }]),
  ];
  const rows: string[][] = [];
  for (const c of cases) {
    const wall: Record<Mode, number[]> = { sequential: [], sets: [], pipelined: [], "pipelined-long": [] };
    const last = new Map<Mode, { frames: number; slices: number; early: number }>();
    for (let r = 0; r < REPEATS; r++) {
      for (const mode of MODES) {
        progress(`${c.label}: repetition ${r + 1}, ${mode}`);
        const m = await measure(c, mode, snapshot);
        wall[mode].push(m.wall_per_virtual);
        last.set(mode, m);
      }
    }
    const [s, g, p, l] = MODES.map((mode) => median(wall[mode]));
    const per = (f: (m: { frames: number; slices: number; early: number }) => number) => MODES.map((mode) => f(last.get(mode)!)).join(" / ");
    const x = (v: number) => `${(s! / v).toFixed(2)}x`;
    rows.push([c.label, s!.toFixed(2), g!.toFixed(2), p!.toFixed(2), l!.toFixed(2), x(g!), x(p!), x(l!), per((m) => m.slices), `${last.get("pipelined")!.early} / ${last.get("pipelined-long")!.early}`]);
  }
  printTable(["case", "seq wall/virtual", "sets", "pipelined", "pipelined-long", "sets speed-up", "pipelined speed-up", "pipelined-long speed-up", "slices seq / sets / pip / pip-long", "begun early pip / pip-long"], rows, 1);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  note(`window ${WINDOW_NS / 1e9} s of virtual time after ${WARMUP_NS / 1e9} s; median of ${REPEATS} repetitions, modes alternating; load average at the end ${load}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
