// Canvas drawing and hit-testing of the space-time diagram. Time runs left to right, one
// lane (row) per node; a diff page stacks the lanes of trace A above those of trace B on
// one time axis. Only what lies in the visible window is touched: every column is sorted
// by time, so a binary search gives the range, and the largest arrow span / slice length
// bound how far back it must start. At wide zoom, arrows of one node pair that start in the
// same few pixels are drawn once (level of detail), which keeps a redraw of 100k frames to
// ~10k line segments. A trace with console output or management frames (a VM run's) gives
// each node's lane a console strip and a mgmt strip below it, drawn by guest_lanes.ts.

import { ARROW_DELIVER, ARROW_DROP, FRAME_NONE, LANE_NONE, MARK_COMMAND, MARK_FAULT, MARK_LIFECYCLE, PROTOCOLS, lowerBound, type DiffInfo, type TraceView } from "../packed.js";
import { formatTick, niceStepNs } from "./timefmt.js";

export interface Lane {
  group: number;
  node: number;
  name: string;
  top_px: number;
  h_px: number;
  /** The node's console strip under its lane (h 0: the trace has no console output). */
  log_top_px: number;
  log_h_px: number;
  /** The node's management-frame strip under that (h 0: no management frames). */
  mgmt_top_px: number;
  mgmt_h_px: number;
}

export interface Layout {
  width_px: number;
  height_px: number;
  plot_x_px: number;
  plot_w_px: number;
  axis_h_px: number;
  lanes: Lane[];
  /** First lane index of each group, and the y of its title band. */
  group_first_lane: number[];
  group_title_y_px: number[];
}

export interface ViewState {
  t0_ns: number;
  t1_ns: number;
  /** By node id (shared by both traces of a diff). */
  node_on: Uint8Array;
  /** By protocol code. */
  proto_on: Uint8Array;
  selected: { g: number; k: number } | null;
  /** A console output or management frame picked instead of an arrow (index in its sorted column). */
  picked: Picked | null;
}

export interface Picked {
  what: "output" | "mgmt";
  g: number;
  i: number;
}

export interface DrawStats {
  visible_frames: number;
  drawn_lines: number;
  lod_px: number;
}

export const LABEL_W_PX = 120;
const AXIS_H_PX = 28;
const GROUP_TITLE_H_PX = 18;
const LANE_H_MAX_PX = 90;
const LANE_H_MIN_PX = 10;
export const LOG_STRIP_H_PX = 16;
export const MGMT_STRIP_H_PX = 12;
/** Above this many line segments per redraw, arrows are thinned per node pair and pixel bucket. */
const LOD_LINES_TARGET = 12_000;
/** Arrowheads only when few arrows are drawn: they triple the segments. */
const HEADS_LINES_MAX = 4_000;
const HIT_TOLERANCE_PX = 6;
/** Arrows examined per hit-test at most (the click lands on one; a wide window may hold 100k). */
const HIT_SCAN_MAX = 300_000;
const PAIR_SLOTS_MAX = 1 << 18;

export const PROTO_COLORS: Readonly<Record<string, string>> = {
  ethernet: "#6b7280",
  arp: "#d97706",
  ipv4: "#0891b2",
  ipv6: "#7c3aed",
  icmp: "#059669",
  icmp6: "#10b981",
  tcp: "#2563eb",
  udp: "#0f766e",
  malformed: "#be123c",
  other: "#a16207",
};
const DROP_COLOR = "#dc2626";
const INFLIGHT_COLOR = "#9ca3af";

/** Heights of a view's console and mgmt strips (0 where the trace has none of them). */
function stripHeights(v: TraceView): { log_h: number; mgmt_h: number } {
  const c = v.meta.counts;
  return { log_h: c.outputs > 0 ? LOG_STRIP_H_PX : 0, mgmt_h: c.mgmt_in + c.mgmt_out > 0 ? MGMT_STRIP_H_PX : 0 };
}

export function computeLayout(views: TraceView[], width_px: number, avail_h_px: number): Layout {
  const lanes_total = views.reduce((n, v) => n + v.meta.nodes.length, 0);
  const titles_h = views.length > 1 ? views.length * GROUP_TITLE_H_PX : 0;
  const strips_h = views.reduce((h, v) => h + v.meta.nodes.length * (stripHeights(v).log_h + stripHeights(v).mgmt_h), 0);
  const lane_h = Math.max(LANE_H_MIN_PX, Math.min(LANE_H_MAX_PX, Math.floor((avail_h_px - AXIS_H_PX - titles_h - strips_h - 4) / Math.max(1, lanes_total))));
  const lanes: Lane[] = [];
  const group_first_lane: number[] = [];
  const group_title_y_px: number[] = [];
  let y = AXIS_H_PX;
  views.forEach((v, g) => {
    group_first_lane.push(lanes.length);
    group_title_y_px.push(y);
    if (views.length > 1) y += GROUP_TITLE_H_PX;
    const { log_h, mgmt_h } = stripHeights(v);
    v.meta.nodes.forEach((name, node) => {
      lanes.push({ group: g, node, name, top_px: y, h_px: lane_h, log_top_px: y + lane_h, log_h_px: log_h, mgmt_top_px: y + lane_h + log_h, mgmt_h_px: mgmt_h });
      y += lane_h + log_h + mgmt_h;
    });
  });
  return { width_px, height_px: y + 4, plot_x_px: LABEL_W_PX, plot_w_px: Math.max(50, width_px - LABEL_W_PX - 8), axis_h_px: AXIS_H_PX, lanes, group_first_lane, group_title_y_px };
}

export function pxPerNs(L: Layout, st: ViewState): number {
  return L.plot_w_px / (st.t1_ns - st.t0_ns);
}

export function xOf(L: Layout, st: ViewState, t_ns: number): number {
  return L.plot_x_px + (t_ns - st.t0_ns) * pxPerNs(L, st);
}

export function tOf(L: Layout, st: ViewState, x_px: number): number {
  return st.t0_ns + (x_px - L.plot_x_px) / pxPerNs(L, st);
}

/** Centre y of a node's lane in group g (LANE_NONE: the bottom edge of the group's lanes). */
export function laneY(L: Layout, g: number, node: number, nodes: number): number {
  const first = L.group_first_lane[g]!;
  const lane = L.lanes[first + (node === LANE_NONE ? nodes - 1 : node)]!;
  return node === LANE_NONE ? lane.top_px + lane.h_px : lane.top_px + lane.h_px / 2;
}

function frameProto(v: TraceView, k: number): number {
  const f = v.arrays.arrow_frame[k]!;
  return f === FRAME_NONE ? PROTOCOLS.length - 1 : v.arrays.frame_proto[f]!;
}

/** Whether arrow k of view v passes the node and protocol filters. */
export function arrowPasses(v: TraceView, st: ViewState, k: number): boolean {
  const a = v.arrays;
  const to = a.arrow_to[k]!;
  return st.node_on[a.arrow_from[k]!] === 1 && (to === LANE_NONE || st.node_on[to] === 1) && st.proto_on[frameProto(v, k)] === 1;
}

/** The index range of arrows that may reach into [t0, t1]: sent no earlier than t0 - the longest span. */
export function arrowRange(v: TraceView, t0_ns: number, t1_ns: number): [number, number] {
  const send = v.arrays.arrow_t_send_ns;
  return [lowerBound(send, t0_ns - v.meta.arrow_span_ns_max), lowerBound(send, Math.floor(t1_ns) + 1)];
}

export function draw(ctx: CanvasRenderingContext2D, views: TraceView[], L: Layout, st: ViewState, diff: DiffInfo | null): DrawStats {
  ctx.clearRect(0, 0, L.width_px, L.height_px);
  drawLanes(ctx, L);
  // Everything time-positioned stays inside the plot (arrows may start or end off-screen).
  ctx.save();
  ctx.beginPath();
  ctx.rect(L.plot_x_px, 0, L.plot_w_px, L.height_px);
  ctx.clip();
  views.forEach((v, g) => drawSlices(ctx, v, g, L, st));
  drawGrid(ctx, L, st);
  const stats: DrawStats = { visible_frames: 0, drawn_lines: 0, lod_px: 1 };
  views.forEach((v, g) => {
    const s = drawArrows(ctx, v, g, L, st);
    stats.visible_frames += s.visible_frames;
    stats.drawn_lines += s.drawn_lines;
    stats.lod_px = Math.max(stats.lod_px, s.lod_px);
  });
  views.forEach((v, g) => drawMarks(ctx, v, g, L, st));
  if (st.selected) drawSelected(ctx, views[st.selected.g]!, st.selected.g, st.selected.k, L, st);
  if (diff && !diff.equivalent) drawDivergence(ctx, views, L, st, diff);
  ctx.restore();
  drawLabels(ctx, views, L);
  return stats;
}

/** Lane backgrounds, strips included (before the arrows, which cross them). */
function drawLanes(ctx: CanvasRenderingContext2D, L: Layout): void {
  L.lanes.forEach((lane, i) => {
    ctx.fillStyle = i % 2 === 0 ? "#f8fafc" : "#eef2f7";
    ctx.fillRect(L.plot_x_px, lane.top_px, L.plot_w_px, lane.h_px);
    ctx.fillStyle = "#fefce8";
    if (lane.log_h_px > 0) ctx.fillRect(L.plot_x_px, lane.log_top_px, L.plot_w_px, lane.log_h_px);
    ctx.fillStyle = "#fff7ed";
    if (lane.mgmt_h_px > 0) ctx.fillRect(L.plot_x_px, lane.mgmt_top_px, L.plot_w_px, lane.mgmt_h_px);
  });
}

/** Slice shading, adjacent slices of a lane merged once they are closer than a pixel. */
function drawSlices(ctx: CanvasRenderingContext2D, v: TraceView, g: number, L: Layout, st: ViewState): void {
  const a = v.arrays;
  const n_nodes = v.meta.nodes.length;
  const run_x0 = new Float64Array(n_nodes).fill(NaN);
  const run_x1 = new Float64Array(n_nodes);
  const lo = lowerBound(a.slice_t0_ns, st.t0_ns - v.meta.slice_len_ns_max);
  const hi = lowerBound(a.slice_t0_ns, st.t1_ns + 1);
  const first = L.group_first_lane[g]!;
  ctx.fillStyle = "rgba(59,130,246,0.13)";
  const flush = (node: number) => {
    const lane = L.lanes[first + node]!;
    const x0 = Math.max(L.plot_x_px, run_x0[node]!);
    const x1 = Math.min(L.plot_x_px + L.plot_w_px, run_x1[node]!);
    if (x1 > x0) ctx.fillRect(x0, lane.top_px + 2, Math.max(1, x1 - x0), lane.h_px - 4);
  };
  for (let i = lo; i < hi; i++) {
    const node = a.slice_node[i]!;
    const x0 = xOf(L, st, a.slice_t0_ns[i]!);
    const x1 = xOf(L, st, a.slice_t1_ns[i]!);
    if (x1 < L.plot_x_px) continue;
    if (!Number.isNaN(run_x0[node]!) && x0 <= run_x1[node]! + 1) {
      run_x1[node] = Math.max(run_x1[node]!, x1);
      continue;
    }
    if (!Number.isNaN(run_x0[node]!)) flush(node);
    run_x0[node] = x0;
    run_x1[node] = x1;
  }
  for (let node = 0; node < n_nodes; node++) if (!Number.isNaN(run_x0[node]!)) flush(node);
}

function drawGrid(ctx: CanvasRenderingContext2D, L: Layout, st: ViewState): void {
  const step = niceStepNs((st.t1_ns - st.t0_ns) / Math.max(1, L.plot_w_px / 110));
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.strokeStyle = "#d1d5db";
  ctx.fillStyle = "#374151";
  ctx.lineWidth = 1;
  const first = Math.ceil(st.t0_ns / step) * step;
  ctx.beginPath();
  for (let i = 0, t = first; t <= st.t1_ns && i < 1000; i++, t = first + i * step) {
    const x = Math.round(xOf(L, st, t)) + 0.5;
    ctx.moveTo(x, L.axis_h_px - 6);
    ctx.lineTo(x, L.height_px - 4);
    const label = formatTick(t, step);
    if (x + 3 + ctx.measureText(label).width <= L.plot_x_px + L.plot_w_px) ctx.fillText(label, x + 3, L.axis_h_px / 2 - 2);
  }
  ctx.stroke();
  ctx.strokeStyle = "#9ca3af";
  ctx.beginPath();
  ctx.moveTo(L.plot_x_px, L.axis_h_px - 0.5);
  ctx.lineTo(L.plot_x_px + L.plot_w_px, L.axis_h_px - 0.5);
  ctx.stroke();
}

interface ArrowPaths {
  deliver: Path2D[];
  drop: Path2D;
  inflight: Path2D;
  crosses: Path2D;
}

function drawArrows(ctx: CanvasRenderingContext2D, v: TraceView, g: number, L: Layout, st: ViewState): DrawStats {
  const a = v.arrays;
  const n = v.meta.nodes.length;
  const [lo, hi] = arrowRange(v, st.t0_ns, st.t1_ns);
  const pairs = n * (n + 1);
  const lod_px = Math.max(1, Math.ceil(Math.min(hi - lo, pairs * L.plot_w_px) / LOD_LINES_TARGET));
  const slots = Math.min(pairs, PAIR_SLOTS_MAX);
  const last_b0 = new Int32Array(slots).fill(-1 << 30);
  const last_b1 = new Int32Array(slots);
  const paths: ArrowPaths = { deliver: PROTOCOLS.map(() => new Path2D()), drop: new Path2D(), inflight: new Path2D(), crosses: new Path2D() };
  const heads = hi - lo <= HEADS_LINES_MAX;
  const x_min = L.plot_x_px - 1e4;
  const x_max = L.plot_x_px + L.plot_w_px + 1e4;
  let visible = 0;
  let drawn = 0;
  for (let k = lo; k < hi; k++) {
    if (a.arrow_t_recv_ns[k]! < st.t0_ns || !arrowPasses(v, st, k)) continue;
    visible += 1;
    const from = a.arrow_from[k]!;
    const to = a.arrow_to[k]!;
    // Clamped so that a far off-screen end cannot make canvas coordinates huge.
    const x0 = Math.max(x_min, xOf(L, st, a.arrow_t_send_ns[k]!));
    const x1 = Math.min(x_max, xOf(L, st, a.arrow_t_recv_ns[k]!));
    const slot = (from * (n + 1) + to + 1) % slots;
    const b0 = Math.floor(x0 / lod_px);
    const b1 = Math.floor(x1 / lod_px);
    if (last_b0[slot] === b0 && last_b1[slot] === b1) continue;
    last_b0[slot] = b0;
    last_b1[slot] = b1;
    drawn += 1;
    addArrow(paths, v, g, k, L, x0, x1, heads);
  }
  strokePaths(ctx, paths, lod_px > 1 ? 0.35 : 0.75);
  return { visible_frames: visible, drawn_lines: drawn, lod_px };
}

function addArrow(paths: ArrowPaths, v: TraceView, g: number, k: number, L: Layout, x0: number, x1: number, heads: boolean): void {
  const a = v.arrays;
  const n = v.meta.nodes.length;
  const kind = a.arrow_kind[k]!;
  const y0 = laneY(L, g, a.arrow_from[k]!, n);
  const to = a.arrow_to[k]!;
  // A drop without receiver is marked at the sender; a frame still in flight points off the lanes' bottom.
  const y1 = kind === ARROW_DROP && to === LANE_NONE ? y0 : laneY(L, g, to, n);
  const path = kind === ARROW_DELIVER ? paths.deliver[frameProto(v, k)]! : kind === ARROW_DROP ? paths.drop : paths.inflight;
  path.moveTo(x0, y0);
  path.lineTo(x1, y1);
  if (kind === ARROW_DROP) {
    paths.crosses.moveTo(x1 - 4, y1 - 4);
    paths.crosses.lineTo(x1 + 4, y1 + 4);
    paths.crosses.moveTo(x1 - 4, y1 + 4);
    paths.crosses.lineTo(x1 + 4, y1 - 4);
  } else if (heads) {
    addHead(path, x0, y0, x1, y1);
  }
}

function addHead(path: Path2D, x0: number, y0: number, x1: number, y1: number): void {
  const len = Math.hypot(x1 - x0, y1 - y0);
  if (len < 8) return;
  const ux = (x1 - x0) / len;
  const uy = (y1 - y0) / len;
  path.moveTo(x1 - 7 * ux - 3 * uy, y1 - 7 * uy + 3 * ux);
  path.lineTo(x1, y1);
  path.lineTo(x1 - 7 * ux + 3 * uy, y1 - 7 * uy - 3 * ux);
}

/** alpha: thinned (level-of-detail) arrows are drawn lighter, so density still shows. */
function strokePaths(ctx: CanvasRenderingContext2D, p: ArrowPaths, alpha: number): void {
  ctx.lineWidth = 1;
  ctx.globalAlpha = alpha;
  p.deliver.forEach((path, code) => {
    ctx.strokeStyle = PROTO_COLORS[PROTOCOLS[code]!]!;
    ctx.stroke(path);
  });
  ctx.setLineDash([4, 3]);
  ctx.strokeStyle = DROP_COLOR;
  ctx.stroke(p.drop);
  ctx.strokeStyle = INFLIGHT_COLOR;
  ctx.stroke(p.inflight);
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
  ctx.lineWidth = 2;
  ctx.strokeStyle = DROP_COLOR;
  ctx.stroke(p.crosses);
  ctx.lineWidth = 1;
}

/**
 * Marks as ticks at the top of their lane (lifecycle events green, command starts and exits
 * orange), one per pixel and lane; a node fault as a red bar over its whole lane, a network
 * change as a dashed red line across every lane of its trace.
 */
function drawMarks(ctx: CanvasRenderingContext2D, v: TraceView, g: number, L: Layout, st: ViewState): void {
  const a = v.arrays;
  const n = v.meta.nodes.length;
  const lo = lowerBound(a.mark_t_ns, st.t0_ns);
  const hi = lowerBound(a.mark_t_ns, st.t1_ns + 1);
  const last_x = new Int32Array(n + 1).fill(-1);
  const ticks = new Path2D();
  const life = new Path2D();
  const commands = new Path2D();
  const faults = new Path2D();
  const network = new Path2D();
  const first = L.group_first_lane[g]!;
  for (let i = lo; i < hi; i++) {
    const node = a.mark_node[i]!;
    if (node >= 0 && st.node_on[node] !== 1) continue;
    const x = Math.round(xOf(L, st, a.mark_t_ns[i]!)) + 0.5;
    if (a.mark_kind[i] === MARK_FAULT) {
      // Rare and important: never merged with a neighbour in the same pixel.
      const top = node >= 0 ? L.lanes[first + node]! : L.lanes[first]!;
      const bottom = node >= 0 ? top : L.lanes[first + n - 1]!;
      const path = node >= 0 ? faults : network;
      path.moveTo(x, node >= 0 ? top.top_px : L.axis_h_px - 8);
      path.lineTo(x, bottom.top_px + bottom.h_px);
      continue;
    }
    if (last_x[node + 1] === x - 0.5) continue;
    last_x[node + 1] = x - 0.5;
    const lane = node >= 0 ? L.lanes[first + node]! : null;
    const y0 = lane ? lane.top_px : L.axis_h_px - 8;
    const h = lane ? Math.min(8, lane.h_px / 3) : 8;
    const kind = a.mark_kind[i];
    const path = kind === MARK_LIFECYCLE ? life : kind === MARK_COMMAND ? commands : ticks;
    path.moveTo(x, y0);
    path.lineTo(x, y0 + h);
  }
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#9333ea";
  ctx.stroke(ticks);
  ctx.strokeStyle = "#16a34a";
  ctx.stroke(life);
  ctx.strokeStyle = FAULT_COMMAND_COLOR;
  ctx.stroke(commands);
  ctx.lineWidth = 3;
  ctx.strokeStyle = FAULT_COLOR;
  ctx.stroke(faults);
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.stroke(network);
  ctx.setLineDash([]);
  ctx.lineWidth = 1;
}

const FAULT_COLOR = "#b91c1c";
const FAULT_COMMAND_COLOR = "#ea580c";

export function arrowEnds(v: TraceView, g: number, k: number, L: Layout, st: ViewState): { x0: number; y0: number; x1: number; y1: number } {
  const a = v.arrays;
  const n = v.meta.nodes.length;
  const y0 = laneY(L, g, a.arrow_from[k]!, n);
  const to = a.arrow_to[k]!;
  const y1 = a.arrow_kind[k] === ARROW_DROP && to === LANE_NONE ? y0 : laneY(L, g, to, n);
  return { x0: xOf(L, st, a.arrow_t_send_ns[k]!), y0, x1: xOf(L, st, a.arrow_t_recv_ns[k]!), y1 };
}

function drawSelected(ctx: CanvasRenderingContext2D, v: TraceView, g: number, k: number, L: Layout, st: ViewState): void {
  const e = arrowEnds(v, g, k, L, st);
  ctx.strokeStyle = "#111827";
  ctx.lineWidth = 3;
  const p = new Path2D();
  p.moveTo(e.x0, e.y0);
  p.lineTo(e.x1, e.y1);
  addHead(p, e.x0, e.y0, e.x1, e.y1);
  ctx.stroke(p);
  ctx.lineWidth = 1;
}

/** The first divergence: a dashed line over both traces and a ring on the record's lane in each. */
function drawDivergence(ctx: CanvasRenderingContext2D, views: TraceView[], L: Layout, st: ViewState, d: DiffInfo): void {
  const x = xOf(L, st, d.t_ns);
  if (x < L.plot_x_px - 1 || x > L.plot_x_px + L.plot_w_px + 1) return;
  ctx.strokeStyle = "#db2777";
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(x, L.axis_h_px);
  ctx.lineTo(x, L.height_px - 4);
  ctx.stroke();
  ctx.setLineDash([]);
  // Each run's record at that position, at its own time.
  [d.lane_a, d.lane_b].forEach((node, g) => {
    if (node < 0 || g >= views.length) return;
    ctx.beginPath();
    ctx.arc(xOf(L, st, g === 0 ? d.t_ns : d.t_b_ns), laneY(L, g, node, views[g]!.meta.nodes.length), 7, 0, 2 * Math.PI);
    ctx.stroke();
  });
  ctx.fillStyle = "#db2777";
  ctx.font = "bold 11px system-ui, sans-serif";
  // At the bottom: the top of the plot holds the group titles.
  ctx.fillText(`first divergence: record #${d.index}`, Math.min(x + 5, L.plot_x_px + L.plot_w_px - 190), L.height_px - 10);
  ctx.lineWidth = 1;
}

function drawLabels(ctx: CanvasRenderingContext2D, views: TraceView[], L: Layout): void {
  ctx.clearRect(0, 0, L.plot_x_px, L.height_px);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#111827";
  for (const lane of L.lanes) ctx.fillText(lane.name, 8, lane.top_px + lane.h_px / 2, L.plot_x_px - 12);
  if (views.length < 2) return;
  ctx.font = "bold 12px system-ui, sans-serif";
  views.forEach((v, g) => {
    ctx.fillStyle = "#1f2937";
    ctx.fillText(`${v.meta.label}: ${v.meta.source_path}`, 8, L.group_title_y_px[g]! + 9, L.width_px - 16);
  });
}

/** The arrow nearest (x, y) within a few pixels, among those the filters show. */
export function hitArrow(views: TraceView[], L: Layout, st: ViewState, x: number, y: number): { g: number; k: number } | null {
  const tol_ns = HIT_TOLERANCE_PX / pxPerNs(L, st);
  const t = tOf(L, st, x);
  let best: { g: number; k: number } | null = null;
  let best_d = HIT_TOLERANCE_PX;
  views.forEach((v, g) => {
    const [lo, hi] = arrowRange(v, t - tol_ns, t + tol_ns);
    const end = Math.min(hi, lo + HIT_SCAN_MAX);
    for (let k = lo; k < end; k++) {
      if (v.arrays.arrow_t_recv_ns[k]! < t - tol_ns || !arrowPasses(v, st, k)) continue;
      const e = arrowEnds(v, g, k, L, st);
      const d = segmentDistance(x, y, e.x0, e.y0, e.x1, e.y1);
      if (d < best_d) {
        best_d = d;
        best = { g, k };
      }
    }
  });
  return best;
}

function segmentDistance(px: number, py: number, x0: number, y0: number, x1: number, y1: number): number {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy;
  const u = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2));
  return Math.hypot(px - (x0 + u * dx), py - (y0 + u * dy));
}

/** The mark under (x, y): on the lane under the pointer (or the axis, for run marks), within a few pixels; a network change on any lane. */
export function hitMark(views: TraceView[], L: Layout, st: ViewState, x: number, y: number): { g: number; i: number } | null {
  const lane = L.lanes.find((l) => y >= l.top_px && y < l.top_px + l.h_px);
  const on_axis = y < L.axis_h_px;
  if (!lane && !on_axis) return null;
  const tol_ns = 4 / pxPerNs(L, st);
  const t = tOf(L, st, x);
  const groups = lane ? [lane.group] : views.map((_, g) => g);
  for (const g of groups) {
    const a = views[g]!.arrays;
    const want = lane ? lane.node : -1;
    const hi = lowerBound(a.mark_t_ns, t + tol_ns);
    for (let i = lowerBound(a.mark_t_ns, t - tol_ns); i < hi; i++) {
      if (a.mark_node[i] === want || (a.mark_node[i]! < 0 && a.mark_kind[i] === MARK_FAULT)) return { g, i };
    }
  }
  return null;
}
