// Run results on disk and on the terminal: results.json (everything), three CSV tables
// (RFC 4180: header row, CRLF line ends, fields with a comma, quote or line break quoted,
// quotes doubled) and results.txt, the table `tapsim results` prints. Each file goes
// through OutputFile (temporary file, then rename), so a failure never leaves half a file.

import { statSync } from "node:fs";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import { DROP_REASONS } from "../engine/trace_records.js";
import { formatVirtualNs } from "../engine/units.js";
import { formatMs } from "../recorder/describe.js";
import { writeOutput } from "../recorder/output_file.js";
import type { CommandResult, LinkResult, MetricResult, MetricStats, RunResults } from "./results.js";

/** The files writeResults puts in the run directory, in the order it writes them (results.json last: once it is there, all are). */
export const RESULT_FILES = ["commands.csv", "metrics.csv", "links.csv", "results.txt", "results.json"] as const;

/** Links and faults printed in the table; the files have all of them. */
const TABLE_LINKS_MAX = 40;
const TABLE_FAULTS_MAX = 40;
/** Command lines longer than this are cut in the table (the CSV and JSON have them whole). */
const TABLE_COMMAND_CHARS_MAX = 40;

/** Writes RESULT_FILES into `run_dir` (which must exist); a file that cannot be written is a one-line error. */
export function writeResults(run_dir: string, results: RunResults): void {
  const stat = statSync(run_dir, { throwIfNoEntry: false });
  if (stat === undefined) throw new InputError(`${run_dir}: cannot write results: no such directory`);
  if (!stat.isDirectory()) throw new InputError(`${run_dir}: cannot write results: not a directory`);
  const contents: Record<(typeof RESULT_FILES)[number], () => string> = {
    "commands.csv": () => commandsCsv(results),
    "metrics.csv": () => metricsCsv(results),
    "links.csv": () => linksCsv(results),
    "results.txt": () => formatResultsTable(results),
    "results.json": () => resultsJson(results),
  };
  for (const name of RESULT_FILES) {
    const text = contents[name]();
    writeOutput(path.join(run_dir, name), (out) => out.write(text));
  }
}

/** results.json's text: the RunResults object as built (its key order is fixed by construction). */
export function resultsJson(results: RunResults): string {
  return `${JSON.stringify(results, null, 2)}\n`;
}

// ---- CSV ------------------------------------------------------------------------------

type CsvValue = string | number | boolean | null;

/** One RFC 4180 field: quoted when it holds a comma, a quote, CR or LF (quotes doubled); null is empty. */
export function csvField(value: CsvValue): string {
  if (value === null) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvText(header: readonly string[], rows: readonly CsvValue[][]): string {
  for (const row of rows) if (row.length !== header.length) throw new Error(`csv row of ${row.length} fields under a header of ${header.length}`);
  return [header, ...rows].map((row) => `${row.map(csvField).join(",")}\r\n`).join("");
}

export const COMMANDS_CSV_HEADER = ["node", "node_name", "id", "command", "status", "start_ns", "exit_ns", "duration_ns", "duration_ms", "result", "exit_detail", "exit_code", "timed_out", "ok"] as const;

export function commandsCsv(results: RunResults): string {
  const rows = results.commands.map((c) => [c.node, c.node_name, c.id, c.run, c.status, c.start_ns, c.exit_ns, c.duration_ns, c.duration_ms, c.result, c.exit_detail, c.exit_code, c.timed_out, c.ok]);
  return csvText(COMMANDS_CSV_HEADER, rows);
}

/** One row per metric for all its nodes (node empty, node_name "all"), then one per node. */
export const METRICS_CSV_HEADER = ["metric", "unit", "node", "node_name", "count", "mean", "p50", "p99", "min", "max", "unparsable", "percentiles_exact"] as const;

export function metricsCsv(results: RunResults): string {
  const row = (m: MetricResult, node: number | null, name: string, s: MetricStats): CsvValue[] => [m.name, m.unit, node, name, s.count, s.mean, s.p50, s.p99, s.min, s.max, s.unparsable, s.percentiles_exact];
  const rows = results.metrics.flatMap((m) => [row(m, null, "all", m.overall), ...m.per_node.map((n) => row(m, n.node, n.node_name, n))]);
  return csvText(METRICS_CSV_HEADER, rows);
}

export const LINKS_CSV_HEADER = ["from", "from_name", "to", "to_name", "frames_delivered", "bytes_delivered", "latency_ns_min", "latency_ns_mean", "latency_ns_max", ...DROP_REASONS.map((r) => `drops_${r}`), "drops_total"] as const;

export function linksCsv(results: RunResults): string {
  const rows = results.links.map((l) => [l.from, l.from_name, l.to, l.to_name, l.frames_delivered, l.bytes_delivered, l.latency_ns_min, l.latency_ns_mean, l.latency_ns_max, ...DROP_REASONS.map((r) => l.drops[r] ?? 0), l.drops_total]);
  return csvText(LINKS_CSV_HEADER, rows);
}

// ---- the table ------------------------------------------------------------------------

/** The results for people: run, commands, metrics, links, faults; ends with a newline. */
export function formatResultsTable(results: RunResults): string {
  const sections = [runSection(results), commandsSection(results.commands), metricsSection(results.metrics), linksSection(results), faultsSection(results)];
  return `${sections.filter((s) => s !== "").join("\n\n")}\n`;
}

function runSection(results: RunResults): string {
  const run = results.run;
  const ended = run.end_reason === null ? "no run_end record" : run.end_detail === null ? run.end_reason : `${run.end_reason}: ${run.end_detail}`;
  const lines = [`run: ended at ${formatVirtualNs(run.end_ns)} virtual (${ended}), ${run.node_count} nodes, topology ${run.topology_source}, seed ${run.seed}`];
  lines.push(run.scenario === null ? "scenario: none" : `scenario: ${run.scenario.source} (sha256 ${run.scenario.sha256})`);
  const t = results.trace;
  lines.push(`trace: ${t.path}, ${t.status.records} records${t.complete ? "" : " (INCOMPLETE: the results cover what it holds)"}`);
  return lines.join("\n");
}

function commandsSection(commands: readonly CommandResult[]): string {
  if (commands.length === 0) return "";
  const ok = commands.filter((c) => c.ok).length;
  const rows = commands.map((c) => [c.node_name, c.id, cut(c.run, TABLE_COMMAND_CHARS_MAX), timeText(c.start_ns), timeText(c.exit_ns), timeText(c.duration_ns), c.result, c.ok ? "yes" : "no"]);
  return [`commands: ${ok} of ${commands.length} ok`, ...table(["node", "id", "command", "start", "exit", "duration", "result", "ok"], rows)].join("\n");
}

function metricsSection(metrics: readonly MetricResult[]): string {
  if (metrics.length === 0) return "";
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const m of metrics) {
    rows.push(metricRow(m.name, "all", m.overall, m.unit));
    for (const n of m.per_node) rows.push(metricRow("", n.node_name, n, ""));
    if (m.overall.unparsable > 0) notes.push(`  ${m.name}: ${m.overall.unparsable} matching lines did not parse as numbers`);
    if (!m.overall.percentiles_exact) notes.push(`  ${m.name}: p50 and p99 from a uniform sample of the values (count, mean, min, max exact)`);
  }
  return ["metrics (percentiles nearest-rank):", ...table(["metric", "node", "count", "mean", "p50", "p99", "min", "max", "unit"], rows), ...notes].join("\n");
}

function metricRow(name: string, node: string, s: MetricStats, unit: string): string[] {
  return [name, node, String(s.count), numberText(s.mean), numberText(s.p50), numberText(s.p99), numberText(s.min), numberText(s.max), unit];
}

function linksSection(results: RunResults): string {
  const links = results.links;
  const rows = links.slice(0, TABLE_LINKS_MAX).map((l) => [`${l.from_name} -> ${l.to_name}`, String(l.frames_delivered), String(l.bytes_delivered), ...latencyTexts(l), dropsText(l)]);
  const lines = [`links: ${links.length} used`, ...(rows.length > 0 ? table(["link", "delivered", "bytes", "latency min", "mean", "max", "drops"], rows) : [])];
  if (links.length > TABLE_LINKS_MAX) lines.push(`  ... ${links.length - TABLE_LINKS_MAX} more (links.csv has all)`);
  const totals = results.link_totals;
  if (totals.unrouted_drops > 0) lines.push(`  unrouted frames dropped: ${totals.unrouted_drops}`);
  if (totals.frames_bytes_unknown > 0) lines.push(`  deliveries of frames of unknown size (not in bytes): ${totals.frames_bytes_unknown}`);
  return lines.join("\n");
}

function latencyTexts(l: LinkResult): string[] {
  if (l.latency_ns_min === null) return ["-", "-", "-"];
  return [formatMs(l.latency_ns_min), formatMs(l.latency_ns_mean!), formatMs(l.latency_ns_max!)];
}

function dropsText(l: LinkResult): string {
  const parts = Object.entries(l.drops).filter(([, n]) => n > 0).map(([reason, n]) => `${reason} ${n}`);
  return parts.length === 0 ? "-" : parts.join(", ");
}

function faultsSection(results: RunResults): string {
  const faults = results.faults;
  if (faults.length === 0) return "faults: none";
  const rows = faults.slice(0, TABLE_FAULTS_MAX).map((f) => [formatVirtualNs(f.t_ns), f.node < 0 ? "network" : (f.node_name ?? String(f.node)), f.action, f.detail]);
  const lines = [`faults: ${faults.length + results.faults_omitted}`, ...table(["time", "node", "action", "detail"], rows)];
  const more = faults.length + results.faults_omitted - rows.length;
  if (more > 0) lines.push(`  ... ${more} more (results.json lists ${faults.length})`);
  return lines.join("\n");
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart, indented two. */
function table(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")}`.trimEnd();
  return [line(header), ...rows.map(line)];
}

function timeText(ns: number | null): string {
  return ns === null ? "-" : formatVirtualNs(ns);
}

/** Integers as they are; others to 6 significant digits (the files keep full precision). */
function numberText(v: number | null): string {
  if (v === null) return "-";
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

function cut(text: string, chars_max: number): string {
  const one_line = text.replace(/\s*[\r\n]+\s*/g, " ");
  return one_line.length <= chars_max ? one_line : `${one_line.slice(0, chars_max - 1)}…`;
}
