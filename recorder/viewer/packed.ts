// The viewer's data as it travels inside the HTML page: one JSON meta object plus typed
// arrays as base64 strings. Browser-safe (no Node imports): the generator (Node) and the
// page's client code both use this module, so the layout is written down once.

/** Protocol codes in frame_proto; names as decodeFrame's `protocol`, "other" for anything new. */
export const PROTOCOLS = ["ethernet", "arp", "ipv4", "ipv6", "icmp", "icmp6", "tcp", "udp", "malformed", "other"] as const;

export function protocolCode(name: string): number {
  const i = (PROTOCOLS as readonly string[]).indexOf(name);
  return i >= 0 ? i : PROTOCOLS.length - 1;
}

/** arrow_kind values. */
export const ARROW_DELIVER = 0;
export const ARROW_DROP = 1;
/** Emitted but neither delivered nor dropped when the trace ends (killed run, --duration). */
export const ARROW_INFLIGHT = 2;

/** mark_kind values. */
export const MARK_TEXT = 0;
export const MARK_LIFECYCLE = 1;
/** A scheduled fault: on its node's lane, or (node -1) a network change across every lane. */
export const MARK_FAULT = 2;
/** A scenario command's start or exit. */
export const MARK_COMMAND = 3;

/** mgmt_dir values: a management frame from the host into the guest, or from the guest out. */
export const MGMT_IN = 0;
export const MGMT_OUT = 1;

/** An arrow that has no receiver lane (a drop with no route). */
export const LANE_NONE = -1;
/** Frame index of an arrow whose emit record is missing from the trace. */
export const FRAME_NONE = 0xffffffff;

/**
 * Column arrays. Arrows (one per delivery, drop, or frame still in flight at the end) are
 * sorted by send time, slices by start, marks by time: the client finds what is visible
 * by binary search on those columns.
 */
export interface TraceArrays {
  arrow_t_send_ns: Float64Array;
  /** Delivery or drop time; the trace's end for frames in flight. */
  arrow_t_recv_ns: Float64Array;
  arrow_from: Int16Array;
  /** Receiving lane; LANE_NONE for drops without a receiver. */
  arrow_to: Int16Array;
  arrow_kind: Uint8Array;
  /** Index into meta.drop_reasons (drops only). */
  arrow_reason: Uint8Array;
  /** Index into the frame_* columns (FRAME_NONE: not known). */
  arrow_frame: Uint32Array;
  /** 0-based position of the deliver/drop record in the trace (emit record for in-flight frames). */
  arrow_record: Float64Array;
  frame_id: Float64Array;
  /** Full length on the wire; frame_bytes holds at most meta.frame_bytes_cap of them. */
  frame_len: Uint32Array;
  frame_proto: Uint8Array;
  /** frame k's embedded bytes are frame_bytes[frame_bytes_start[k] .. frame_bytes_start[k+1]). */
  frame_bytes_start: Uint32Array;
  frame_bytes: Uint8Array;
  slice_node: Int16Array;
  slice_t0_ns: Float64Array;
  slice_t1_ns: Float64Array;
  /** -1: a mark from the run itself. */
  mark_node: Int16Array;
  mark_t_ns: Float64Array;
  mark_kind: Uint8Array;
  /** Index into meta.mark_texts (texts are deduplicated). */
  mark_text: Uint32Array;
  /** Console output (guest_output records), sorted by time. */
  out_node: Int16Array;
  out_t_ns: Float64Array;
  /** Index into meta.output_texts (deduplicated). */
  out_text: Uint32Array;
  /** 0-based position of the record in the trace. */
  out_record: Float64Array;
  /** Management frames (mgmt_in/mgmt_out records), sorted by time; never on a simulated link. */
  mgmt_node: Int16Array;
  mgmt_t_ns: Float64Array;
  /** MGMT_IN or MGMT_OUT. */
  mgmt_dir: Uint8Array;
  mgmt_record: Float64Array;
  /** Index into the mgmt_frame_* columns (which are in trace order). */
  mgmt_frame: Uint32Array;
  mgmt_frame_len: Uint32Array;
  mgmt_frame_proto: Uint8Array;
  /** management frame k's embedded bytes are mgmt_frame_bytes[mgmt_frame_bytes_start[k] .. [k+1]). */
  mgmt_frame_bytes_start: Uint32Array;
  mgmt_frame_bytes: Uint8Array;
}

type ArrayKind = "f64" | "i16" | "u8" | "u32";

export const ARRAY_KINDS: Readonly<Record<keyof TraceArrays, ArrayKind>> = {
  arrow_t_send_ns: "f64",
  arrow_t_recv_ns: "f64",
  arrow_from: "i16",
  arrow_to: "i16",
  arrow_kind: "u8",
  arrow_reason: "u8",
  arrow_frame: "u32",
  arrow_record: "f64",
  frame_id: "f64",
  frame_len: "u32",
  frame_proto: "u8",
  frame_bytes_start: "u32",
  frame_bytes: "u8",
  slice_node: "i16",
  slice_t0_ns: "f64",
  slice_t1_ns: "f64",
  mark_node: "i16",
  mark_t_ns: "f64",
  mark_kind: "u8",
  mark_text: "u32",
  out_node: "i16",
  out_t_ns: "f64",
  out_text: "u32",
  out_record: "f64",
  mgmt_node: "i16",
  mgmt_t_ns: "f64",
  mgmt_dir: "u8",
  mgmt_record: "f64",
  mgmt_frame: "u32",
  mgmt_frame_len: "u32",
  mgmt_frame_proto: "u8",
  mgmt_frame_bytes_start: "u32",
  mgmt_frame_bytes: "u8",
};

export interface TraceCounts {
  records: number;
  frames_emitted: number;
  deliveries: number;
  drops: number;
  inflight: number;
  slices: number;
  marks: number;
  /** guest_output records. */
  outputs: number;
  mgmt_in: number;
  mgmt_out: number;
  /** fault records (node faults and network changes) and command records. */
  faults: number;
  commands: number;
}

export interface TraceMeta {
  /** What the page calls this trace ("A", "B" in a diff, else the file name). */
  label: string;
  source_path: string;
  nodes: string[];
  t_end_ns: number;
  /** Largest t_recv - t_send of any arrow: bounds the binary search for visible arrows. */
  arrow_span_ns_max: number;
  slice_len_ns_max: number;
  frame_bytes_cap: number;
  counts: TraceCounts;
  drop_reasons: string[];
  mark_texts: string[];
  output_texts: string[];
  complete: boolean;
}

export interface PackedTrace {
  meta: TraceMeta;
  /** base64 of each column's little-endian bytes. */
  arrays: Record<keyof TraceArrays, string>;
}

export interface TraceView {
  meta: TraceMeta;
  arrays: TraceArrays;
}

/** What a diff page adds: where the runs part, and how their configurations differ. */
export interface DiffInfo {
  /** The event streams are identical (index is then -1 and there is no marker). */
  equivalent: boolean;
  /** Record position diffTraces reports. */
  index: number;
  t_ns: number;
  /** Time of B's record at that position (t_ns is A's; equal when A's trace ended there). */
  t_b_ns: number;
  /** Lane of the divergent record in A and in B (-1: none, e.g. a run_end or the trace ended). */
  lane_a: number;
  lane_b: number;
  text_a: string;
  text_b: string;
  config_differences: string[];
  records_a: number;
  records_b: number;
}

export interface PageData {
  title: string;
  traces: PackedTrace[];
  diff: DiffInfo | null;
}

export function unpackTrace(p: PackedTrace): TraceView {
  const out: Partial<Record<keyof TraceArrays, unknown>> = {};
  for (const name of Object.keys(ARRAY_KINDS) as (keyof TraceArrays)[]) {
    const bytes = base64Bytes(p.arrays[name]);
    out[name] = typedView(ARRAY_KINDS[name], bytes);
  }
  return { meta: p.meta, arrays: out as TraceArrays };
}

function typedView(kind: ArrayKind, bytes: Uint8Array): Float64Array | Int16Array | Uint8Array | Uint32Array {
  // base64Bytes returns a fresh, 0-offset buffer, so every element size is aligned.
  switch (kind) {
    case "f64":
      return new Float64Array(bytes.buffer, 0, bytes.length / 8);
    case "i16":
      return new Int16Array(bytes.buffer, 0, bytes.length / 2);
    case "u32":
      return new Uint32Array(bytes.buffer, 0, bytes.length / 4);
    case "u8":
      return bytes;
  }
}

/** atob + one charCodeAt loop: about 10x faster in Chromium than Uint8Array.from with a callback. */
export function base64Bytes(text: string): Uint8Array {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** First index i in the sorted column with a[i] >= v (a.length when none). */
export function lowerBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The embedded bytes of frame k (a view, no copy). */
export function frameBytes(arrays: TraceArrays, k: number): Uint8Array {
  return arrays.frame_bytes.subarray(arrays.frame_bytes_start[k]!, arrays.frame_bytes_start[k + 1]!);
}

/** The embedded bytes of management frame i (by time order; a view, no copy). */
export function mgmtBytes(arrays: TraceArrays, i: number): Uint8Array {
  const k = arrays.mgmt_frame[i]!;
  return arrays.mgmt_frame_bytes.subarray(arrays.mgmt_frame_bytes_start[k]!, arrays.mgmt_frame_bytes_start[k + 1]!);
}
