// `tapsim info TRACE`: header, counts, duration, per-node and per-link statistics.

import type { Command } from "commander";
import type { TraceHeader } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { formatMs, quoteText } from "../recorder/describe.js";
import { TraceReader } from "../recorder/reader.js";
import { TraceStats } from "../recorder/stats.js";
import { guestIoText, linkLine } from "./diff.js";

const LINKS_SHOWN_MAX = 40;
const FAULTS_SHOWN_MAX = 40;

export function registerInfo(program: Command, setExit: (code: number) => void): void {
  program
    .command("info")
    .description("summarise a trace: configuration, counts, per-node and per-link statistics")
    .argument("<trace>", "trace file")
    .option("--json", "machine-readable output", false)
    .action((path: string, flags: { json: boolean }) => {
      const reader = TraceReader.open(path);
      const stats = new TraceStats(reader.header.config.nodes.length);
      for (const r of reader.records()) stats.add(r);
      const status = reader.status();
      reader.close();
      if (flags.json) {
        console.log(JSON.stringify({ trace: path, header: reader.header, status, counts: stats.kind_counts, records: stats.records, duration_ns: stats.t_ns_max, end_reason: stats.end_reason, nodes: stats.nodeList(), links: stats.linkList(), unrouted_drops: stats.unrouted_drops, drops_by_reason: stats.drops_by_reason, faults: stats.faults }, null, 2));
      } else {
        printInfo(path, reader.header, stats, status.complete, reader.file_size);
      }
      setExit(0);
    });
}

function printInfo(path: string, header: TraceHeader, stats: TraceStats, complete: boolean, file_size: number): void {
  const c = header.config;
  console.log(`trace: ${path} (${(file_size / 1024).toFixed(1)} KiB), format ${header.format_version}, tapsim ${header.tapsim_version}, created ${header.created_at}`);
  console.log(`config: ${c.nodes.length} nodes, topology ${c.topology.source}, seed ${c.seed}, workload ${c.workload ? JSON.stringify(c.workload) : "none"}`);
  console.log(`        until ${c.until_ns === null ? "quiescent" : formatVirtualNs(c.until_ns)}, slice max ${formatVirtualNs(c.slice_len_max_ns)}${c.parallel === true ? ", parallel slices (grant sets)" : ""}`);
  console.log(`status: ${complete ? "complete" : "INCOMPLETE (no clean end: the run was killed or is still running)"}; ended: ${stats.end_reason ?? "-"}`);
  console.log(`duration: ${formatVirtualNs(stats.t_ns_max)} virtual; ${stats.records} records: ${Object.entries(stats.kind_counts).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log("nodes:");
  for (const n of stats.nodeList()) {
    const name = c.nodes[n.node]?.name ?? "?";
    console.log(
      `  ${String(n.node).padStart(3)} ${name.padEnd(10)} slices ${n.slices}, busy ${formatMs(n.slice_ns_total)}, sent ${n.frames_sent} (${n.bytes_sent} B), ` +
        `received ${n.frames_received}, dropped ${n.frames_dropped_to}, marks ${n.marks}` +
        (stats.guest_io ? `; ${guestIoText(n)}` : "") +
        (n.commands_started + n.commands_exited > 0 ? `; commands started ${n.commands_started}, exited ${n.commands_exited}` : ""),
    );
  }
  printFaults(stats, header);
  const links = stats.linkList();
  console.log(`links (${links.length} used):`);
  for (const l of links.slice(0, LINKS_SHOWN_MAX)) {
    const range = l.frames_delivered ? ` [${formatMs(l.latency_ns_min)} .. ${formatMs(l.latency_ns_max)}]` : "";
    console.log(`  ${l.from}->${l.to}: ${linkLine(l)}${range}`);
  }
  if (links.length > LINKS_SHOWN_MAX) console.log(`  ... ${links.length - LINKS_SHOWN_MAX} more (--json for all)`);
  if (stats.unrouted_drops) console.log(`unrouted frames dropped: ${stats.unrouted_drops}`);
  const drops = Object.entries(stats.drops_by_reason);
  if (drops.length > 0) console.log(`drops by reason: ${drops.map(([k, v]) => `${k} ${v}`).join(", ")}`);
}

/** The fault records (node faults and network changes), as the run applied them. */
function printFaults(stats: TraceStats, header: TraceHeader): void {
  if (stats.faults.length === 0) return;
  console.log(`faults (${stats.faults.length}):`);
  for (const f of stats.faults.slice(0, FAULTS_SHOWN_MAX)) {
    const who = f.node < 0 ? "network" : `node ${f.node} ${header.config.nodes[f.node]?.name ?? "?"}`;
    console.log(`  ${formatVirtualNs(f.t_ns)} ${who}: ${f.action}${f.detail ? ` ${quoteText(f.detail)}` : ""}`);
  }
  if (stats.faults.length > FAULTS_SHOWN_MAX) console.log(`  ... ${stats.faults.length - FAULTS_SHOWN_MAX} more (--json for all)`);
}
