// Shape checks for what comes out of a trace file: a record that decodes but is not one of
// the tuples of engine/trace_records.ts must be reported, never passed on to the engine.

import type { TraceHeader } from "../engine/trace_records.js";

const DROP_REASONS = new Set(["loss", "queue_full", "no_route", "node_exited"]);
const LIFECYCLE_EVENTS = new Set(["boot", "exit", "crash"]);
const RUN_END_REASONS = new Set(["quiescent", "duration", "interrupted", "error"]);
const SHAPES: Record<number, string> = {
  1: "slice_grant [1, node, start_ns, end_ns]",
  2: "slice_end [2, node, end_ns, wake_ns]",
  3: "frame_emit [3, node, t_ns, frame_id, bytes]",
  4: "frame_deliver [4, to, t_ns, frame_id, from, sent_ns]",
  5: "frame_drop [5, to, t_ns, frame_id, from, reason]",
  6: "lifecycle [6, node, t_ns, event, detail]",
  7: "mark [7, node, t_ns, text]",
  8: "run_end [8, t_ns, reason]",
};

function uint(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function intOrNone(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= -1;
}

/** null when `r` is a well-formed record, else what is wrong with it. */
export function validateRecord(r: unknown): string | null {
  if (!Array.isArray(r) || r.length === 0) return "not a record array";
  const kind = r[0];
  const shape = typeof kind === "number" ? SHAPES[kind] : undefined;
  if (shape === undefined) return `unknown record kind ${JSON.stringify(kind)}`;
  return wellFormed(kind as number, r) ? null : `expected ${shape}`;
}

function wellFormed(kind: number, r: unknown[]): boolean {
  switch (kind) {
    case 1:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && uint(r[3]) && (r[3] as number) > (r[2] as number);
    case 2:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && intOrNone(r[3]);
    case 3:
      return r.length === 5 && uint(r[1]) && uint(r[2]) && uint(r[3]) && r[4] instanceof Uint8Array;
    case 4:
      return r.length === 6 && uint(r[1]) && uint(r[2]) && uint(r[3]) && uint(r[4]) && uint(r[5]);
    case 5:
      return r.length === 6 && intOrNone(r[1]) && uint(r[2]) && uint(r[3]) && uint(r[4]) && DROP_REASONS.has(r[5] as string);
    case 6:
      return r.length === 5 && uint(r[1]) && uint(r[2]) && LIFECYCLE_EVENTS.has(r[3] as string) && typeof r[4] === "string";
    case 7:
      return r.length === 4 && intOrNone(r[1]) && uint(r[2]) && typeof r[3] === "string";
    case 8:
      return r.length === 3 && uint(r[1]) && RUN_END_REASONS.has(r[2] as string);
  }
  return false;
}

/** null when the header's configuration has the shape the engine needs, else the first problem. */
export function validateHeader(h: Partial<TraceHeader>): string | null {
  const c = h.config;
  if (typeof c !== "object" || c === null) return "config missing";
  if (!Array.isArray(c.nodes) || c.nodes.length === 0) return "config.nodes must be a non-empty list";
  for (const [i, n] of c.nodes.entries()) {
    if (typeof n !== "object" || n === null || n.id !== i || typeof n.mac !== "string" || typeof n.name !== "string") return `config.nodes[${i}] is malformed`;
  }
  const t = c.topology;
  if (typeof t !== "object" || t === null || !Array.isArray(t.node_names) || !Array.isArray(t.latency_ns) || typeof t.link_defaults !== "object" || !Array.isArray(t.link_overrides)) {
    return "config.topology is malformed";
  }
  if (t.node_names.length !== c.nodes.length) return "config.topology and config.nodes disagree on the node count";
  if (!uint(c.seed)) return "config.seed must be a non-negative integer";
  if (!(c.until_ns === null || uint(c.until_ns))) return "config.until_ns must be null or a non-negative integer";
  if (!(uint(c.slice_len_max_ns) && c.slice_len_max_ns > 0)) return "config.slice_len_max_ns must be a positive integer";
  if (!(uint(c.inflight_frames_max) && c.inflight_frames_max > 0)) return "config.inflight_frames_max must be a positive integer";
  return null;
}
