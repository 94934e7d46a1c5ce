// Comparing two traces: configuration differences from the headers, the first record where
// the event streams part (with the records before it as context), and per-node / per-link
// summaries of both runs side by side. Streams both files in constant memory. Facts about
// the host that ran a simulation (QEMU's pid, its run directory) are not the simulation:
// lifecycle details are compared with them masked.

import { recordsEqual } from "./describe.js";
import { TraceReader } from "./reader.js";
import { TraceStats, type LinkStats, type NodeStats } from "./stats.js";
import { RecordKind, type TraceHeader, type TraceRecord } from "../engine/trace_records.js";

export const CONFIG_DIFFERENCES_MAX = 20;

export interface DiffDivergence {
  index: number;
  a: TraceRecord | null;
  b: TraceRecord | null;
  context: TraceRecord[];
}

export interface NodeDelta {
  node: number;
  a: NodeStats | null;
  b: NodeStats | null;
}

export interface LinkDelta {
  from: number;
  to: number;
  a: LinkStats | null;
  b: LinkStats | null;
}

export interface DiffResult {
  equivalent: boolean;
  config_differences: string[];
  first_divergence: DiffDivergence | null;
  records_a: number;
  records_b: number;
  /** Records at the same position that differ (after the first divergence the runs are misaligned). */
  differing_positions: number;
  nodes: NodeDelta[];
  links: LinkDelta[];
  incomplete: { a: boolean; b: boolean };
}

export function diffTraces(path_a: string, path_b: string, context_records: number): DiffResult {
  const reader_a = TraceReader.open(path_a);
  const reader_b = TraceReader.open(path_b);
  const stats_a = new TraceStats();
  const stats_b = new TraceStats();
  const it_a = reader_a.records()[Symbol.iterator]();
  const it_b = reader_b.records()[Symbol.iterator]();
  // The last `context_records` records (identical in both), as a ring indexed by position.
  const ring: TraceRecord[] = new Array<TraceRecord>(context_records);
  let first: DiffDivergence | null = null;
  let differing = 0;
  for (let index = 0; ; index++) {
    const a = it_a.next();
    const b = it_b.next();
    if (a.done && b.done) break;
    const ra = a.done ? null : a.value;
    const rb = b.done ? null : b.value;
    if (ra) stats_a.add(ra);
    if (rb) stats_b.add(rb);
    const same = ra !== null && rb !== null && sameSimulation(ra, rb);
    if (!same) differing += 1;
    if (!same && first === null) first = { index, a: ra, b: rb, context: ringContents(ring, index) };
    if (first === null && context_records > 0) ring[index % context_records] = ra!;
  }
  reader_a.close();
  reader_b.close();
  return {
    equivalent: first === null,
    config_differences: configDifferences(reader_a.header, reader_b.header),
    first_divergence: first,
    records_a: stats_a.records,
    records_b: stats_b.records,
    differing_positions: differing,
    nodes: nodeDeltas(stats_a, stats_b),
    links: linkDeltas(stats_a, stats_b),
    incomplete: { a: !reader_a.status().complete, b: !reader_b.status().complete },
  };
}

/** Host facts in lifecycle details: "qemu pid 4242" (boot), "(QEMU pid 4242)" (crash), a run directory. */
const HOST_FACTS = /\b(qemu \(?pid) \d+|\/tapsim-run-[A-Za-z0-9]+/gi;

/** "qemu pid N" as "qemu pid _", so that two runs on different hosts (or twice on one) compare equal. */
export function maskHostFacts(detail: string): string {
  return detail.replace(HOST_FACTS, (match, pid: string | undefined) => (pid === undefined ? "/tapsim-run-_" : `${pid} _`));
}

/** recordsEqual, except that lifecycle details are compared with host facts masked. */
export function sameSimulation(a: TraceRecord, b: TraceRecord): boolean {
  if (recordsEqual(a, b)) return true;
  if (a[0] !== RecordKind.Lifecycle || b[0] !== RecordKind.Lifecycle) return false;
  return a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && maskHostFacts(a[4]) === maskHostFacts(b[4]);
}

/** The ring's records before position `index`, oldest first. */
function ringContents(ring: TraceRecord[], index: number): TraceRecord[] {
  const n = Math.min(ring.length, index);
  return Array.from({ length: n }, (_, k) => ring[(index - n + k) % ring.length]!);
}

function nodeDeltas(a: TraceStats, b: TraceStats): NodeDelta[] {
  const nodes_a = a.nodes;
  const nodes_b = b.nodes;
  const ids = [...new Set([...nodes_a.keys(), ...nodes_b.keys()])].sort((x, y) => x - y);
  return ids
    .map((node) => ({ node, a: nodes_a.get(node) ?? null, b: nodes_b.get(node) ?? null }))
    .filter((d) => JSON.stringify(d.a) !== JSON.stringify(d.b));
}

function linkDeltas(a: TraceStats, b: TraceStats): LinkDelta[] {
  const keys = [...new Set([...a.links.keys(), ...b.links.keys()])];
  return keys
    .map((key) => {
      const la = a.links.get(key) ?? null;
      const lb = b.links.get(key) ?? null;
      const any = (la ?? lb)!;
      return { from: any.from, to: any.to, a: la, b: lb };
    })
    .filter((d) => JSON.stringify(d.a) !== JSON.stringify(d.b))
    .sort((x, y) => x.from - y.from || x.to - y.to);
}

/** Leaf-level differences between the two run configurations (creation time and version ignored). */
export function configDifferences(a: TraceHeader, b: TraceHeader): string[] {
  const out: string[] = [];
  walk("config", a.config, b.config, out);
  return out;
}

function walk(path: string, a: unknown, b: unknown, out: string[]): void {
  if (out.length >= CONFIG_DIFFERENCES_MAX) return;
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const arrays = Array.isArray(a) && Array.isArray(b);
    for (const k of keys) walk(arrays ? `${path}[${k}]` : `${path}.${k}`, (a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], out);
    return;
  }
  if (a !== b) out.push(`${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
}
