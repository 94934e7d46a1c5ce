// The self-contained HTML page: markup, CSS, the data as JSON and the bundled client, all
// inline. Nothing in it refers to another file or URL.

import { diffTraces } from "../diff.js";
import { describeRecord } from "../describe.js";
import { RecordKind, recordTimeNs, type TraceRecord } from "../../engine/trace_records.js";
import { bundleClient, scriptSafe } from "./inline.js";
import { buildTraceView, FRAME_BYTES_CAP_DEFAULT, packTrace } from "./model.js";
import type { DiffInfo, PageData } from "./packed.js";
import path from "node:path";

export interface PageOptions {
  frame_bytes_cap?: number;
}

/** The page for one trace. */
export function viewPage(trace_path: string, opts: PageOptions = {}): string {
  const view = buildTraceView(trace_path, "", opts.frame_bytes_cap ?? FRAME_BYTES_CAP_DEFAULT);
  return renderPage({ title: `tapsim view: ${path.basename(trace_path)}`, traces: [packTrace(view)], diff: null });
}

/** The page for `tapsim diff A B --html`: both traces on one time axis, the first divergence marked. */
export function diffPage(path_a: string, path_b: string, opts: PageOptions = {}): { html: string; equivalent: boolean } {
  const cap = opts.frame_bytes_cap ?? FRAME_BYTES_CAP_DEFAULT;
  const result = diffTraces(path_a, path_b, 0);
  const a = buildTraceView(path_a, "A", cap);
  const b = buildTraceView(path_b, "B", cap);
  const d = result.first_divergence;
  const at = d === null ? null : (d.a ?? d.b)!;
  const diff: DiffInfo = {
    equivalent: d === null,
    index: d?.index ?? -1,
    t_ns: at === null ? 0 : recordTimeNs(at),
    t_b_ns: d?.b ? recordTimeNs(d.b) : at === null ? 0 : recordTimeNs(at),
    lane_a: recordLane(d?.a ?? null),
    lane_b: recordLane(d?.b ?? null),
    text_a: d === null ? "" : d.a ? describeRecord(d.a) : "(trace ended)",
    text_b: d === null ? "" : d.b ? describeRecord(d.b) : "(trace ended)",
    config_differences: result.config_differences,
    records_a: result.records_a,
    records_b: result.records_b,
  };
  const title = `tapsim diff: ${path.basename(path_a)} vs ${path.basename(path_b)}${result.equivalent ? " (equivalent)" : ""}`;
  return { html: renderPage({ title, traces: [packTrace(a), packTrace(b)], diff }), equivalent: result.equivalent };
}

/** The lane a record belongs to: its node (receiver for deliveries and drops); -1 for none. */
function recordLane(r: TraceRecord | null): number {
  if (r === null || r[0] === RecordKind.RunEnd) return -1;
  return r[1] >= 0 ? r[1] : r[0] === RecordKind.FrameDrop ? r[4] : -1;
}

export function renderPage(data: PageData): string {
  // "<" escaped inside the JSON so that no string in the data can close the script element.
  const json = JSON.stringify(data).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1 id="title"></h1><div id="summary"></div></header>
<div id="toolbar">
  <span class="group"><b>Nodes</b> <span id="node-filters"></span></span>
  <span class="group"><b>Protocols</b> <span id="proto-filters"></span></span>
  <span class="group"><button id="zoom-in" title="zoom in (+, wheel)">+</button><button id="zoom-out" title="zoom out (-, wheel)">&minus;</button><button id="zoom-fit" title="whole trace (0, Home)">Fit</button>
  <span class="hint">drag or ←/→ to pan</span></span>
  <span class="legend"><i class="sw deliver"></i>delivered <i class="sw drop"></i>✕ dropped <i class="sw inflight"></i>in flight at the end <i class="tick mark"></i>mark <i class="tick life"></i>lifecycle <i class="sw slice"></i>slice<span id="legend-guest" hidden> <i class="strip log"></i>console <i class="tri in"></i>mgmt in <i class="tri out"></i>mgmt out</span><span id="legend-faults" hidden> <i class="tick fault"></i>fault <i class="sw net"></i>network change <i class="tick cmd"></i>command</span></span>
</div>
<div id="diff-info" hidden></div>
<div id="main">
  <div id="canvas-wrap"><canvas id="diagram" tabindex="0"></canvas><div id="tooltip" hidden></div></div>
  <aside id="side">
    <section id="decode"><p class="hint">Click a frame arrow or pick one from the list.</p></section>
    <section id="list"><h3>Frames in view <span id="list-count"></span></h3><ol id="frames"></ol></section>
  </aside>
</div>
<footer id="status"></footer>
<script type="application/json" id="tapsim-data">${json}</script>
<script>${scriptSafe(bundleClient())}</script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

const CSS = `
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; height: 100%; font: 13px system-ui, sans-serif; color: #111827; background: #fff; }
body { display: flex; flex-direction: column; }
header { padding: 6px 10px; border-bottom: 1px solid #e5e7eb; }
h1 { font-size: 15px; margin: 0 0 2px; }
#summary { color: #4b5563; font-size: 12px; }
#toolbar { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: center; }
#toolbar .group { display: inline-flex; flex-wrap: wrap; gap: 2px 8px; align-items: center; }
label.filter { white-space: nowrap; }
button { font: inherit; min-width: 28px; margin-right: 2px; }
.hint { color: #6b7280; font-size: 12px; }
#diff-info { padding: 6px 10px; border-bottom: 1px solid #e5e7eb; background: #fdf2f8; display: flex; gap: 30px; }
#diff-info ul { margin: 2px 0; padding-left: 18px; }
#divergence .rec { font-family: ui-monospace, monospace; font-size: 12px; }
#main { flex: 1; display: flex; min-height: 0; }
#canvas-wrap { flex: 1; position: relative; overflow-y: auto; overflow-x: hidden; min-width: 0; }
canvas { display: block; cursor: crosshair; outline: none; }
#tooltip { position: absolute; background: #111827; color: #fff; padding: 3px 6px; border-radius: 3px; font-size: 12px; pointer-events: none; max-width: 420px; white-space: pre-wrap; overflow-wrap: anywhere; }
#side { width: 440px; border-left: 1px solid #e5e7eb; padding: 6px 10px; display: flex; flex-direction: column; min-height: 0; }
#decode { flex: none; max-height: calc(100% - 180px); overflow-y: auto; }
#list { flex: 1; min-height: 170px; display: flex; flex-direction: column; }
#frames { flex: 1; overflow-y: auto; }
#side h3 { font-size: 13px; margin: 6px 0; }
#decode .summary { font-weight: 600; margin: 4px 0; }
#decode .summary.error { color: #b91c1c; }
#decode .facts, #decode .note { color: #4b5563; font-size: 12px; margin: 2px 0; }
table.layer { border-collapse: collapse; margin: 6px 0; width: 100%; font-size: 12px; }
table.layer caption { text-align: left; font-weight: 600; }
table.layer th { text-align: left; font-weight: normal; color: #4b5563; padding: 1px 6px 1px 0; width: 40%; }
table.layer td { font-family: ui-monospace, monospace; word-break: break-all; }
pre.hex { font-size: 11px; background: #f3f4f6; padding: 4px; overflow-x: auto; }
pre.console { font-size: 12px; background: #fefce8; padding: 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
#frames { font-family: ui-monospace, monospace; font-size: 11px; padding-left: 0; list-style: none; margin: 0; }
#frames li { cursor: pointer; padding: 1px 2px; white-space: nowrap; }
#frames li:hover { background: #e0f2fe; }
#frames li.sel { background: #1f2937; color: #fff; }
.legend { color: #4b5563; font-size: 12px; display: inline-flex; align-items: center; gap: 4px; }
.legend i { display: inline-block; margin-left: 8px; }
.legend .sw { width: 18px; height: 0; border-top: 2px solid #0f766e; }
.legend .sw.drop { border-top: 2px dashed #dc2626; }
.legend .sw.inflight { border-top: 2px dashed #9ca3af; }
.legend .sw.slice { height: 10px; border: 0; background: rgba(59,130,246,0.25); }
.legend .tick { width: 2px; height: 10px; background: #9333ea; }
.legend .tick.life { background: #16a34a; }
.legend .tick.fault { width: 3px; background: #b91c1c; }
.legend .tick.cmd { background: #ea580c; }
.legend .sw.net { border-top: 2px dashed #b91c1c; }
.legend .strip.log { width: 18px; height: 10px; background: #fef08a; }
.legend .tri { width: 0; height: 0; border-left: 5px solid transparent; border-right: 5px solid transparent; }
.legend .tri.in { border-top: 8px solid #ea580c; }
.legend .tri.out { border-bottom: 8px solid #be185d; }
footer { padding: 3px 10px; border-top: 1px solid #e5e7eb; font-size: 12px; color: #374151; }
`;
