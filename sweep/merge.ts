// The merged results of a sweep: one row per point (its parameter values, how it ended,
// its commands, traffic and each metric's statistics), read from each point's status.json
// and results.json, written as sweep.csv and sweep.json and printed as a table. Only what
// the runs record goes in (no wall times, hosts or job ids): the same sweep run locally or
// on Slurm merges to the same bytes.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { csvText } from "../scenario/output.js";
import type { RunResults } from "../scenario/results.js";
import { writeOutput } from "../recorder/output_file.js";
import { readPointStatus, type PlanFile, type PlanPoint, type PointStatus } from "./dir.js";
import { valueText } from "./plan.js";

export const MERGED_CSV = "sweep.csv";
export const MERGED_JSON = "sweep.json";
/** The statistics of each metric in the merged table. */
export const METRIC_STATS = ["count", "mean", "p50", "p99", "max"] as const;
/** Rows printed; the files have every point. */
const TABLE_ROWS_MAX = 200;
const TABLE_CELL_CHARS_MAX = 48;

/** pending: no status yet (not run, or queued); the rest as the point's status.json says. */
export type RowState = "pending" | "running" | "ok" | "failed";

export interface MetricRow {
  unit: string;
  count: number;
  mean: number | null;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export interface MergedRow {
  point: number;
  dir: string;
  values: Record<string, unknown>;
  state: RowState;
  exit_code: number | null;
  error: string | null;
  end_reason: string | null;
  end_ms: number | null;
  commands_ok: number | null;
  commands_total: number | null;
  frames_delivered: number | null;
  bytes_delivered: number | null;
  drops_total: number | null;
  metrics: Record<string, MetricRow>;
}

export interface Merged {
  format: "tapsim-sweep";
  format_version: 1;
  name: string;
  scenario: string;
  params: string[];
  /** Metric names in first-seen order (the CSV's metric columns). */
  metrics: string[];
  counts: Record<RowState, number>;
  rows: MergedRow[];
}

export function mergeSweep(dir: string, plan: PlanFile): Merged {
  const rows = plan.points.map((p) => rowOf(dir, p, readPointStatus(dir, p)));
  const metrics: string[] = [];
  for (const r of rows) for (const name of Object.keys(r.metrics)) if (!metrics.includes(name)) metrics.push(name);
  const counts: Record<RowState, number> = { pending: 0, running: 0, ok: 0, failed: 0 };
  for (const r of rows) counts[r.state] += 1;
  return { format: "tapsim-sweep", format_version: 1, name: plan.name, scenario: plan.scenario_source, params: plan.params, metrics, counts, rows };
}

function rowOf(dir: string, point: PlanPoint, status: PointStatus | null): MergedRow {
  const row: MergedRow = {
    point: point.index,
    dir: point.dir,
    values: point.values,
    state: status?.state ?? "pending",
    exit_code: status?.exit_code ?? null,
    error: status?.error ?? null,
    end_reason: null,
    end_ms: null,
    commands_ok: null,
    commands_total: null,
    frames_delivered: null,
    bytes_delivered: null,
    drops_total: null,
    metrics: {},
  };
  // A running point's results.json is an earlier run's at most (run-point clears it first).
  const results = status === null || status.state === "running" ? null : readResults(path.join(dir, point.dir, "results.json"));
  if (results === null) return row;
  row.end_reason = results.run.end_reason;
  row.end_ms = results.run.end_ms;
  row.commands_ok = results.commands.filter((c) => c.ok).length;
  row.commands_total = results.commands.length;
  row.frames_delivered = results.links.reduce((n, l) => n + l.frames_delivered, 0);
  row.bytes_delivered = results.links.reduce((n, l) => n + l.bytes_delivered, 0);
  row.drops_total = results.links.reduce((n, l) => n + l.drops_total, 0) + results.link_totals.unrouted_drops;
  for (const m of results.metrics) {
    const s = m.overall;
    row.metrics[m.name] = { unit: m.unit, count: s.count, mean: s.mean, p50: s.p50, p99: s.p99, max: s.max };
  }
  return row;
}

function readResults(file: string): RunResults | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as RunResults;
  } catch {
    return null; // written whole through a rename; a broken one counts as none
  }
}

// ---- files -----------------------------------------------------------------------------

const FIXED_COLUMNS = ["state", "exit_code", "error", "end_reason", "end_ms", "commands_ok", "commands_total", "frames_delivered", "bytes_delivered", "drops_total"] as const;

export function mergedCsv(m: Merged): string {
  const header = ["point", "dir", ...m.params, ...FIXED_COLUMNS, ...m.metrics.flatMap((name) => METRIC_STATS.map((s) => `${name}_${s}`))];
  const rows = m.rows.map((r) => [
    r.point,
    r.dir,
    ...m.params.map((p) => csvValue(r.values[p])),
    ...FIXED_COLUMNS.map((c) => r[c]),
    ...m.metrics.flatMap((name) => METRIC_STATS.map((s) => r.metrics[name]?.[s] ?? null)),
  ]);
  return csvText(header, rows);
}

function csvValue(v: unknown): string | number | boolean | null {
  return typeof v === "number" || typeof v === "boolean" ? v : v === null || v === undefined ? null : valueText(v);
}

export function writeMerged(dir: string, m: Merged): void {
  writeOutput(path.join(dir, MERGED_CSV), (out) => out.write(mergedCsv(m)));
  writeOutput(path.join(dir, MERGED_JSON), (out) => out.write(`${JSON.stringify(m, null, 2)}\n`));
}

// ---- the table ---------------------------------------------------------------------------

/** One line per point: its values, state, commands, traffic, each metric's mean; errors in full below. */
export function formatMergedTable(m: Merged): string {
  const header = ["point", ...m.params, "state", "end", "cmds ok", "frames", "drops", ...m.metrics.map((n) => `${n} mean`)];
  const rows = m.rows.slice(0, TABLE_ROWS_MAX).map((r) => [
    String(r.point),
    ...m.params.map((p) => cut(valueText(r.values[p]))),
    r.state,
    r.end_reason ?? "-",
    r.commands_total === null ? "-" : `${r.commands_ok}/${r.commands_total}`,
    numberText(r.frames_delivered),
    numberText(r.drops_total),
    ...m.metrics.map((n) => numberText(r.metrics[n]?.mean ?? null)),
  ]);
  const c = m.counts;
  const lines = [`sweep ${m.name}: ${m.rows.length} points: ${c.ok} ok, ${c.failed} failed, ${c.running} running, ${c.pending} pending`, ...table(header, rows)];
  if (m.rows.length > TABLE_ROWS_MAX) lines.push(`  ... ${m.rows.length - TABLE_ROWS_MAX} more (${MERGED_CSV} has all)`);
  for (const r of m.rows) if (r.state === "failed") lines.push(`failed: point ${r.point} (${r.dir}): ${r.error ?? `exit ${r.exit_code}`}`);
  return `${lines.join("\n")}\n`;
}

function table(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")}`.trimEnd();
  return [line(header), ...rows.map(line)];
}

function numberText(v: number | null): string {
  if (v === null) return "-";
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

function cut(text: string): string {
  return text.length <= TABLE_CELL_CHARS_MAX ? text : `${text.slice(0, TABLE_CELL_CHARS_MAX - 1)}…`;
}
