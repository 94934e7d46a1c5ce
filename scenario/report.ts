// A run's results as one self-contained HTML page (report.html in the run directory): how
// the run went, the commands, each metric as a table and as a plot of its values over
// virtual time (faults drawn as rules at their times), the links and the faults. Plots
// are Vega-Lite specs rendered to SVG headless (vega's View.toSVG) and inlined: the page
// loads nothing, so it can be mailed or archived as one file.

import path from "node:path";
import * as vega from "vega";
import * as vl from "vega-lite";
import { formatVirtualNs } from "../engine/units.js";
import { writeOutput } from "../recorder/output_file.js";
import type { MetricResult, RunResults } from "./results.js";

export const REPORT_FILE = "report.html";
/** Rows a table of the page shows (results.json and the CSVs have all of them). */
const TABLE_ROWS_MAX = 200;
const PLOTS_MAX = 16;

/** Writes DIR/report.html; returns its path. */
export async function writeReport(dir: string, results: RunResults): Promise<string> {
  const html = await renderReport(results);
  const file = path.join(dir, REPORT_FILE);
  writeOutput(file, (o) => o.write(html));
  return file;
}

export async function renderReport(results: RunResults): Promise<string> {
  const plots: string[] = [];
  for (const m of results.metrics.slice(0, PLOTS_MAX)) {
    if (m.series.length > 0) plots.push(await metricPlot(m, results));
  }
  const title = results.run.scenario?.source ?? results.trace.path;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tapsim results: ${esc(title)}</title>
<style>${CSS}</style></head>
<body>
<h1>tapsim results: ${esc(title)}</h1>
${runSection(results)}
${commandsSection(results)}
${metricsSection(results, plots)}
${linksSection(results)}
${faultsSection(results)}
</body></html>
`;
}

function runSection(r: RunResults): string {
  const run = r.run;
  const rows: [string, string][] = [
    ["ended at", `${formatVirtualNs(run.end_ns)} virtual (${run.end_reason ?? "no run_end: incomplete trace"}${run.end_detail ? `: ${run.end_detail}` : ""})`],
    ["nodes", run.nodes.map((n) => n.name).join(", ")],
    ["topology", run.topology_source],
    ["seed", String(run.seed)],
    ["scenario", run.scenario === null ? "none" : `${run.scenario.source} (sha256 ${run.scenario.sha256.slice(0, 16)}…)`],
    ["trace", `${r.trace.path}${r.trace.complete ? "" : " (INCOMPLETE: the results cover what it holds)"}`],
  ];
  return `<section id="run"><h2>Run</h2>${table(["", ""], rows, "kv")}</section>`;
}

function commandsSection(r: RunResults): string {
  if (r.commands.length === 0) return "";
  const ok = r.commands.filter((c) => c.ok).length;
  const rows = r.commands.map((c) => [
    c.node_name, c.id, c.run, c.start_ns === null ? "-" : formatVirtualNs(c.start_ns), c.exit_ns === null ? "-" : formatVirtualNs(c.exit_ns),
    c.duration_ns === null ? "-" : formatVirtualNs(c.duration_ns), c.result, c.ok ? "yes" : "no",
  ]);
  return `<section id="commands"><h2>Commands: ${ok} of ${r.commands.length} ok</h2>${table(["node", "id", "command", "start", "exit", "duration", "result", "ok"], rows, "commands")}</section>`;
}

function metricsSection(r: RunResults, plots: readonly string[]): string {
  if (r.metrics.length === 0) return "";
  const rows: string[][] = [];
  for (const m of r.metrics) {
    rows.push([m.name, "all", ...statCells(m.overall), m.unit]);
    for (const n of m.per_node) rows.push(["", n.node_name, ...statCells(n), ""]);
  }
  const figures = plots.map((svg, i) => `<figure class="plot" id="plot-${i}">${svg}</figure>`).join("\n");
  return `<section id="metrics"><h2>Metrics</h2><p>Percentiles are nearest-rank.</p>${table(["metric", "node", "count", "mean", "p50", "p99", "min", "max", "unit"], rows, "metrics")}${figures}</section>`;
}

function statCells(s: { count: number; mean: number | null; p50: number | null; p99: number | null; min: number | null; max: number | null }): string[] {
  const f = (v: number | null) => (v === null ? "-" : String(+v.toPrecision(6)));
  return [String(s.count), f(s.mean), f(s.p50), f(s.p99), f(s.min), f(s.max)];
}

function linksSection(r: RunResults): string {
  if (r.links.length === 0) return "";
  const ms = (v: number | null) => (v === null ? "-" : `${+v.toPrecision(6)} ms`);
  const rows = r.links.map((l) => [
    `${l.from_name} → ${l.to_name}`, String(l.frames_delivered), l.bytes_delivered === null ? "-" : String(l.bytes_delivered),
    ms(l.latency_ms_min), ms(l.latency_ms_mean), ms(l.latency_ms_max),
    Object.entries(l.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ") || "-",
  ]);
  return `<section id="links"><h2>Links: ${r.links.length} used</h2>${table(["link", "delivered", "bytes", "latency min", "mean", "max", "drops"], rows, "links")}</section>`;
}

function faultsSection(r: RunResults): string {
  if (r.faults.length === 0) return `<section id="faults"><h2>Faults: none</h2></section>`;
  const rows = r.faults.map((f) => [formatVirtualNs(f.t_ns), f.node_name ?? "network", f.action, f.detail]);
  return `<section id="faults"><h2>Faults: ${r.faults.length + r.faults_omitted}</h2>${table(["time", "node", "action", "detail"], rows, "faults")}</section>`;
}

/** The metric's values over virtual time, a colour per node, faults as vertical rules. */
async function metricPlot(m: MetricResult, r: RunResults): Promise<string> {
  const names = new Map(r.run.nodes.map((n) => [n.id, n.name]));
  const points = m.series.map((p) => ({ t_s: p.t_ns / 1e9, value: p.value, node: names.get(p.node) ?? String(p.node) }));
  const faults = r.faults.map((f) => ({ t_s: f.t_ns / 1e9, label: `${f.action}${f.node_name === null ? "" : ` ${f.node_name}`}` }));
  const y_title = `${m.name}${m.unit === "" ? "" : ` (${m.unit})`}`;
  const spec: vl.TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${m.name} over virtual time`,
    width: 640,
    height: 260,
    layer: [
      {
        data: { values: points },
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "t_s", type: "quantitative", title: "virtual time (s)" },
          y: { field: "value", type: "quantitative", title: y_title },
          color: { field: "node", type: "nominal", title: "node" },
        },
      },
      ...(faults.length === 0
        ? []
        : [{
            data: { values: faults },
            mark: { type: "rule" as const, strokeDash: [4, 3], color: "#b00" },
            encoding: { x: { field: "t_s", type: "quantitative" as const }, tooltip: { field: "label", type: "nominal" as const } },
          }]),
    ],
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function table(head: readonly string[], rows: readonly (readonly string[])[], cls: string): string {
  const shown = rows.slice(0, TABLE_ROWS_MAX);
  const more = rows.length > shown.length ? `<p class="more">${rows.length - shown.length} more rows in the CSV and JSON files</p>` : "";
  const thead = head.some((h) => h !== "") ? `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` : "";
  const tbody = shown.map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("\n");
  return `<table class="${cls}">${thead}<tbody>${tbody}</tbody></table>${more}`;
}

/** Text into HTML: a guest's output or a command line may hold anything. */
function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}table.kv td:first-child{font-weight:600}
td{max-width:40em;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:13px}
figure.plot{margin:1em 0}.more{color:#666}`;
