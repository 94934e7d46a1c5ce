// Builds the viewer's column arrays from a trace in one streaming pass (TraceReader, one
// chunk in memory at a time). What it keeps grows with frames, slices, marks, console output
// and management frames, but as typed arrays (about 40 bytes per frame plus its capped
// bytes) and deduplicated texts, not objects per record.

import { DROP_REASONS, RecordKind, type TraceRecord } from "../../engine/trace_records.js";
import { decodeFrame } from "../frame_decode.js";
import { TraceReader } from "../reader.js";
import {
  ARRAY_KINDS,
  ARROW_DELIVER,
  ARROW_DROP,
  ARROW_INFLIGHT,
  FRAME_NONE,
  LANE_NONE,
  MARK_COMMAND,
  MARK_FAULT,
  MARK_LIFECYCLE,
  MARK_TEXT,
  MGMT_IN,
  MGMT_OUT,
  protocolCode,
  type PackedTrace,
  type TraceArrays,
  type TraceView,
} from "./packed.js";

/** Bytes of each frame embedded in the page for decoding: enough for every header we decode. */
export const FRAME_BYTES_CAP_DEFAULT = 256;

/** A column that grows by doubling; `done()` returns an exact-length copy. */
class Column<T extends Float64Array | Int16Array | Uint8Array | Uint32Array> {
  length = 0;
  constructor(
    private data: T,
    private readonly make: (n: number) => T,
  ) {}

  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }

  append(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.data.length) this.grow(this.length + bytes.length);
    this.data.set(bytes, this.length);
    this.length += bytes.length;
  }

  get(i: number): number {
    return this.data[i]!;
  }

  set(i: number, v: number): void {
    this.data[i] = v;
  }

  done(): T {
    return this.data.slice(0, this.length) as T;
  }

  private grow(need: number): void {
    const bigger = this.make(Math.max(need, this.data.length * 2, 1024));
    bigger.set(this.data);
    this.data = bigger;
  }
}

const f64 = () => new Column(new Float64Array(1024), (n) => new Float64Array(n));
const i16 = () => new Column(new Int16Array(1024), (n) => new Int16Array(n));
const u8 = () => new Column(new Uint8Array(1024), (n) => new Uint8Array(n));
const u32 = () => new Column(new Uint32Array(1024), (n) => new Uint32Array(n));

/** The columns while the pass runs (names as in TraceArrays). */
function columns() {
  return {
    arrow_t_send_ns: f64(),
    arrow_t_recv_ns: f64(),
    arrow_from: i16(),
    arrow_to: i16(),
    arrow_kind: u8(),
    arrow_reason: u8(),
    arrow_frame: u32(),
    arrow_record: f64(),
    frame_id: f64(),
    frame_len: u32(),
    frame_proto: u8(),
    frame_bytes_start: u32(),
    frame_bytes: u8(),
    slice_node: i16(),
    slice_t0_ns: f64(),
    slice_t1_ns: f64(),
    mark_node: i16(),
    mark_t_ns: f64(),
    mark_kind: u8(),
    mark_text: u32(),
    out_node: i16(),
    out_t_ns: f64(),
    out_text: u32(),
    out_record: f64(),
    mgmt_node: i16(),
    mgmt_t_ns: f64(),
    mgmt_dir: u8(),
    mgmt_record: f64(),
    mgmt_frame: u32(),
    mgmt_frame_len: u32(),
    mgmt_frame_proto: u8(),
    mgmt_frame_bytes_start: u32(),
    mgmt_frame_bytes: u8(),
  };
}
type Columns = ReturnType<typeof columns>;

/** Per-frame facts needed until the frame's deliveries and drops have been seen. */
interface Pass {
  cols: Columns;
  /** frame id -> frame index */
  frames: Map<number, number>;
  /** frame index -> times delivered or dropped (0 at the end: still in flight). */
  settled: Uint32Array;
  frame_t_send_ns: Column<Float64Array>;
  frame_from: Column<Int16Array>;
  frame_record: Column<Float64Array>;
  texts: Map<string, number>;
  output_texts: Map<string, number>;
  t_end_ns: number;
  frame_bytes_cap: number;
}

export function buildTraceView(path: string, label: string, frame_bytes_cap = FRAME_BYTES_CAP_DEFAULT): TraceView {
  if (!(Number.isInteger(frame_bytes_cap) && frame_bytes_cap >= 0)) throw new RangeError(`frame_bytes_cap ${frame_bytes_cap}`);
  const reader = TraceReader.open(path);
  try {
    const pass: Pass = {
      cols: columns(),
      frames: new Map(),
      settled: new Uint32Array(1024),
      frame_t_send_ns: f64(),
      frame_from: i16(),
      frame_record: f64(),
      texts: new Map(),
      output_texts: new Map(),
      t_end_ns: 0,
      frame_bytes_cap,
    };
    pass.cols.frame_bytes_start.push(0);
    pass.cols.mgmt_frame_bytes_start.push(0);
    let ordinal = 0;
    for (const r of reader.records()) addRecord(pass, r, ordinal++);
    addInflight(pass);
    const arrays = finish(pass.cols);
    return { meta: makeMeta(reader, label, pass, arrays, ordinal), arrays };
  } finally {
    reader.close();
  }
}

function addRecord(p: Pass, r: TraceRecord, ordinal: number): void {
  const c = p.cols;
  switch (r[0]) {
    case RecordKind.SliceGrant:
      c.slice_node.push(r[1]);
      c.slice_t0_ns.push(r[2]);
      c.slice_t1_ns.push(r[3]);
      return;
    case RecordKind.FrameEmit:
      addFrame(p, r[1], r[2], r[3], r[4], ordinal);
      return;
    case RecordKind.FrameDeliver:
      addArrow(p, r[4], r[1], r[2], r[3], ARROW_DELIVER, 0, ordinal, r[5]);
      return;
    case RecordKind.FrameDrop:
      addArrow(p, r[4], r[1], r[2], r[3], ARROW_DROP, DROP_REASONS.indexOf(r[5]), ordinal, null);
      return;
    case RecordKind.Lifecycle:
      addMark(p, r[1], r[2], MARK_LIFECYCLE, r[4] ? `${r[3]} (${r[4]})` : r[3]);
      return;
    case RecordKind.Mark:
      addMark(p, r[1], r[2], MARK_TEXT, r[3]);
      return;
    case RecordKind.Fault:
      addMark(p, r[1], r[2], MARK_FAULT, r[1] < 0 ? `network ${r[3]}${r[4] ? `: ${r[4]}` : ""}` : `fault: ${r[3]}`);
      return;
    case RecordKind.Command:
      addMark(p, r[1], r[2], MARK_COMMAND, r[3] === "start" ? `command ${r[4]} started: ${r[5]}` : `command ${r[4]} exited: ${r[5]}`);
      return;
    case RecordKind.RunEnd:
      p.t_end_ns = Math.max(p.t_end_ns, r[1]);
      return;
    case RecordKind.SliceEnd:
      p.t_end_ns = Math.max(p.t_end_ns, r[2]);
      return;
    case RecordKind.GuestOutput:
      addOutput(p, r[1], r[2], r[3], ordinal);
      return;
    case RecordKind.MgmtIn:
    case RecordKind.MgmtOut:
      addMgmt(p, r[1], r[2], r[0] === RecordKind.MgmtIn ? MGMT_IN : MGMT_OUT, r[3], ordinal);
      return;
  }
}

function addOutput(p: Pass, node: number, t_ns: number, text: string, ordinal: number): void {
  const c = p.cols;
  c.out_node.push(node);
  c.out_t_ns.push(t_ns);
  c.out_text.push(textId(p.output_texts, text));
  c.out_record.push(ordinal);
  p.t_end_ns = Math.max(p.t_end_ns, t_ns);
}

/** A management frame: its bytes in the mgmt_frame_* columns (trace order), its time in the sorted ones. */
function addMgmt(p: Pass, node: number, t_ns: number, dir: number, bytes: Uint8Array, ordinal: number): void {
  const c = p.cols;
  c.mgmt_frame.push(c.mgmt_frame_len.length);
  c.mgmt_frame_len.push(bytes.length);
  c.mgmt_frame_proto.push(protocolCode(protocolOf(bytes)));
  c.mgmt_frame_bytes.append(bytes.subarray(0, p.frame_bytes_cap));
  c.mgmt_frame_bytes_start.push(c.mgmt_frame_bytes.length);
  c.mgmt_node.push(node);
  c.mgmt_t_ns.push(t_ns);
  c.mgmt_dir.push(dir);
  c.mgmt_record.push(ordinal);
  p.t_end_ns = Math.max(p.t_end_ns, t_ns);
}

function textId(texts: Map<string, number>, text: string): number {
  let id = texts.get(text);
  if (id === undefined) {
    id = texts.size;
    texts.set(text, id);
  }
  return id;
}

function addFrame(p: Pass, node: number, t_ns: number, frame_id: number, bytes: Uint8Array, ordinal: number): void {
  const c = p.cols;
  const k = c.frame_id.length;
  p.frames.set(frame_id, k);
  c.frame_id.push(frame_id);
  c.frame_len.push(bytes.length);
  c.frame_proto.push(protocolCode(protocolOf(bytes)));
  c.frame_bytes.append(bytes.subarray(0, p.frame_bytes_cap));
  c.frame_bytes_start.push(c.frame_bytes.length);
  p.frame_t_send_ns.push(t_ns);
  p.frame_from.push(node);
  p.frame_record.push(ordinal);
  if (k >= p.settled.length) {
    const bigger = new Uint32Array(p.settled.length * 2);
    bigger.set(p.settled);
    p.settled = bigger;
  }
  p.t_end_ns = Math.max(p.t_end_ns, t_ns);
}

/** decodeFrame must never take the generation down: a frame it cannot read is "malformed". */
function protocolOf(bytes: Uint8Array): string {
  try {
    return decodeFrame(bytes).protocol;
  } catch {
    return "malformed";
  }
}

function addArrow(p: Pass, from: number, to: number, t_ns: number, frame_id: number, kind: number, reason: number, ordinal: number, sent_ns: number | null): void {
  const c = p.cols;
  const k = p.frames.get(frame_id);
  if (k !== undefined) p.settled[k]! += 1;
  c.arrow_t_send_ns.push(sent_ns ?? (k === undefined ? t_ns : p.frame_t_send_ns.get(k)));
  c.arrow_t_recv_ns.push(t_ns);
  c.arrow_from.push(from);
  c.arrow_to.push(to < 0 ? LANE_NONE : to);
  c.arrow_kind.push(kind);
  c.arrow_reason.push(Math.max(0, reason));
  c.arrow_frame.push(k ?? FRAME_NONE);
  c.arrow_record.push(ordinal);
  p.t_end_ns = Math.max(p.t_end_ns, t_ns);
}

/** Frames that never arrived or dropped: an arrow to nowhere, ending where the trace ends. */
function addInflight(p: Pass): void {
  const c = p.cols;
  const n = c.frame_id.length;
  for (let k = 0; k < n; k++) {
    if (p.settled[k] !== 0) continue;
    c.arrow_t_send_ns.push(p.frame_t_send_ns.get(k));
    c.arrow_t_recv_ns.push(p.t_end_ns);
    c.arrow_from.push(p.frame_from.get(k));
    c.arrow_to.push(LANE_NONE);
    c.arrow_kind.push(ARROW_INFLIGHT);
    c.arrow_reason.push(0);
    c.arrow_frame.push(k);
    c.arrow_record.push(p.frame_record.get(k));
  }
}

function addMark(p: Pass, node: number, t_ns: number, kind: number, text: string): void {
  const c = p.cols;
  c.mark_node.push(node);
  c.mark_t_ns.push(t_ns);
  c.mark_kind.push(kind);
  c.mark_text.push(textId(p.texts, text));
  p.t_end_ns = Math.max(p.t_end_ns, t_ns);
}

/** Exact-length arrays, each group sorted by its time column (records are not time-ordered across nodes). */
function finish(c: Columns): TraceArrays {
  const a = {} as Record<keyof TraceArrays, Float64Array | Int16Array | Uint8Array | Uint32Array>;
  for (const name of Object.keys(ARRAY_KINDS) as (keyof TraceArrays)[]) a[name] = c[name].done();
  const arrays = a as unknown as TraceArrays;
  sortGroup(arrays, "arrow_t_send_ns", ["arrow_t_send_ns", "arrow_t_recv_ns", "arrow_from", "arrow_to", "arrow_kind", "arrow_reason", "arrow_frame", "arrow_record"]);
  sortGroup(arrays, "slice_t0_ns", ["slice_node", "slice_t0_ns", "slice_t1_ns"]);
  sortGroup(arrays, "mark_t_ns", ["mark_node", "mark_t_ns", "mark_kind", "mark_text"]);
  sortGroup(arrays, "out_t_ns", ["out_node", "out_t_ns", "out_text", "out_record"]);
  sortGroup(arrays, "mgmt_t_ns", ["mgmt_node", "mgmt_t_ns", "mgmt_dir", "mgmt_record", "mgmt_frame"]);
  return arrays;
}

/** Stable sort of parallel columns by `key` (ties keep trace order). */
function sortGroup(a: TraceArrays, key: keyof TraceArrays, names: (keyof TraceArrays)[]): void {
  const keys = a[key];
  const order = Array.from({ length: keys.length }, (_, i) => i);
  order.sort((x, y) => keys[x]! - keys[y]! || x - y);
  for (const name of names) {
    const src = a[name];
    const dst = src.slice();
    for (let i = 0; i < order.length; i++) dst[i] = src[order[i]!]!;
    (a as unknown as Record<string, typeof src>)[name] = dst;
  }
}

function makeMeta(reader: TraceReader, label: string, p: Pass, a: TraceArrays, records: number): TraceView["meta"] {
  let span = 0;
  for (let i = 0; i < a.arrow_t_send_ns.length; i++) span = Math.max(span, a.arrow_t_recv_ns[i]! - a.arrow_t_send_ns[i]!);
  let slice_max = 0;
  for (let i = 0; i < a.slice_t0_ns.length; i++) slice_max = Math.max(slice_max, a.slice_t1_ns[i]! - a.slice_t0_ns[i]!);
  let drops = 0;
  let inflight = 0;
  let mgmt_in = 0;
  for (const dir of a.mgmt_dir) if (dir === MGMT_IN) mgmt_in += 1;
  let faults = 0;
  let commands = 0;
  for (const kind of a.mark_kind) {
    if (kind === MARK_FAULT) faults += 1;
    if (kind === MARK_COMMAND) commands += 1;
  }
  for (const kind of a.arrow_kind) {
    if (kind === ARROW_DROP) drops += 1;
    if (kind === ARROW_INFLIGHT) inflight += 1;
  }
  const arrows = a.arrow_kind.length;
  return {
    label,
    source_path: reader.path,
    nodes: reader.header.config.nodes.map((n) => n.name),
    t_end_ns: p.t_end_ns,
    arrow_span_ns_max: span,
    slice_len_ns_max: slice_max,
    frame_bytes_cap: p.frame_bytes_cap,
    counts: {
      records,
      frames_emitted: a.frame_id.length,
      deliveries: arrows - drops - inflight,
      drops,
      inflight,
      slices: a.slice_node.length,
      marks: a.mark_node.length - faults - commands,
      outputs: a.out_node.length,
      mgmt_in,
      mgmt_out: a.mgmt_dir.length - mgmt_in,
      faults,
      commands,
    },
    drop_reasons: [...DROP_REASONS],
    mark_texts: [...p.texts.keys()],
    output_texts: [...p.output_texts.keys()],
    complete: reader.status().complete,
  };
}

export function packTrace(view: TraceView): PackedTrace {
  const arrays = {} as Record<keyof TraceArrays, string>;
  for (const name of Object.keys(ARRAY_KINDS) as (keyof TraceArrays)[]) {
    const col = view.arrays[name];
    arrays[name] = Buffer.from(col.buffer, col.byteOffset, col.byteLength).toString("base64");
  }
  return { meta: view.meta, arrays };
}
