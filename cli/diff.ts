// `tapsim diff A B`: first divergence with context, config differences, per-node and
// per-link summaries. Exit 0 when the event streams are identical, 1 when not.

import type { Command } from "commander";
import { formatVirtualNs } from "../engine/units.js";
import { recordTimeNs, type TraceRecord } from "../engine/trace_records.js";
import { describeRecord, formatMs } from "../recorder/describe.js";
import { diffTraces, type DiffResult } from "../recorder/diff.js";
import type { LinkStats, NodeStats } from "../recorder/stats.js";
import { integerOption } from "./options.js";
import { jsonBytes } from "./replay.js";
import { diffPage } from "../recorder/viewer/page.js";
import { kib, writePage } from "./view.js";

const ROWS_MAX = 20;

export function registerDiff(program: Command, setExit: (code: number) => void): void {
  program
    .command("diff")
    .description("compare two traces event by event")
    .argument("<a>", "first trace")
    .argument("<b>", "second trace")
    .option("-C, --context <n>", "records of context before the divergence", integerOption("--context", 0, 1000), 5)
    .option("--json", "machine-readable result", false)
    .option("--html <file>", "also write both traces on one time axis, first divergence marked, as an HTML page")
    .action((a: string, b: string, flags: { context: number; json: boolean; html?: string }) => {
      const result = diffTraces(a, b, flags.context);
      if (flags.html !== undefined) writeDiffPage(a, b, flags.html, flags.json);
      if (flags.json) console.log(JSON.stringify({ a, b, ...result }, jsonBytes, 2));
      else printDiff(a, b, result);
      setExit(result.equivalent ? 0 : 1);
    });
}

function writeDiffPage(a: string, b: string, out: string, json: boolean): void {
  const { html } = diffPage(a, b);
  writePage(out, html);
  // stderr under --json, so that stdout stays one JSON document.
  (json ? console.error : console.log)(`tapsim diff: wrote ${out} (${kib(html)} KiB)`);
}

function printDiff(a: string, b: string, r: DiffResult): void {
  for (const line of r.config_differences) console.log(`config differs: ${line}`);
  if (r.incomplete.a || r.incomplete.b) console.log(`note: ${[r.incomplete.a ? a : "", r.incomplete.b ? b : ""].filter(Boolean).join(" and ")} ends without a clean end (killed run?)`);
  if (r.equivalent) {
    console.log(`diff: equivalent: ${r.records_a} records, identical event by event`);
    return;
  }
  const d = r.first_divergence!;
  const at = d.a ?? d.b;
  console.log(`diff: first divergence at record #${d.index}${at ? ` (t=${formatVirtualNs(recordTimeNs(at))})` : ""}`);
  for (const rec of d.context) console.log(`  same  ${describeRecord(rec)}`);
  console.log(`  A     ${describe(d.a)}`);
  console.log(`  B     ${describe(d.b)}`);
  console.log(`diff: ${r.records_a} vs ${r.records_b} records; ${r.differing_positions} positions differ`);
  printNodes(r);
  printLinks(r);
}

function printNodes(r: DiffResult): void {
  if (r.nodes.length === 0) return;
  console.log(`nodes that differ (${r.nodes.length}):   A -> B`);
  for (const d of r.nodes.slice(0, ROWS_MAX)) {
    const io = hasGuestIo(d.a) || hasGuestIo(d.b);
    console.log(`  node ${d.node}: ${nodeLine(d.a, io)}  ->  ${nodeLine(d.b, io)}`);
  }
  if (r.nodes.length > ROWS_MAX) console.log(`  ... ${r.nodes.length - ROWS_MAX} more (--json for all)`);
}

function printLinks(r: DiffResult): void {
  if (r.links.length === 0) return;
  console.log(`links that differ (${r.links.length}):   A -> B`);
  for (const d of r.links.slice(0, ROWS_MAX)) {
    console.log(`  ${d.from}->${d.to}: ${linkLine(d.a)}  ->  ${linkLine(d.b)}`);
  }
  if (r.links.length > ROWS_MAX) console.log(`  ... ${r.links.length - ROWS_MAX} more (--json for all)`);
}

/** io: add console output and management frames (when either run has any, so both sides read alike). */
function nodeLine(n: NodeStats | null, io: boolean): string {
  if (n === null) return "absent";
  const line = `sent ${n.frames_sent}, received ${n.frames_received}, dropped ${n.frames_dropped_to}, slices ${n.slices}, marks ${n.marks}`;
  return io ? `${line}, ${guestIoText(n)}` : line;
}

function hasGuestIo(n: NodeStats | null): boolean {
  return n !== null && n.console_records + n.mgmt_in_frames + n.mgmt_out_frames > 0;
}

/** A node's console output and management frames, apart from its simulated frames. */
export function guestIoText(n: NodeStats): string {
  return `console ${n.console_bytes} B in ${n.console_records} outputs, mgmt in ${n.mgmt_in_frames} (${n.mgmt_in_bytes} B), mgmt out ${n.mgmt_out_frames} (${n.mgmt_out_bytes} B)`;
}

export function linkLine(l: LinkStats | null): string {
  if (l === null) return "absent";
  const drops = Object.entries(l.drops).map(([k, v]) => `${k} ${v}`).join(", ");
  const mean = l.frames_delivered ? formatMs(l.latency_ns_sum / l.frames_delivered) : "-";
  return `${l.frames_delivered} delivered, latency mean ${mean}${drops ? `, dropped ${drops}` : ""}`;
}

function describe(rec: TraceRecord | null): string {
  return rec === null ? "(trace ended)" : describeRecord(rec);
}
