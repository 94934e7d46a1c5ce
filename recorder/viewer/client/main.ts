// The page's behaviour: reads the embedded data, wires filters, zoom/pan, selection (frame
// arrows, console output, management frames), the side panel and the frame list, and
// publishes window.__tapsimView for tests and the curious (layout, window, counts, redraw time).

import { decodeFrame, hexDump } from "../../frame_decode.js";
import { ARROW_DROP, ARROW_INFLIGHT, FRAME_NONE, LANE_NONE, MARK_FAULT, MGMT_IN, PROTOCOLS, frameBytes, mgmtBytes, unpackTrace, type PageData, type TraceView } from "../packed.js";
import { drawGuest, exactText, hitMgmt, hitOutput, mgmtCentre, tooltipText, type LogLabel } from "./guest_lanes.js";
import { PROTO_COLORS, arrowEnds, arrowPasses, arrowRange, computeLayout, draw, hitArrow, hitMark, laneY, tOf, xOf, type DrawStats, type Layout, type Picked, type ViewState } from "./render.js";
import { formatNs } from "./timefmt.js";

const ZOOM_STEP = 2;
const WHEEL_ZOOM_PER_PX = 1.0015;
const PAN_KEY_FRACTION = 0.2;
const LIST_ROWS_MAX = 200;
/** The narrowest window: 100 ns across the plot. */
const WINDOW_NS_MIN = 100;
const DIVERGENCE_HALF_NS_MIN = 1_000_000;

interface App {
  data: PageData;
  views: TraceView[];
  st: ViewState;
  L: Layout;
  canvas: HTMLCanvasElement;
  ctx: CanvasRenderingContext2D;
  stats: DrawStats;
  /** Console labels of the last redraw (for the test hook). */
  log_labels: LogLabel[];
  redraw_ms: number;
  redraws: number;
  frame_pending: boolean;
  list_timer: number;
  t_full_ns: number;
  /** What the frame list was built for (window and filters). */
  list_key: string;
  /** Parse, unpack and first redraw, in the page's own clock. */
  boot_ms: number;
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
}

function el(tag: string, attrs: Record<string, string> = {}, text = ""): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function boot(): void {
  const boot_t0_ms = performance.now();
  const data = JSON.parse(byId("tapsim-data").textContent ?? "") as PageData;
  const views = data.traces.map(unpackTrace);
  const canvas = byId<HTMLCanvasElement>("diagram");
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2D canvas");
  const nodes_max = Math.max(...views.map((v) => v.meta.nodes.length));
  const t_full_ns = Math.max(1, ...views.map((v) => v.meta.t_end_ns)) * 1.02;
  const st: ViewState = { t0_ns: 0, t1_ns: t_full_ns, node_on: new Uint8Array(nodes_max).fill(1), proto_on: new Uint8Array(PROTOCOLS.length).fill(1), selected: null, picked: null };
  const app: App = { data, views, st, L: computeLayout(views, 800, 400), canvas, ctx, stats: { visible_frames: 0, drawn_lines: 0, lod_px: 1 }, log_labels: [], redraw_ms: 0, redraws: 0, frame_pending: false, list_timer: 0, list_key: "", t_full_ns, boot_ms: 0 };
  byId("title").textContent = data.title;
  byId("summary").textContent = views.map(summaryText).join("  |  ");
  byId("legend-guest").hidden = !views.some((v) => v.meta.counts.outputs + v.meta.counts.mgmt_in + v.meta.counts.mgmt_out > 0);
  byId("legend-faults").hidden = !views.some((v) => v.meta.counts.faults + v.meta.counts.commands > 0);
  buildFilters(app);
  if (data.diff) showDiff(app);
  wireInput(app);
  window.addEventListener("resize", () => {
    resize(app);
    redrawNow(app);
  });
  resize(app);
  redrawNow(app);
  app.boot_ms = performance.now() - boot_t0_ms;
  publishHook(app);
}

function summaryText(v: TraceView): string {
  const c = v.meta.counts;
  const label = v.meta.label ? `${v.meta.label}: ` : "";
  const inflight = c.inflight ? `, ${c.inflight} in flight at the end` : "";
  const guest = c.outputs + c.mgmt_in + c.mgmt_out > 0 ? `, ${c.outputs} console outputs, ${c.mgmt_in + c.mgmt_out} management frames (${c.mgmt_in} in, ${c.mgmt_out} out)` : "";
  const faults = c.faults + c.commands > 0 ? `, ${c.faults} faults, ${c.commands} command events` : "";
  return `${label}${v.meta.nodes.length} nodes, ${c.frames_emitted} frames (${c.deliveries} delivered, ${c.drops} dropped${inflight}), ${c.slices} slices, ${c.marks} marks${guest}${faults}, ${formatNs(v.meta.t_end_ns)}${v.meta.complete ? "" : " (trace incomplete)"}`;
}

function buildFilters(app: App): void {
  const nodes = byId("node-filters");
  const names = app.views.reduce((best, v) => (v.meta.nodes.length > best.length ? v.meta.nodes : best), [] as string[]);
  names.forEach((name, i) => nodes.append(checkbox(`node-${i}`, name, () => (app.st.node_on[i] = app.st.node_on[i] ? 0 : 1), app)));
  const protos = byId("proto-filters");
  const present = new Set<number>();
  for (const v of app.views) for (const p of [...v.arrays.frame_proto, ...v.arrays.mgmt_frame_proto]) present.add(p);
  PROTOCOLS.forEach((name, code) => {
    if (!present.has(code)) return;
    const box = checkbox(`proto-${name}`, name, () => (app.st.proto_on[code] = app.st.proto_on[code] ? 0 : 1), app);
    box.style.borderBottom = `3px solid ${PROTO_COLORS[name]}`;
    protos.append(box);
  });
}

function checkbox(id: string, label: string, toggle: () => void, app: App): HTMLElement {
  const wrap = el("label", { class: "filter" });
  const box = el("input", { type: "checkbox", id: `filter-${id}` }) as HTMLInputElement;
  box.checked = true;
  box.addEventListener("change", () => {
    toggle();
    scheduleRedraw(app);
  });
  wrap.append(box, document.createTextNode(label));
  return wrap;
}

function showDiff(app: App): void {
  const d = app.data.diff!;
  const box = byId("diff-info");
  box.hidden = false;
  const marker = el("div", { id: "divergence", "data-record-index": String(d.index), "data-t-ns": String(d.t_ns) });
  if (d.equivalent) {
    marker.append(el("b", {}, `Event streams identical: ${d.records_a} records`));
  } else {
    marker.append(el("b", {}, `First divergence at record #${d.index} (t = ${formatNs(d.t_ns)})`), el("div", { class: "rec" }, `A: ${d.text_a}`), el("div", { class: "rec" }, `B: ${d.text_b}`));
    const go = el("button", { id: "goto-divergence" }, "Show divergence");
    go.addEventListener("click", () => focusDivergence(app));
    marker.append(go);
  }
  const cfg = el("div", { id: "config-diff" });
  cfg.append(el("b", {}, d.config_differences.length ? "Configuration differences:" : "Configurations are identical."));
  const ul = el("ul");
  for (const line of d.config_differences) ul.append(el("li", {}, line));
  cfg.append(ul, el("div", {}, `records: A ${d.records_a}, B ${d.records_b}`));
  box.append(marker, cfg);
  if (!d.equivalent) focusDivergence(app);
}

/**
 * A window on the divergence: ten times the gap between A's and B's records there (so both
 * are told apart), at least 1 ms, at most one frame flight either side.
 */
function focusDivergence(app: App): void {
  const d = app.data.diff!;
  const span_ns = Math.max(...app.views.map((v) => v.meta.arrow_span_ns_max), DIVERGENCE_HALF_NS_MIN);
  const half_ns = Math.min(span_ns, Math.max(DIVERGENCE_HALF_NS_MIN, 10 * Math.abs(d.t_b_ns - d.t_ns)));
  const mid_ns = (d.t_ns + d.t_b_ns) / 2;
  setWindow(app, mid_ns - half_ns, mid_ns + half_ns);
}

function resize(app: App): void {
  const wrap = byId("canvas-wrap");
  const width = Math.max(300, wrap.clientWidth);
  app.L = computeLayout(app.views, width, Math.max(200, wrap.clientHeight));
  const dpr = window.devicePixelRatio || 1;
  app.canvas.width = Math.round(width * dpr);
  app.canvas.height = Math.round(app.L.height_px * dpr);
  app.canvas.style.width = `${width}px`;
  app.canvas.style.height = `${app.L.height_px}px`;
  app.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}

function scheduleRedraw(app: App): void {
  if (app.frame_pending) return;
  app.frame_pending = true;
  requestAnimationFrame(() => {
    app.frame_pending = false;
    redrawNow(app);
  });
}

function redrawNow(app: App): number {
  const t0 = performance.now();
  app.stats = draw(app.ctx, app.views, app.L, app.st, app.data.diff);
  app.log_labels = drawGuest(app.ctx, app.views, app.L, app.st);
  app.redraw_ms = performance.now() - t0;
  app.redraws += 1;
  updateStatus(app);
  window.clearTimeout(app.list_timer);
  // The list is rebuilt when the view settles, not on every wheel step.
  app.list_timer = window.setTimeout(() => updateList(app), 120);
  return app.redraw_ms;
}

function updateStatus(app: App): void {
  const { st, stats } = app;
  const lod = stats.lod_px > 1 ? `; level of detail: one line per node pair per ${stats.lod_px} px` : "";
  byId("status").textContent = `window ${formatNs(st.t0_ns)} .. ${formatNs(st.t1_ns)} (${formatNs(st.t1_ns - st.t0_ns)} wide); visible frames: ${stats.visible_frames}; lines drawn: ${stats.drawn_lines}${lod}; redraw ${app.redraw_ms.toFixed(1)} ms`;
  byId("status").setAttribute("data-visible-frames", String(stats.visible_frames));
}

/** Sets the window, its width bounded and kept within [0, the trace's end] where it fits. */
function placeWindow(app: App, t0_ns: number, width_ns: number): void {
  const width = Math.min(app.t_full_ns, Math.max(WINDOW_NS_MIN, width_ns));
  const t0 = Math.max(0, Math.min(t0_ns, app.t_full_ns - width));
  app.st.t0_ns = t0;
  app.st.t1_ns = t0 + width;
  scheduleRedraw(app);
}

function setWindow(app: App, t0_ns: number, t1_ns: number): void {
  const width = Math.max(WINDOW_NS_MIN, t1_ns - t0_ns);
  placeWindow(app, (t0_ns + t1_ns) / 2 - width / 2, width);
}

function zoomAt(app: App, factor: number, x_px: number): void {
  const t = tOf(app.L, app.st, x_px);
  const { t0_ns, t1_ns } = app.st;
  const width = Math.min(app.t_full_ns, Math.max(WINDOW_NS_MIN, (t1_ns - t0_ns) / factor));
  const frac = (t - t0_ns) / (t1_ns - t0_ns);
  placeWindow(app, t - frac * width, width);
}

function panBy(app: App, dt_ns: number): void {
  placeWindow(app, app.st.t0_ns + dt_ns, app.st.t1_ns - app.st.t0_ns);
}

function plotCentreX(app: App): number {
  return app.L.plot_x_px + app.L.plot_w_px / 2;
}

function wireInput(app: App): void {
  const c = app.canvas;
  byId("zoom-in").addEventListener("click", () => zoomAt(app, ZOOM_STEP, plotCentreX(app)));
  byId("zoom-out").addEventListener("click", () => zoomAt(app, 1 / ZOOM_STEP, plotCentreX(app)));
  byId("zoom-fit").addEventListener("click", () => setWindow(app, 0, app.t_full_ns));
  c.addEventListener("wheel", (e) => onWheel(app, e), { passive: false });
  wireDrag(app);
  c.addEventListener("mousemove", (e) => onHover(app, e));
  c.addEventListener("mouseleave", () => (byId("tooltip").hidden = true));
  window.addEventListener("keydown", (e) => onKey(app, e));
}

function onWheel(app: App, e: WheelEvent): void {
  e.preventDefault();
  if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
    const d = e.shiftKey ? e.deltaY : e.deltaX;
    panBy(app, (d / app.L.plot_w_px) * (app.st.t1_ns - app.st.t0_ns));
    return;
  }
  zoomAt(app, WHEEL_ZOOM_PER_PX ** -e.deltaY, e.offsetX);
}

/** Drag pans; a press released without moving is a click (select the frame under it). */
function wireDrag(app: App): void {
  let down: { x: number; t0: number; t1: number; moved: boolean } | null = null;
  app.canvas.addEventListener("mousedown", (e) => {
    down = { x: e.clientX, t0: app.st.t0_ns, t1: app.st.t1_ns, moved: false };
    app.canvas.focus();
  });
  window.addEventListener("mousemove", (e) => {
    if (!down) return;
    const dx = e.clientX - down.x;
    if (Math.abs(dx) > 3) down.moved = true;
    if (!down.moved) return;
    const dt = (dx / app.L.plot_w_px) * (down.t1 - down.t0);
    placeWindow(app, down.t0 - dt, down.t1 - down.t0);
  });
  window.addEventListener("mouseup", (e) => {
    if (down && !down.moved && e.target === app.canvas) clickAt(app, e.offsetX, e.offsetY);
    down = null;
  });
}

function onKey(app: App, e: KeyboardEvent): void {
  // Keys typed into a text field are not commands (the filters are checkboxes and keep them working).
  if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") return;
  const w = app.st.t1_ns - app.st.t0_ns;
  const actions: Record<string, () => void> = {
    "+": () => zoomAt(app, ZOOM_STEP, plotCentreX(app)),
    "=": () => zoomAt(app, ZOOM_STEP, plotCentreX(app)),
    "-": () => zoomAt(app, 1 / ZOOM_STEP, plotCentreX(app)),
    ArrowLeft: () => panBy(app, -w * PAN_KEY_FRACTION),
    ArrowRight: () => panBy(app, w * PAN_KEY_FRACTION),
    Home: () => setWindow(app, 0, app.t_full_ns),
    "0": () => setWindow(app, 0, app.t_full_ns),
  };
  const act = actions[e.key];
  if (!act) return;
  e.preventDefault();
  act();
}

/** A click on a console strip picks the output there, on a mgmt strip the frame there; elsewhere an arrow. */
function clickAt(app: App, x: number, y: number): void {
  const out = hitOutput(app.views, app.L, app.st, x, y);
  const mgmt = out ? null : hitMgmt(app.views, app.L, app.st, x, y);
  if (out) pick(app, { what: "output", ...out });
  else if (mgmt) pick(app, { what: "mgmt", ...mgmt });
  else select(app, hitArrow(app.views, app.L, app.st, x, y));
}

function onHover(app: App, e: MouseEvent): void {
  const tip = byId("tooltip");
  const text = hoverText(app, e.offsetX, e.offsetY);
  if (text === null) {
    tip.hidden = true;
    return;
  }
  tip.textContent = text;
  tip.style.left = `${e.offsetX + 12}px`;
  tip.style.top = `${e.offsetY + 12}px`;
  tip.hidden = false;
}

/** What the tooltip says at (x, y): a mark's text, a console output, a management frame; null: nothing there. */
function hoverText(app: App, x: number, y: number): string | null {
  const { views, L, st } = app;
  const m = hitMark(views, L, st, x, y);
  if (m) {
    const v = views[m.g]!;
    const node = v.arrays.mark_node[m.i]!;
    const who = node >= 0 ? v.meta.nodes[node] : v.arrays.mark_kind[m.i] === MARK_FAULT ? "network" : "run";
    return `${formatNs(v.arrays.mark_t_ns[m.i]!)} ${who}: ${v.meta.mark_texts[v.arrays.mark_text[m.i]!]}`;
  }
  const out = hitOutput(views, L, st, x, y);
  if (out) {
    const v = views[out.g]!;
    const a = v.arrays;
    return `${formatNs(a.out_t_ns[out.i]!)} ${v.meta.nodes[a.out_node[out.i]!]} printed:\n${tooltipText(v.meta.output_texts[a.out_text[out.i]!]!)}`;
  }
  const mg = hitMgmt(views, L, st, x, y);
  if (mg) return `${formatNs(views[mg.g]!.arrays.mgmt_t_ns[mg.i]!)} ${mgmtTitle(views[mg.g]!, mg.i)} (click to decode)`;
  return null;
}

function mgmtTitle(v: TraceView, i: number): string {
  const name = v.meta.nodes[v.arrays.mgmt_node[i]!];
  return v.arrays.mgmt_dir[i] === MGMT_IN ? `management frame host → ${name}` : `management frame ${name} → host`;
}

/** Picks a console output or management frame (an arrow selection goes). */
function pick(app: App, p: Picked): void {
  select(app, null);
  app.st.picked = p;
  showDecode(app);
}

function select(app: App, hit: { g: number; k: number } | null): void {
  app.st.selected = hit;
  app.st.picked = null;
  for (const li of Array.from(byId("frames").children)) {
    const mine = hit !== null && li.getAttribute("data-g") === String(hit.g) && li.getAttribute("data-k") === String(hit.k);
    li.classList.toggle("sel", mine);
    if (mine) li.scrollIntoView({ block: "nearest" });
  }
  showDecode(app);
  scheduleRedraw(app);
}

function showDecode(app: App): void {
  const panel = byId("decode");
  panel.replaceChildren();
  if (app.st.picked) {
    showPicked(app, panel, app.st.picked);
    return;
  }
  const sel = app.st.selected;
  if (!sel) {
    panel.append(el("p", { class: "hint" }, "Click a frame arrow or pick one from the list."));
    return;
  }
  const v = app.views[sel.g]!;
  const a = v.arrays;
  const k = sel.k;
  const f = a.arrow_frame[k]!;
  const names = v.meta.nodes;
  const to = a.arrow_to[k]!;
  const kind = a.arrow_kind[k]!;
  const label = app.views.length > 1 ? `${v.meta.label}: ` : "";
  panel.append(el("h3", {}, `${label}frame ${f === FRAME_NONE ? "?" : a.frame_id[f]}  ${names[a.arrow_from[k]!]} → ${to === LANE_NONE ? "(none)" : names[to]}`));
  const fate = kind === ARROW_DROP ? `dropped (${v.meta.drop_reasons[a.arrow_reason[k]!]}) at` : kind === ARROW_INFLIGHT ? "still in flight at the trace's end," : "delivered at";
  panel.append(el("div", { class: "facts" }, `sent ${formatNs(a.arrow_t_send_ns[k]!)}, ${fate} ${formatNs(a.arrow_t_recv_ns[k]!)} (+${formatNs(a.arrow_t_recv_ns[k]! - a.arrow_t_send_ns[k]!)}); record #${a.arrow_record[k]}`));
  if (f === FRAME_NONE) {
    panel.append(el("p", {}, "The frame's emit record is not in the trace: no bytes to decode."));
    return;
  }
  appendDecoded(panel, frameBytes(a, f), a.frame_len[f]!, v.meta.frame_bytes_cap);
}

/** A console output as printed (control characters shown as escapes), or a management frame decoded. */
function showPicked(app: App, panel: HTMLElement, p: Picked): void {
  const v = app.views[p.g]!;
  const a = v.arrays;
  const label = app.views.length > 1 ? `${v.meta.label}: ` : "";
  if (p.what === "output") {
    panel.append(el("h3", {}, `${label}console output of ${v.meta.nodes[a.out_node[p.i]!]}`));
    panel.append(el("div", { class: "facts" }, `printed by ${formatNs(a.out_t_ns[p.i]!)}; record #${a.out_record[p.i]}`));
    panel.append(el("pre", { class: "console" }, exactText(v.meta.output_texts[a.out_text[p.i]!]!)));
    return;
  }
  panel.append(el("h3", {}, `${label}${mgmtTitle(v, p.i)}`));
  const kind = a.mgmt_dir[p.i] === MGMT_IN ? "mgmt_in: injected into the guest's management NIC" : "mgmt_out: sent on the guest's management NIC";
  panel.append(el("div", { class: "facts" }, `at ${formatNs(a.mgmt_t_ns[p.i]!)} (${kind}; never on a simulated link); record #${a.mgmt_record[p.i]}`));
  appendDecoded(panel, mgmtBytes(a, p.i), a.mgmt_frame_len[a.mgmt_frame[p.i]!]!, v.meta.frame_bytes_cap);
}

function appendDecoded(panel: HTMLElement, bytes: Uint8Array, len: number, cap: number): void {
  try {
    const d = decodeFrame(bytes);
    panel.append(el("div", { class: "summary" }, d.summary));
    for (const layer of d.layers) {
      const t = el("table", { class: "layer" });
      t.append(el("caption", {}, layer.name));
      for (const [name, value] of layer.fields) {
        const tr = el("tr");
        tr.append(el("th", {}, name), el("td", {}, value));
        t.append(tr);
      }
      panel.append(t);
    }
  } catch (err) {
    panel.append(el("div", { class: "summary error" }, `cannot decode: ${String(err)}`));
  }
  const note = len > bytes.length ? `first ${bytes.length} of ${len} bytes (the page embeds at most ${cap} bytes per frame)` : `${len} bytes`;
  panel.append(el("div", { class: "note" }, note), el("pre", { class: "hex" }, hexDump(bytes)));
}

/** Up to LIST_ROWS_MAX frames in the window that the filters show, earliest sent first. */
function updateList(app: App): void {
  // Rebuilt only when the window or the filters changed: rows stay put under a click.
  const key = `${app.st.t0_ns}|${app.st.t1_ns}|${app.st.node_on.join("")}|${app.st.proto_on.join("")}`;
  if (key === app.list_key) return;
  app.list_key = key;
  const list = byId("frames");
  const rows: HTMLElement[] = [];
  let total = 0;
  app.views.forEach((v, g) => {
    const [lo, hi] = arrowRange(v, app.st.t0_ns, app.st.t1_ns);
    for (let k = lo; k < hi; k++) {
      if (v.arrays.arrow_t_recv_ns[k]! < app.st.t0_ns || !arrowPasses(v, app.st, k)) continue;
      total += 1;
      if (rows.length < LIST_ROWS_MAX) rows.push(listRow(app, v, g, k));
    }
  });
  list.replaceChildren(...rows);
  byId("list-count").textContent = total > rows.length ? `(first ${rows.length} of ${total})` : `(${total})`;
}

function listRow(app: App, v: TraceView, g: number, k: number): HTMLElement {
  const a = v.arrays;
  const f = a.arrow_frame[k]!;
  const to = a.arrow_to[k]!;
  const proto = f === FRAME_NONE ? "?" : PROTOCOLS[a.frame_proto[f]!];
  const drop = a.arrow_kind[k] === ARROW_DROP ? " ✕" : "";
  const label = app.views.length > 1 ? `${v.meta.label} ` : "";
  const sel = app.st.selected;
  const li = el("li", { "data-g": String(g), "data-k": String(k), class: sel?.g === g && sel.k === k ? "sel" : "" }, `${label}${formatNs(a.arrow_t_send_ns[k]!)} ${v.meta.nodes[a.arrow_from[k]!]}→${to === LANE_NONE ? "-" : v.meta.nodes[to]} ${proto}${drop}`);
  li.addEventListener("click", () => select(app, { g, k }));
  return li;
}

/** For tests: where things are drawn, what is visible, how long a redraw takes. */
function publishHook(app: App): void {
  const canvasPoint = (x: number, y: number) => {
    const r = app.canvas.getBoundingClientRect();
    return { x: r.left + x, y: r.top + y };
  };
  (window as unknown as Record<string, unknown>).__tapsimView = {
    lanes: () => app.L.lanes.length,
    lanesOf: (g: number) => app.views[g]!.meta.nodes.length,
    arrows: (g: number) => app.views[g]!.arrays.arrow_kind.length,
    window: () => ({ t0_ns: app.st.t0_ns, t1_ns: app.st.t1_ns }),
    setWindow: (t0_ns: number, t1_ns: number) => {
      setWindow(app, t0_ns, t1_ns);
      return redrawNow(app);
    },
    visibleFrames: () => app.stats.visible_frames,
    stats: () => ({ ...app.stats, redraw_ms: app.redraw_ms, redraws: app.redraws, boot_ms: app.boot_ms }),
    redraw: () => {
      const ms = redrawNow(app);
      updateList(app);
      return ms;
    },
    plot: () => ({ ...canvasPoint(app.L.plot_x_px, 0), w: app.L.plot_w_px }),
    laneTop: (g: number, node: number) => canvasPoint(0, app.L.lanes[app.L.group_first_lane[g]! + node]!.top_px).y,
    laneCentre: (g: number, node: number) => canvasPoint(0, laneY(app.L, g, node, app.views[g]!.meta.nodes.length)).y,
    xOfNs: (t_ns: number) => canvasPoint(xOf(app.L, app.st, t_ns), 0).x,
    arrowPoint: (g: number, k: number, frac = 0.5) => {
      const e = arrowEnds(app.views[g]!, g, k, app.L, app.st);
      return canvasPoint(e.x0 + (e.x1 - e.x0) * frac, e.y0 + (e.y1 - e.y0) * frac);
    },
    arrowInfo: (g: number, k: number) => {
      const a = app.views[g]!.arrays;
      const f = a.arrow_frame[k]!;
      return { frame_id: f === FRAME_NONE ? null : a.frame_id[f], from: a.arrow_from[k], to: a.arrow_to[k], t_send_ns: a.arrow_t_send_ns[k], t_recv_ns: a.arrow_t_recv_ns[k], record: a.arrow_record[k], kind: a.arrow_kind[k] };
    },
    selected: () => app.st.selected,
    picked: () => app.st.picked,
    outputs: (g: number) => app.views[g]!.arrays.out_node.length,
    outputInfo: (g: number, i: number) => {
      const v = app.views[g]!;
      return { node: v.arrays.out_node[i], t_ns: v.arrays.out_t_ns[i], text: v.meta.output_texts[v.arrays.out_text[i]!], record: v.arrays.out_record[i] };
    },
    logLabels: () => app.log_labels.map((l) => ({ ...l, x: canvasPoint(l.x, 0).x })),
    logStripCentre: (g: number, node: number) => {
      const lane = app.L.lanes[app.L.group_first_lane[g]! + node]!;
      return canvasPoint(0, lane.log_top_px + lane.log_h_px / 2).y;
    },
    mgmts: (g: number) => app.views[g]!.arrays.mgmt_node.length,
    mgmtInfo: (g: number, i: number) => {
      const a = app.views[g]!.arrays;
      return { node: a.mgmt_node[i], t_ns: a.mgmt_t_ns[i], dir: a.mgmt_dir[i], record: a.mgmt_record[i], len: a.mgmt_frame_len[a.mgmt_frame[i]!] };
    },
    mgmtPoint: (g: number, i: number) => {
      const c = mgmtCentre(app.views[g]!, g, i, app.L, app.st);
      return canvasPoint(c.x, c.y);
    },
    diff: () => app.data.diff,
  };
}

boot();
