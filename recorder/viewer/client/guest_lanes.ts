// A VM run's console output and management frames, in the strips under each node's lane
// (laid out by render.ts): console text at its virtual time, each piece cut where the node's
// next piece starts, and management frames as triangles (▼ into the guest from the host, ▲
// out of it). Both are sorted by time, so a redraw binary-searches the window like the arrows.

import { MGMT_IN, PROTOCOLS, lowerBound, type TraceView } from "../packed.js";
import { pxPerNs, tOf, xOf, type Lane, type Layout, type ViewState } from "./render.js";

export const MGMT_IN_COLOR = "#ea580c";
export const MGMT_OUT_COLOR = "#be185d";
const LOG_FONT = "11px ui-monospace, monospace";
const LOG_TEXT_COLOR = "#1f2937";
const LOG_TICK_COLOR = "#a16207";
/** Labels narrower than this many characters are left out (the tick and the hover remain). */
const LABEL_CHARS_MIN = 3;
/** How far back a redraw looks for each node's last output before the window (its text labels the strip's start). */
const BACK_SCAN_MAX = 100_000;
const HIT_TOLERANCE_PX = 6;
const HIT_SCAN_MAX = 300_000;
/** Labels the test hook can list per redraw. */
const LABELS_KEPT = 500;
const TOOLTIP_CHARS_MAX = 2000;

/** A console label as drawn: which output, and the text shown. */
export interface LogLabel {
  g: number;
  node: number;
  i: number;
  x: number;
  text: string;
}

// ANSI control sequences (colours, cursor moves): a terminal acts on them, the page shows the text.
const ANSI_RE = /\u001b\[[0-9;?]*[ -/]*[@-~]/g;
const CONTROL_RE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** One line for the strip: escapes dropped, line breaks as ⏎, other controls as ·. */
export function laneText(text: string): string {
  return text.replace(ANSI_RE, "").replace(/(\r?\n)+$/, "").replace(/\r?\n/g, " ⏎ ").replace(CONTROL_RE, "·");
}

/** Several lines for the tooltip: escapes dropped, \r\n as a line break, other controls as ·. */
export function tooltipText(text: string): string {
  const t = text.replace(ANSI_RE, "").replace(/\r\n/g, "\n").replace(CONTROL_RE, "·");
  return t.length > TOOLTIP_CHARS_MAX ? `${t.slice(0, TOOLTIP_CHARS_MAX)}…` : t;
}

/** Exactly what was printed, for the side panel: line breaks kept, every other control as \u00XX. */
export function exactText(text: string): string {
  return text.replace(/\r\n/g, "\n").replace(CONTROL_RE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function laneOf(L: Layout, g: number, node: number): Lane {
  return L.lanes[L.group_first_lane[g]! + node]!;
}

/** Draws every view's console and mgmt strips; returns the console labels drawn (at most LABELS_KEPT). */
export function drawGuest(ctx: CanvasRenderingContext2D, views: TraceView[], L: Layout, st: ViewState): LogLabel[] {
  const labels: LogLabel[] = [];
  ctx.save();
  ctx.beginPath();
  ctx.rect(L.plot_x_px, 0, L.plot_w_px, L.height_px);
  ctx.clip();
  views.forEach((v, g) => {
    drawOutputs(ctx, v, g, L, st, labels);
    drawMgmt(ctx, v, g, L, st);
  });
  if (st.picked) drawPicked(ctx, views[st.picked.g]!, L, st);
  ctx.restore();
  drawStripLabels(ctx, L);
  return labels;
}

/** Index of the first output to draw: each shown node's last one before the window, or the window's first. */
function outputsFrom(v: TraceView, st: ViewState): number {
  const a = v.arrays;
  let lo = lowerBound(a.out_t_ns, st.t0_ns);
  const found = new Uint8Array(v.meta.nodes.length);
  let missing = found.length;
  for (let i = lo - 1, steps = 0; i >= 0 && missing > 0 && steps < BACK_SCAN_MAX; i--, steps++) {
    const node = a.out_node[i]!;
    if (found[node] === 1) continue;
    found[node] = 1;
    missing -= 1;
    lo = i;
  }
  return lo;
}

function drawOutputs(ctx: CanvasRenderingContext2D, v: TraceView, g: number, L: Layout, st: ViewState, labels: LogLabel[]): void {
  const a = v.arrays;
  if (a.out_node.length === 0) return;
  const n = v.meta.nodes.length;
  ctx.font = LOG_FONT;
  ctx.textBaseline = "middle";
  const char_w = ctx.measureText("M").width;
  const pending = new Int32Array(n).fill(-1);
  const last_tick = new Float64Array(n).fill(NaN);
  const ticks = new Path2D();
  const x_right = L.plot_x_px + L.plot_w_px;
  const label = (node: number, i: number, x_end: number) => {
    const lane = laneOf(L, g, node);
    // A piece that began before the window stays readable at its left edge.
    const left = Math.max(xOf(L, st, a.out_t_ns[i]!) + 3, L.plot_x_px + 2);
    const chars = Math.floor((Math.min(x_end, x_right) - 3 - left) / char_w);
    if (chars < LABEL_CHARS_MIN) return;
    const full = laneText(v.meta.output_texts[a.out_text[i]!]!);
    const text = full.length > chars ? `${full.slice(0, chars - 1)}…` : full;
    ctx.fillStyle = LOG_TEXT_COLOR;
    ctx.fillText(text, left, lane.log_top_px + lane.log_h_px / 2);
    if (labels.length < LABELS_KEPT) labels.push({ g, node, i, x: left, text });
  };
  const hi = lowerBound(a.out_t_ns, st.t1_ns + 1);
  for (let i = outputsFrom(v, st); i < hi; i++) {
    const node = a.out_node[i]!;
    if (st.node_on[node] !== 1) continue;
    const x = xOf(L, st, a.out_t_ns[i]!);
    if (pending[node]! >= 0) label(node, pending[node]!, x);
    pending[node] = i;
    const px = Math.round(x) + 0.5;
    if (last_tick[node] === px) continue;
    last_tick[node] = px;
    const lane = laneOf(L, g, node);
    ticks.moveTo(px, lane.log_top_px + 2);
    ticks.lineTo(px, lane.log_top_px + lane.log_h_px - 2);
  }
  for (let node = 0; node < n; node++) if (pending[node]! >= 0) label(node, pending[node]!, x_right);
  ctx.strokeStyle = LOG_TICK_COLOR;
  ctx.lineWidth = 1;
  ctx.stroke(ticks);
}

/** Whether management frame i passes the node and protocol filters. */
function mgmtPasses(v: TraceView, st: ViewState, i: number): boolean {
  const a = v.arrays;
  return st.node_on[a.mgmt_node[i]!] === 1 && st.proto_on[a.mgmt_frame_proto[a.mgmt_frame[i]!] ?? PROTOCOLS.length - 1] === 1;
}

/** Where management frame i's triangle is centred. */
export function mgmtCentre(v: TraceView, g: number, i: number, L: Layout, st: ViewState): { x: number; y: number } {
  const lane = laneOf(L, g, v.arrays.mgmt_node[i]!);
  return { x: xOf(L, st, v.arrays.mgmt_t_ns[i]!), y: lane.mgmt_top_px + lane.mgmt_h_px / 2 };
}

function drawMgmt(ctx: CanvasRenderingContext2D, v: TraceView, g: number, L: Layout, st: ViewState): void {
  const a = v.arrays;
  if (a.mgmt_node.length === 0) return;
  const n = v.meta.nodes.length;
  const paths = [new Path2D(), new Path2D()];
  const last_px = new Float64Array(2 * n).fill(NaN);
  const lo = lowerBound(a.mgmt_t_ns, st.t0_ns - 5 / pxPerNs(L, st));
  const hi = lowerBound(a.mgmt_t_ns, st.t1_ns + 1);
  for (let i = lo; i < hi; i++) {
    if (!mgmtPasses(v, st, i)) continue;
    const dir = a.mgmt_dir[i]!;
    const { x, y } = mgmtCentre(v, g, i, L, st);
    const slot = a.mgmt_node[i]! * 2 + dir;
    if (last_px[slot] === Math.round(x)) continue; // one triangle per pixel, node and direction
    last_px[slot] = Math.round(x);
    const tip = dir === MGMT_IN ? 4 : -4; // ▼ into the guest, ▲ out of it
    const p = paths[dir]!;
    p.moveTo(x - 4, y - tip);
    p.lineTo(x + 4, y - tip);
    p.lineTo(x, y + tip);
    p.closePath();
  }
  ctx.fillStyle = MGMT_IN_COLOR;
  ctx.fill(paths[0]!);
  ctx.fillStyle = MGMT_OUT_COLOR;
  ctx.fill(paths[1]!);
}

function drawPicked(ctx: CanvasRenderingContext2D, v: TraceView, L: Layout, st: ViewState): void {
  const { what, g, i } = st.picked!;
  ctx.strokeStyle = "#111827";
  ctx.lineWidth = 2;
  ctx.beginPath();
  if (what === "mgmt") {
    const c = mgmtCentre(v, g, i, L, st);
    ctx.arc(c.x, c.y, 7, 0, 2 * Math.PI);
  } else {
    const lane = laneOf(L, g, v.arrays.out_node[i]!);
    const x = xOf(L, st, v.arrays.out_t_ns[i]!);
    ctx.moveTo(x, lane.log_top_px);
    ctx.lineTo(x, lane.log_top_px + lane.log_h_px);
  }
  ctx.stroke();
  ctx.lineWidth = 1;
}

function drawStripLabels(ctx: CanvasRenderingContext2D, L: Layout): void {
  ctx.font = "10px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#6b7280";
  for (const lane of L.lanes) {
    if (lane.log_h_px > 0) ctx.fillText("console", 16, lane.log_top_px + lane.log_h_px / 2);
    if (lane.mgmt_h_px > 0) ctx.fillText("mgmt", 16, lane.mgmt_top_px + lane.mgmt_h_px / 2);
  }
}

/** The lane whose strip (console or mgmt) holds y. */
function stripAt(L: Layout, y: number, strip: "log" | "mgmt"): Lane | undefined {
  return L.lanes.find((l) => (strip === "log" ? y >= l.log_top_px && y < l.log_top_px + l.log_h_px : y >= l.mgmt_top_px && y < l.mgmt_top_px + l.mgmt_h_px));
}

/** The console output under (x, y): in the node's console strip, the latest piece printed by the pointer's time. */
export function hitOutput(views: TraceView[], L: Layout, st: ViewState, x: number, y: number): { g: number; i: number } | null {
  const lane = stripAt(L, y, "log");
  if (!lane || st.node_on[lane.node] !== 1) return null;
  const a = views[lane.group]!.arrays;
  const hi = lowerBound(a.out_t_ns, tOf(L, st, x + HIT_TOLERANCE_PX));
  for (let i = hi - 1; i >= Math.max(0, hi - HIT_SCAN_MAX); i--) if (a.out_node[i] === lane.node) return { g: lane.group, i };
  return null;
}

/** The management frame nearest (x, y) within a few pixels, in the mgmt strip under y. */
export function hitMgmt(views: TraceView[], L: Layout, st: ViewState, x: number, y: number): { g: number; i: number } | null {
  const lane = stripAt(L, y, "mgmt");
  if (!lane) return null;
  const v = views[lane.group]!;
  const a = v.arrays;
  const tol_ns = HIT_TOLERANCE_PX / pxPerNs(L, st);
  const t = tOf(L, st, x);
  let best: { g: number; i: number } | null = null;
  let best_d = HIT_TOLERANCE_PX;
  const hi = Math.min(lowerBound(a.mgmt_t_ns, t + tol_ns), lowerBound(a.mgmt_t_ns, t - tol_ns) + HIT_SCAN_MAX);
  for (let i = lowerBound(a.mgmt_t_ns, t - tol_ns); i < hi; i++) {
    if (a.mgmt_node[i] !== lane.node || !mgmtPasses(v, st, i)) continue;
    const d = Math.abs(mgmtCentre(v, lane.group, i, L, st).x - x);
    if (d <= best_d) {
      best_d = d;
      best = { g: lane.group, i };
    }
  }
  return best;
}
