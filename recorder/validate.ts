// Shape rules for what comes out of a trace file. A record that decodes but is not one of
// the tuples of engine/trace_records.ts must be reported, never passed on to the engine.
// The reader's decoder (record_codec.ts) applies these rules inline while it decodes, for
// speed; validateRecord states them plainly over decoded values (tests check that both agree).

import { InputError } from "../engine/errors.js";
import { validateTopologySpec, type TopologySpec } from "../engine/topology.js";
import { COMMAND_EVENTS, DROP_REASONS, FAULT_ACTIONS, LIFECYCLE_EVENTS, RUN_END_REASONS, type TraceHeader } from "../engine/trace_records.js";

/** The engine routes by MAC: six hex pairs, each node's its own. */
const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** The tuple each record kind must be, as error messages show it. */
export const RECORD_SHAPES: Readonly<Record<number, string>> = Object.freeze({
  1: "slice_grant [1, node, start_ns, end_ns]",
  2: "slice_end [2, node, end_ns, wake_ns]",
  3: "frame_emit [3, node, t_ns, frame_id, bytes]",
  4: "frame_deliver [4, to, t_ns, frame_id, from, sent_ns]",
  5: "frame_drop [5, to, t_ns, frame_id, from, reason]",
  6: "lifecycle [6, node, t_ns, event, detail]",
  7: "mark [7, node, t_ns, text]",
  8: "run_end [8, t_ns, reason] or [8, t_ns, reason, detail]",
  9: "guest_output [9, node, t_ns, text]",
  10: "mgmt_in [10, node, t_ns, bytes]",
  11: "mgmt_out [11, node, t_ns, bytes]",
  12: "fault [12, node, t_ns, action, detail]",
  13: "command [13, node, t_ns, event, id, detail]",
});

function uint(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Positions of node ids in each record kind, and whether -1 ("none") is allowed there. */
const NODE_FIELDS: Readonly<Record<number, readonly [number, boolean][]>> = {
  1: [[1, false]],
  2: [[1, false]],
  3: [[1, false]],
  4: [[1, false], [4, false]],
  5: [[1, true], [4, false]],
  6: [[1, false]],
  7: [[1, true]],
  8: [],
  9: [[1, false]],
  10: [[1, false]],
  11: [[1, false]],
  12: [[1, true]],
  13: [[1, false]],
};

/**
 * null when `r` is a well-formed record for a run with `node_count` nodes, else what is
 * wrong with it (the words the reader's "malformed" errors use).
 */
export function validateRecord(r: unknown, node_count: number): string | null {
  if (!Array.isArray(r) || r.length === 0) return "not a record array";
  const kind: unknown = r[0];
  const shape = uint(kind) ? RECORD_SHAPES[kind as number] : undefined;
  if (shape === undefined) return `unknown record kind ${describeKind(kind)}`;
  if (!hasShape(kind as number, r)) return `expected ${shape}`;
  for (const [at, none_ok] of NODE_FIELDS[kind as number]!) {
    const node = r[at] as number;
    if (node >= node_count && !(none_ok && node === -1)) return `node ${node} is out of range (the trace has ${node_count} nodes)`;
  }
  return null;
}

/** Arity and field types; node ids only as far as "an id or -1 where allowed". */
function hasShape(kind: number, r: unknown[]): boolean {
  const none = (v: unknown) => v === -1 || uint(v);
  const oneOf = (v: unknown, names: readonly string[]) => typeof v === "string" && names.includes(v);
  switch (kind) {
    case 1:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && uint(r[3]) && (r[3] as number) > (r[2] as number);
    case 2:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && none(r[3]);
    case 3:
      return r.length === 5 && uint(r[1]) && uint(r[2]) && uint(r[3]) && r[4] instanceof Uint8Array;
    case 4:
      return r.length === 6 && uint(r[1]) && uint(r[2]) && uint(r[3]) && uint(r[4]) && uint(r[5]);
    case 5:
      return r.length === 6 && none(r[1]) && uint(r[2]) && uint(r[3]) && uint(r[4]) && oneOf(r[5], DROP_REASONS);
    case 6:
      return r.length === 5 && uint(r[1]) && uint(r[2]) && oneOf(r[3], LIFECYCLE_EVENTS) && typeof r[4] === "string";
    case 7:
      return r.length === 4 && none(r[1]) && uint(r[2]) && typeof r[3] === "string";
    case 9:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && typeof r[3] === "string";
    case 10:
    case 11:
      return r.length === 4 && uint(r[1]) && uint(r[2]) && r[3] instanceof Uint8Array;
    case 12:
      return r.length === 5 && none(r[1]) && uint(r[2]) && oneOf(r[3], FAULT_ACTIONS) && typeof r[4] === "string";
    case 13:
      return r.length === 6 && uint(r[1]) && uint(r[2]) && oneOf(r[3], COMMAND_EVENTS) && typeof r[4] === "string" && typeof r[5] === "string";
    default:
      return (r.length === 3 || (r.length === 4 && typeof r[3] === "string")) && uint(r[1]) && oneOf(r[2], RUN_END_REASONS);
  }
}

/** A record kind as error messages quote it: the number, or what stood in its place. */
export function describeKind(kind: unknown): string {
  if (typeof kind === "number") return String(kind);
  if (kind === undefined) return "(missing)";
  const what = kind === null ? "nil" : typeof kind;
  return `(${/^[aeiou]/.test(what) ? "an" : "a"} ${what}, not a number)`;
}

/** null when the header's configuration has the shape the engine needs, else the first problem. */
export function validateHeader(h: Partial<TraceHeader>): string | null {
  const c = h.config;
  if (typeof c !== "object" || c === null) return "config missing";
  if (!Array.isArray(c.nodes) || c.nodes.length === 0) return "config.nodes must be a non-empty list";
  const macs = new Map<string, number>();
  for (const [i, n] of c.nodes.entries()) {
    if (typeof n !== "object" || n === null || n.id !== i || typeof n.mac !== "string" || typeof n.name !== "string") return `config.nodes[${i}] is malformed`;
    if (!MAC_PATTERN.test(n.mac)) return `config.nodes[${i}].mac ${JSON.stringify(n.mac.slice(0, 40))} is not a MAC address`;
    const other = macs.get(n.mac.toLowerCase());
    if (other !== undefined) return `config.nodes[${i}].mac ${n.mac} is also node ${other}'s`;
    macs.set(n.mac.toLowerCase(), i);
  }
  const t = c.topology;
  if (typeof t !== "object" || t === null || !Array.isArray(t.node_names) || !Array.isArray(t.latency_ns) || typeof t.link_defaults !== "object" || t.link_defaults === null || !Array.isArray(t.link_overrides)) {
    return "config.topology is malformed";
  }
  if (t.node_names.length !== c.nodes.length) return "config.topology and config.nodes disagree on the node count";
  const topology_problem = topologyProblem(t);
  if (topology_problem !== null) return topology_problem;
  if (!uint(c.seed)) return "config.seed must be a non-negative integer";
  if (!(c.until_ns === null || uint(c.until_ns))) return "config.until_ns must be null or a non-negative integer";
  if (!(uint(c.slice_len_max_ns) && c.slice_len_max_ns > 0)) return "config.slice_len_max_ns must be a positive integer";
  if (!(uint(c.inflight_frames_max) && c.inflight_frames_max > 0)) return "config.inflight_frames_max must be a positive integer";
  if (!(c.parallel === undefined || typeof c.parallel === "boolean")) return "config.parallel must be a boolean";
  if (!(c.pipelined === undefined || typeof c.pipelined === "boolean")) return "config.pipelined must be a boolean";
  if (c.pipelined === true && c.parallel !== true) return "config.pipelined needs config.parallel";
  return null;
}

/** The topology checks the engine would make, as a problem instead of an exception. */
function topologyProblem(t: TopologySpec): string | null {
  for (const [i, o] of t.link_overrides.entries()) {
    if (typeof o !== "object" || o === null || Array.isArray(o)) return `config.topology.link_overrides[${i}] is not an object`;
  }
  if (!t.latency_ns.every((row) => Array.isArray(row))) return "config.topology.latency_ns must be a list of rows";
  try {
    validateTopologySpec(t);
  } catch (err) {
    if (err instanceof InputError) return `config.topology: ${err.message}`;
    throw err;
  }
  return null;
}
