// VMs at scale (issue #12 items 2 and 4): time to READY, memory per VM and wall/virtual for
// clusters of default guests, cold-booted or started from a snapshot (qmp/snapshot.ts), in
// one run so the ratios compare like with like on a noisy machine.
//
// READY here: every guest printed `tapsim-guest: ready` (init done, dropbear listening,
// agent up), wall time from the start of VmCluster.start. Closed world (no management
// TAPs): SSH handshakes would add the same host work to both modes. Snapshot builds are
// done before the clock starts (once per image and memory size; their time is printed).
// Memory: /proc/<qemu>/smaps_rollup of every QEMU after READY and 2 s of idle virtual
// time: RSS (shared pages counted whole), PSS (shared pages split among their users) and
// USS (private: Private_Clean + Private_Dirty), the memory each further VM costs.
// Parallel slices on (RunConfig.parallel), AWS-like 3-region topology (1 ms in a region).
//
//   node dist/bench/vm_scale.js          all cases (~15 min on 2 cores)
//   node dist/bench/vm_scale.js quick    3 VMs cold vs snapshot only (~2 min)
//   BENCH_SCALE_MAX=128 ...              also try 64 and 128 idle VMs (the largest that fits)

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { createEngine, makeRunConfig } from "../engine/run.js";
import type { Snapshot } from "../qmp/snapshot.js";
import { awsLikeTopology, fmtRatio, note, printTable, progress, QUICK } from "./common.js";
import { BENCH_MEMORY_MIB, benchSnapshot, NULL_SINK, startBenchCluster } from "./vm_common.js";

const IDLE_AFTER_READY_NS = 2_000_000_000;
const READY_NS_MAX = 60_000_000_000;
const READY_POLL_STEPS = 64;

export interface ScaleCase {
  readonly vms: number;
  readonly snapshot: boolean;
  /** Boot command with {peer} (the next node's IP), or null for idle guests. */
  readonly traffic: string | null;
  /** Virtual time measured after READY + the idle settle (0: none). */
  readonly window_ns: number;
}

export interface ScaleResult {
  ready_wall_s: number;
  ready_virtual_s: number;
  wall_per_virtual: number | null;
  frames: number;
  rss_mib: number;
  pss_mib: number;
  uss_mib: number;
}

export async function scaleCase(c: ScaleCase, snapshot: Snapshot | null): Promise<ScaleResult> {
  const topology = awsLikeTopology(c.vms);
  const config = makeRunConfig({ topology, workload: null, seed: 1, until_ns: null, backend: "vm", parallel: true });
  const boot_commands = config.nodes.map((n) => (c.traffic === null ? null : c.traffic.replace(/\{peer\}/g, config.nodes[(n.id + 1) % c.vms]!.ip)));
  const t0 = process.hrtime.bigint();
  const cluster = await startBenchCluster(config, boot_commands, snapshot);
  try {
    const engine = createEngine(config, cluster.backends, NULL_SINK);
    const consoles = cluster.backends.map((b) => b.vm.console_path);
    for (let steps = 0; ; steps++) {
      if (!(await engine.step()) || engine.now_ns > READY_NS_MAX) throw new Error(`${c.vms} VMs: not ready after ${engine.now_ns / 1e9} s virtual`);
      if (steps % READY_POLL_STEPS === 0 && consoles.every((p) => readFileSync(p, "utf8").includes("tapsim-guest: ready"))) break;
    }
    const ready_wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
    const ready_virtual_s = engine.now_ns / 1e9;
    const settle_end_ns = engine.now_ns + IDLE_AFTER_READY_NS;
    while (engine.now_ns < settle_end_ns && (await engine.step()));
    const memory = cluster.backends.map((b) => smapsRollupMib(b.vm.pid));
    let wall_per_virtual: number | null = null;
    const frames_before = engine.stats.frames_emitted;
    if (c.window_ns > 0) {
      const w0 = process.hrtime.bigint();
      const v0 = engine.now_ns;
      while (engine.now_ns < v0 + c.window_ns && (await engine.step()));
      wall_per_virtual = Number(process.hrtime.bigint() - w0) / (engine.now_ns - v0);
    }
    const mean = (k: "rss" | "pss" | "uss") => memory.reduce((s, m) => s + m[k], 0) / memory.length;
    return { ready_wall_s, ready_virtual_s, wall_per_virtual, frames: engine.stats.frames_emitted - frames_before, rss_mib: mean("rss"), pss_mib: mean("pss"), uss_mib: mean("uss") };
  } finally {
    await cluster.stop();
  }
}

function smapsRollupMib(pid: number): { rss: number; pss: number; uss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rss: kib("Rss") / 1024, pss: kib("Pss") / 1024, uss: (kib("Private_Clean") + kib("Private_Dirty")) / 1024 };
}

const PAIR_REPEATS = 3;

/** The repetition with the median READY wall time (its memory figures come with it). */
function medianBy(results: ScaleResult[]): ScaleResult {
  return [...results].sort((a, b) => a.ready_wall_s - b.ready_wall_s)[Math.floor(results.length / 2)]!;
}

async function main(): Promise<void> {
  const { snapshot, built } = await benchSnapshot(progress);
  const manifest = JSON.parse(readFileSync(`${snapshot.dir}/snapshot.json`, "utf8")) as { build_wall_ms: number };
  note(`snapshot ${snapshot.dir} (${built ? "built now" : "cached"}; its build took ${(manifest.build_wall_ms / 1000).toFixed(1)} s, once per image and memory size)`);

  const traffic = "sleep 1; ping -q -i 0.01 {peer} > /dev/null";
  const scale_max = Number(process.env["BENCH_SCALE_MAX"] ?? "32");
  const pairs = QUICK ? [3] : [3, 16];
  const rows: string[][] = [];
  const row = (label: string, r: ScaleResult, vs: string) =>
    rows.push([label, r.ready_wall_s.toFixed(1), r.ready_virtual_s.toFixed(2), vs, r.wall_per_virtual === null ? "-" : r.wall_per_virtual.toFixed(2), String(r.frames), r.rss_mib.toFixed(0), r.pss_mib.toFixed(0), r.uss_mib.toFixed(0)]);
  for (const vms of pairs) {
    // Alternating repetitions, the median READY of each mode: the load of other work hits both.
    const colds: ScaleResult[] = [];
    const snaps: ScaleResult[] = [];
    for (let r = 0; r < PAIR_REPEATS; r++) {
      progress(`${vms} VMs, cold boot (${r + 1}/${PAIR_REPEATS})`);
      colds.push(await scaleCase({ vms, snapshot: false, traffic: null, window_ns: 0 }, null));
      progress(`${vms} VMs, from the snapshot (${r + 1}/${PAIR_REPEATS})`);
      snaps.push(await scaleCase({ vms, snapshot: true, traffic: null, window_ns: 0 }, snapshot));
    }
    const [cold, snap] = [medianBy(colds), medianBy(snaps)];
    row(`${vms} idle VMs, cold boot`, cold, "1.00");
    row(`${vms} idle VMs, snapshot`, snap, `${fmtRatio(cold.ready_wall_s / snap.ready_wall_s)}x faster`);
  }
  if (!QUICK) {
    const window_ns = 10_000_000_000;
    progress("16 VMs with traffic, from the snapshot");
    row("16 VMs pinging (10 ms), snapshot, 10 s window", await scaleCase({ vms: 16, snapshot: true, traffic, window_ns }, snapshot), "");
    for (let vms = 32; vms <= scale_max; vms *= 2) {
      progress(`${vms} idle VMs, from the snapshot`);
      row(`${vms} idle VMs, snapshot, ${vms > 32 ? 2 : 10} s window`, await scaleCase({ vms, snapshot: true, traffic: null, window_ns: vms > 32 ? 2_000_000_000 : window_ns }, snapshot), "");
    }
  }
  printTable(["case", "READY wall s", "READY virtual s", "READY vs cold", "wall/virtual", "frames", "RSS MiB/VM", "PSS MiB/VM", "USS MiB/VM"], rows, 1);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  note(`guest memory ${BENCH_MEMORY_MIB} MiB; memory read after READY + ${IDLE_AFTER_READY_NS / 1e9} s idle; cold/snapshot rows: median READY of ${PAIR_REPEATS} alternating repetitions; parallel slices; AWS-like topology; load average at the end ${load}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
