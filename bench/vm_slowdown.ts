// Slowdown factor (wall time / virtual time) of VM runs behind the slice gate: 3 and 8 idle
// VMs of the default guest, and 3 VMs flooding each other with pings (busybox ping at 1 ms
// intervals to both peers). Boot is excluded: the clock starts once every VM has run past
// BOOT_NS of virtual time (the guests are up and idle, or pinging, by then). Baseline for the
// ratio column: the same window of virtual time on one idle VM, measured in the same run.
// BENCH_PARALLEL=1 runs every case with parallel slices (RunConfig.parallel: all VMs whose
// slices are safe at once get RUN before any DONE is awaited); compare with a run without.

import { pathToFileURL } from "node:url";
import { createEngine, makeRunConfig } from "../engine/run.js";
import type { RecordSink } from "../engine/trace_records.js";
import { ensureDefaultImage } from "../guest/image.js";
import { VmCluster } from "../qmp/vm_cluster.js";
import { awsLikeTopology, fmtRatio, note, printTable, QUICK } from "./common.js";

const BOOT_NS = 6_000_000_000;
const WINDOW_NS = QUICK ? 10_000_000_000 : 30_000_000_000;
const NULL_SINK: RecordSink = { write: () => {} };

export interface Case {
  label: string;
  vms: number;
  boot_command: string | null;
  /** The grant-set schedule (RunConfig.parallel): VMs whose slices are safe at once run at once. Default: BENCH_PARALLEL=1. */
  parallel?: boolean;
}

export async function slowdown(c: Case): Promise<{ slowdown: number; frames: number }> {
  const topology = awsLikeTopology(c.vms);
  const parallel = c.parallel ?? process.env["BENCH_PARALLEL"] === "1";
  const config = makeRunConfig({ topology, workload: null, seed: 1, until_ns: BOOT_NS + WINDOW_NS, backend: "vm", parallel });
  const image = await ensureDefaultImage();
  const boot_commands = config.nodes.map((n) => (c.boot_command === null ? null : c.boot_command.replace(/\{peers\}/g, config.nodes.filter((p) => p.id !== n.id).map((p) => p.ip).join(" "))));
  const cluster = await VmCluster.start({ config, image, ssh_port_base: 41222, memory_mib: 256, rtc_base: "2025-01-01T00:00:00", boot_commands, onCrash: (b) => { throw new Error(b.crash ?? "crash"); } });
  try {
    const engine = createEngine(config, cluster.backends, NULL_SINK);
    while (engine.now_ns < BOOT_NS && (await engine.step()));
    const frames_before = engine.stats.frames_emitted;
    const t0 = process.hrtime.bigint();
    const virtual_before = engine.now_ns;
    while (await engine.step());
    const wall_ns = Number(process.hrtime.bigint() - t0);
    return { slowdown: wall_ns / (engine.now_ns - virtual_before), frames: engine.stats.frames_emitted - frames_before };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const flood = "sleep 4; for p in {peers}; do ping -q -i 0.001 $p > /dev/null & done";
  const cases: Case[] = [
    { label: "1 idle VM (baseline)", vms: 1, boot_command: null },
    { label: "3 idle VMs", vms: 3, boot_command: null },
    ...(QUICK ? [] : [{ label: "8 idle VMs", vms: 8, boot_command: null }]),
    { label: "3 VMs, ping floods (1 ms, both peers)", vms: 3, boot_command: flood },
  ];
  const rows: string[][] = [];
  let base = 0;
  for (const c of cases) {
    const r = await slowdown(c);
    if (base === 0) base = r.slowdown;
    rows.push([c.label, r.slowdown.toFixed(3), fmtRatio(r.slowdown / base), String(r.frames)]);
  }
  printTable(["run", "wall/virtual", "vs 1 idle VM", "frames sent"], rows, 1);
  note(`window: ${WINDOW_NS / 1e9} s of virtual time after ${BOOT_NS / 1e9} s of boot; AWS-like 3-region latencies (46-125 ms); VMs run one at a time`);
}

// Imported (e.g. to measure one case alone) it only exports slowdown().
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
